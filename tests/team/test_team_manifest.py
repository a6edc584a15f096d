"""The server the tests start is the server the Kubernetes manifests run (``kubectl kustomize``), and the script.

``deploy/k8s/base`` renders the MLflow Deployment (PostgreSQL store, artifacts proxied to S3) and the gpu overlay adds
the ``mlflow-basic-auth`` component; ``TeamMlflowServer`` (what the ``team`` fixture and
``deploy/team-server/start.sh`` start) must give ``mlflow server`` the same arguments, apart from the network ones
each place sets for itself (host, port, workers, allowed hosts), and read its stores and secrets from the same
environment variables. The example secrets name the same database driver, databases and default permission.
No server is started here.
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from orchestrator.tracking.team_server import (
    AUTH_CACHE_TTL_S,
    AUTH_DB_NAME,
    DB_NAME,
    DB_SCHEME,
    DEFAULT_PERMISSION,
    SERVER_ENVIRONMENT,
    TeamMlflowServer,
    TeamSecrets,
)
from tests.cluster.helpers import DEPLOY_K8S, REPO_ROOT, by_kind, deploy_copy, kustomize

NETWORK = ("--host", "--port", "--workers", "--allowed-hosts")  # each place's own
AUTH_COMPONENT = DEPLOY_K8S / "components" / "mlflow-basic-auth"


def options(args: list[str]) -> dict[str, str]:
    """``--flag=value`` / ``--flag value`` / ``--flag`` as {flag: value}, the network flags left out."""
    found: dict[str, str] = {}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        assert arg.startswith("--"), (arg, args)
        flag, eq, value = arg.partition("=")
        if not eq and rest and not rest[0].startswith("--"):
            value = rest.pop(0)
        found[flag] = value
    return {flag: value for flag, value in found.items() if flag not in NETWORK}


def mlflow_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = by_kind(objects, "Deployment")["mlflow"]["spec"]["template"]["spec"]["containers"]
    return container


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """``kubectl kustomize`` of base, and of the gpu overlay (base + the mlflow-basic-auth component)."""
    tmp = tmp_path_factory.mktemp("k8s")
    copy = deploy_copy(tmp)
    return {"base": kustomize(copy / "base", tmp), "gpu": kustomize(copy / "overlays" / "gpu", tmp)}


@pytest.fixture
def server(tmp_path: Path) -> TeamMlflowServer:
    """The tests' server, built as the ``team`` fixture builds it (nothing started)."""
    return TeamMlflowServer(
        tmp_path,
        backend_store_uri=f"{DB_SCHEME}://mlflow:pw@127.0.0.1:5433/{DB_NAME}",
        auth_database_uri=f"{DB_SCHEME}://mlflow:pw@127.0.0.1:5433/{AUTH_DB_NAME}",
        s3_endpoint="http://127.0.0.1:9000",
        team_secrets=TeamSecrets.generate(),
    )


def test_the_tests_start_mlflow_server_with_the_arguments_of_the_manifests(
    rendered: dict[str, list[dict[str, Any]]], server: TeamMlflowServer
) -> None:
    command = server.command()
    assert command[1:4] == ["-m", "mlflow", "server"], command
    ours = options(command[4:])
    for overlay, objects in rendered.items():
        container = mlflow_container(objects)
        assert container["command"] == ["mlflow", "server"]
        theirs = options(container["args"])
        if overlay == "base":  # no logins in base: the component adds them
            assert theirs == {k: v for k, v in ours.items() if k != "--app-name"}, overlay
        else:
            assert theirs == ours, overlay
    assert ours == {
        "--app-name": "basic-auth",
        "--serve-artifacts": "",
        "--artifacts-destination": "s3://mlflow/artifacts",
    }


def test_the_server_reads_the_same_environment_as_the_manifests_and_no_secret_is_on_its_command_line(
    rendered: dict[str, list[dict[str, Any]]], server: TeamMlflowServer
) -> None:
    environment = server.environment()
    assert set(environment) == set(SERVER_ENVIRONMENT)
    assert {e["name"] for e in mlflow_container(rendered["gpu"])["env"]} == set(SERVER_ENVIRONMENT)
    base = {e["name"] for e in mlflow_container(rendered["base"])["env"]}
    assert base == set(SERVER_ENVIRONMENT) - {n for n in SERVER_ENVIRONMENT if "AUTH" in n or "FLASK" in n}
    line = " ".join(server.command())
    secrets = [v for k, v in environment.items() if k not in ("AWS_DEFAULT_REGION", "MLFLOW_AUTH_ADMIN_USERNAME")]
    assert not [s for s in secrets if s in line], "a store URI or secret on the command line (`ps` shows it)"
    ini = Path(environment["MLFLOW_AUTH_CONFIG_PATH"])
    assert ini.stat().st_mode & 0o777 == 0o600, "the auth config holds the auth database's password"
    ours, example = configparser.ConfigParser(), configparser.ConfigParser()
    ours.read(ini)
    example.read(AUTH_COMPONENT / "basic_auth.example.ini")
    same = ("default_permission", "authorization_function", "auth_cache_ttl_seconds")
    assert set(ours["mlflow"]) == set(example["mlflow"])
    assert {k: ours["mlflow"][k] for k in same} == {k: example["mlflow"][k] for k in same}


def test_the_example_secrets_name_the_driver_databases_and_default_permission_the_tests_use() -> None:
    values = dict(
        line.split("=", 1)
        for line in (DEPLOY_K8S / "base" / "secrets.example.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    store = urlparse(values["MLFLOW_BACKEND_STORE_URI"])
    assert (store.scheme, store.path) == (DB_SCHEME, f"/{DB_NAME}")
    ini = configparser.ConfigParser()
    ini.read(AUTH_COMPONENT / "basic_auth.example.ini")
    auth = urlparse(ini["mlflow"]["database_uri"])
    assert (auth.scheme, auth.path) == (DB_SCHEME, f"/{AUTH_DB_NAME}")
    assert ini["mlflow"]["default_permission"] == DEFAULT_PERMISSION
    assert int(ini["mlflow"]["auth_cache_ttl_seconds"]) == AUTH_CACHE_TTL_S
    # the image's MLflow server has the driver: the same package the extra orchestrator[server] brings
    assert '"psycopg[binary]' in (REPO_ROOT / "deploy" / "Dockerfile").read_text()


def test_the_script_runs_the_module_the_tests_start() -> None:
    script = (REPO_ROOT / "deploy" / "team-server" / "start.sh").read_text()
    assert 'exec "$python" -m orchestrator.tracking.team_server --root "$root" "$@"' in script
