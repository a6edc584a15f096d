"""No credential inline in any Kubernetes object; every name we set or take follows its rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cluster import names
from orchestrator.cluster.bundle import SpaceBundle
from orchestrator.cluster.cli import jobs, submit
from orchestrator.cluster.errors import ClusterError
from orchestrator.cluster.rayjob import CREDENTIAL_KEYS, JobOptions, build_submission

from .helpers import schema_errors, write_study
from .kube import assert_clean_error, invoke

IMAGE = "registry.example.com/orchestrator:0.1.0"
PASSWORD = "pl4nted-Pa55w0rd"
URI = f"http://alice:{PASSWORD}@mlflow.team:5000"
PLACEMENTS = {"new": ["--new-cluster", "--image", IMAGE], "existing": ["--cluster", "search-cluster"]}


def _containers(rayjob: dict[str, Any]) -> list[dict[str, Any]]:
    spec = rayjob["spec"].get("rayClusterSpec")
    if not spec:
        return []
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


@pytest.fixture
def planted_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The submitting shell holds credentials too; none of them may travel."""
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", PASSWORD)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", URI)


@pytest.mark.usefixtures("planted_env", "crds")
@pytest.mark.parametrize("placement", sorted(PLACEMENTS))
def test_dry_run_never_prints_or_builds_a_planted_password(tmp_path: Path, placement: str) -> None:
    space = write_study(tmp_path, versions=2, gpu=1)
    result = invoke(submit, str(space), *PLACEMENTS[placement], "--tracking-uri", URI, "-n", "team", "--dry-run")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.stdout and PASSWORD not in result.stderr
    assert "alice" not in result.stdout
    assert result.stderr.startswith("note: the credentials in --tracking-uri are not put into the RayJob")
    objects = list(yaml.safe_load_all(result.stdout))
    assert PASSWORD not in json.dumps(objects)
    rayjob = objects[0]
    assert schema_errors(rayjob) == []
    assert "--tracking-uri http://mlflow.team:5000" in rayjob["spec"]["entrypoint"]
    env_vars = yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])["env_vars"]
    assert env_vars["MLFLOW_TRACKING_URI"] == "http://mlflow.team:5000"
    assert not set(env_vars) & set(CREDENTIAL_KEYS)


@pytest.mark.usefixtures("planted_env")
def test_new_cluster_pods_get_credentials_by_secret_reference(tmp_path: Path) -> None:
    space = write_study(tmp_path, gpu=1)
    result = invoke(
        submit, str(space), *PLACEMENTS["new"], "--tracking-uri", URI, "--tracking-secret", "team-login", "--dry-run"
    )
    assert result.exit_code == 0, result.output
    assert "Secret 'team-login'" in result.stderr
    containers = _containers(next(yaml.safe_load_all(result.stdout)))
    assert len(containers) == 2  # head and workers
    for container in containers:
        env = {e["name"]: e for e in container["env"]}
        assert env["MLFLOW_TRACKING_URI"] == {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.team:5000"}
        refs = {k: env[k]["valueFrom"]["secretKeyRef"] for k in CREDENTIAL_KEYS}
        assert {(r["name"], r["key"]) for r in refs.values()} == {("team-login", k) for k in CREDENTIAL_KEYS}
        # A login in the URI makes the Secret's login keys required; the token stays optional.
        assert [refs[k]["optional"] for k in CREDENTIAL_KEYS] == [False, False, True]
        assert all("value" not in env[k] for k in CREDENTIAL_KEYS)


def test_without_a_login_every_secret_key_is_optional_and_nothing_is_noted(tmp_path: Path) -> None:
    bundle = SpaceBundle.from_path(write_study(tmp_path))
    job = build_submission(bundle, JobOptions(namespace="team", image=IMAGE), suffix="abcde").rayjob
    for container in _containers(job):
        refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
        assert [(r["key"], r["optional"]) for r in refs] == [(k, True) for k in CREDENTIAL_KEYS]
    result = invoke(submit, str(write_study(tmp_path / "b")), *PLACEMENTS["new"], "--dry-run")
    assert result.exit_code == 0 and result.stderr == ""


def test_a_database_uri_with_credentials_is_refused_without_echoing_them(tmp_path: Path) -> None:
    uri = f"postgresql://mlflow:{PASSWORD}@db:5432/mlflow"
    result = invoke(submit, str(write_study(tmp_path)), *PLACEMENTS["new"], "--tracking-uri", uri, "--dry-run")
    assert_clean_error(result, "--tracking-uri postgresql://db:5432/mlflow", "--tracking-secret")
    assert PASSWORD not in result.output


def test_a_token_in_the_query_is_refused_without_echoing_it(tmp_path: Path) -> None:
    uri = f"http://mlflow:5000/?token={PASSWORD}"
    result = invoke(submit, str(write_study(tmp_path)), *PLACEMENTS["new"], "--tracking-uri", uri, "--dry-run")
    assert_clean_error(result, "two shells")
    assert PASSWORD not in result.output


def test_tracking_secret_applies_to_a_new_cluster_only(tmp_path: Path) -> None:
    result = invoke(submit, str(write_study(tmp_path)), *PLACEMENTS["existing"], "--tracking-secret", "s", "--dry-run")
    assert result.exit_code == 2
    assert "--tracking-secret applies to --new-cluster" in result.stderr


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("args", "flag", "rule"),
    [
        (["-n", "Team_A"], "--namespace 'Team_A'", "DNS-1123 label"),
        (["-n", "a" * 64], "--namespace", "DNS-1123 label"),
        (["-n", "team.a"], "--namespace", "DNS-1123 label"),
        (["--tracking-secret", "Login_Secret"], "--tracking-secret 'Login_Secret'", "DNS-1123 subdomain"),
        (["--tracking-secret", "-x"], "--tracking-secret", "DNS-1123 subdomain"),
    ],
)
def test_invalid_names_are_one_line_before_anything_is_built(
    tmp_path: Path, args: list[str], flag: str, rule: str
) -> None:
    result = invoke(submit, str(write_study(tmp_path)), *PLACEMENTS["new"], *args, "--dry-run")
    assert_clean_error(result, flag, rule)
    assert result.stderr.count("\n") == 1 and result.stdout == ""


@pytest.mark.parametrize("cluster", ["Search_Cluster", "9search", "search.cluster", "c" * 64])
def test_invalid_cluster_names_are_one_line(tmp_path: Path, cluster: str) -> None:
    result = invoke(submit, str(write_study(tmp_path)), "--cluster", cluster, "--dry-run")
    assert_clean_error(result, f"--cluster {cluster!r}", "DNS-1035 label")
    assert result.stderr.count("\n") == 1


def test_an_invalid_namespace_is_refused_before_contacting_a_cluster(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-kubeconfig")
    result = invoke(jobs, "list", "-n", "Bad_NS", "--kubeconfig", missing)
    assert_clean_error(result, "--namespace 'Bad_NS'", "DNS-1123 label")


@pytest.mark.parametrize(
    ("rule", "good", "bad"),
    [
        (names.DNS1123_LABEL, ["a", "0a", "a-b", "a" * 63], ["", "A", "a_b", "a.b", "-a", "a-", "a" * 64]),
        (names.DNS1123_SUBDOMAIN, ["a.b", "0.a-b.c", "a" * 253], ["a..b", ".a", "a.", "A.b", "a" * 254]),
        (names.DNS1035_LABEL, ["a", "a-0"], ["0a", "a.b", "a_b", "a" * 64]),
        (names.RAYJOB_NAME, ["a" * 47], ["a" * 48]),
    ],
)
def test_name_rules(rule: names.NameRule, good: list[str], bad: list[str]) -> None:
    assert all(rule.matches(n) for n in good), good
    assert not any(rule.matches(n) for n in bad), bad
    with pytest.raises(ClusterError, match=r"^--flag"):
        names.check_name(bad[0], rule, "--flag")
    assert names.check_name(good[0], rule, "--flag") == good[0]
