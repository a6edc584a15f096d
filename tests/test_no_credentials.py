"""A planted login is in no output and no file that a real search, a refused store and ``submit --dry-run`` produce;
and none of the team stack's secrets is anywhere the orchestrator prints, writes, logs to MLflow or submits.

The password (and the user name) go into ``--tracking-uri`` of a real search through the command line against a
real ``mlflow server`` (it does not check logins; MLflow's client still sends them), and the password also into a
space's secret-looking keys: a ``fixed:`` entry and a fixed entry of a choice's sub-space. One trial fails. Then
every byte is searched: the commands' output, every file under the storage folder (Ray Tune's pickles, JSON,
checkpoints), the server's store and artifacts, and the session folder of the Ray the search started.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from orchestrator.redaction import REDACTED
from orchestrator.tracking import schema
from orchestrator.tracking.server import LOOPBACK, free_loopback_port
from orchestrator.tracking.team_server import AUTH_DB_NAME, DB_NAME
from tests.plugin import SqliteTemplate
from tests.spacefiles import ROOT, space_doc, write_space
from tests.team.stack import Team

pytestmark = pytest.mark.slow

PASSWORD = f"pw-{uuid.uuid4().hex}"
USER = f"user-{uuid.uuid4().hex[:12]}"
IMAGE = "registry.example.com/orchestrator:0.1.0"

SPACE = space_doc(
    "planted",
    schedule="{scheduler: fifo, max_epochs: 2}",
    search="{algorithm: tpe, trials: 3, startup_trials: 2}",
    params=f"""\
  x: {{uniform: [-1.0, 1.0]}}
  fail_at_epoch: {{choice: [1, 99]}}
  optimizer:
    choice:
      - {{name: adam}}
      - {{name: sgd, momentum: {{uniform: [0.8, 0.99]}}, api_key: {PASSWORD}}}
""",
    fixed=f"{{function: quadratic, choice: {{name: vault, password: {PASSWORD}}}}}",
)


def encodings(secret: str) -> dict[str, bytes]:
    """``secret`` as bytes in the forms a file may hold it: plain, URL-encoded, hex, base64 (either alphabet)."""
    raw = secret.encode()
    forms = {"plain": raw, "url-encoded": quote(secret, safe="").encode(), "hex": raw.hex().encode()}
    forms["HEX"] = forms["hex"].upper()
    for shift in range(3):  # base64 depends on where the secret starts within a 3-byte group
        encoded = base64.b64encode(b"\0" * shift + raw)
        core = encoded[4 if shift else 0 : -4]  # the characters made of the secret's bytes alone
        forms[f"base64+{shift}"] = core
        forms[f"urlsafe-base64+{shift}"] = core.translate(bytes.maketrans(b"+/", b"-_"))
    return forms


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from (p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink())


def leaks(outputs: Mapping[str, str | bytes], roots: list[Path], planted: Mapping[str, str] | None = None) -> list[str]:
    """Where a planted string (default: the password and the user name) appears, in any of its forms:
    ``what (name form)``; ``outputs`` are texts or bytes by what they are."""
    secrets = planted if planted is not None else {"password": PASSWORD, "user": USER}
    forms = {f"{name} {form}": value for name, secret in secrets.items() for form, value in encodings(secret).items()}
    found = []
    for what, text in outputs.items():
        data = text if isinstance(text, bytes) else text.encode()
        found += [f"{what} ({form})" for form, value in forms.items() if value in data]
    for path in files_under(*roots):
        data = path.read_bytes()
        found += [f"{path} ({form})" for form, value in forms.items() if value in data]
    return found


def cli(*args: str, env: Mapping[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """Ray's temporary folder for the search's local Ray: short (socket paths), and searched like the rest."""
    folder = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_planted_login_is_in_no_output_and_no_file(
    tmp_path: Path, ray_tmp: Path, sqlite_template: SqliteTemplate
) -> None:
    space = write_space(tmp_path / "spaces", SPACE, study="planted")
    clean_space = write_space(  # the same space without its secrets
        tmp_path / "spaces",
        SPACE.replace("study: planted", "study: clean")
        .replace(f"api_key: {PASSWORD}", "label: a")
        .replace(f"password: {PASSWORD}", "label: b"),
        study="clean",
    )
    storage = tmp_path / "storage"
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "RAY_TMPDIR": str(ray_tmp),
        "ORCHESTRATOR_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_PASSWORD": PASSWORD,  # MLflow's own variable too: the local Ray's processes inherit it
    }
    outputs: dict[str, str] = {}

    with sqlite_template.server(tmp_path / "mlflow") as server:
        uri = server.uri.replace("http://", f"http://{USER}:{PASSWORD}@")
        search = cli(  # seed 0, as before searches got a seed each: one of its two start-up trials fails at epoch 1
            "run", str(space), "--tracking-uri", uri, "--storage", str(storage), "--no-live", "--seed", "0", env=env
        )
        outputs |= {"run stdout": search.stdout, "run stderr": search.stderr}
        assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-3000:]
        assert f"at {server.uri}" in search.stdout

        from mlflow.tracking import MlflowClient

        client = MlflowClient(server.uri)
        experiment = client.get_experiment_by_name("planted")
        trials = client.search_runs([experiment.experiment_id], "tags.`orchestrator.kind` = 'trial'")
        assert len(trials) == 3
        assert "FAILED" in {t.info.status for t in trials}, "a trial fails (its error is recorded)"
        configs = [yaml.safe_load(t.data.tags["orchestrator.config"]) for t in trials]
        sgd = [c["optimizer"] for c in configs if c["optimizer"]["name"] == "sgd"]
        assert sgd and all(o["api_key"] == REDACTED for o in sgd), "the secret entry is recorded, redacted"

    refused_uri = f"http://{USER}:{PASSWORD}@{LOOPBACK}:{free_loopback_port()}"  # MLflow's error names the URI
    refused = cli("report", "planted", "--tracking-uri", refused_uri, env=env, timeout=120)
    outputs |= {"refused stdout": refused.stdout, "refused stderr": refused.stderr}
    assert refused.returncode == 1 and f"{LOOPBACK}:" in refused.stderr, refused.stderr

    submit = ("-n", "team", "--new-cluster", "--image", IMAGE, "--tracking-uri", uri, "--dry-run")
    secret_space = cli("submit", str(space), *submit, env=env, timeout=120)
    outputs |= {"submit (secrets) stdout": secret_space.stdout, "submit (secrets) stderr": secret_space.stderr}
    assert secret_space.returncode == 1 and "secret-looking keys" in secret_space.stderr, secret_space.stderr
    dry_run = cli("submit", str(clean_space), *submit, env=env, timeout=120)
    outputs |= {"submit stdout": dry_run.stdout, "submit stderr": dry_run.stderr}
    assert dry_run.returncode == 0, dry_run.stderr
    objects = list(yaml.safe_load_all(dry_run.stdout))
    assert objects[0]["kind"] == "RayJob" and f"--tracking-uri {server.uri}" in objects[0]["spec"]["entrypoint"]

    roots = [storage, tmp_path / "mlflow", ray_tmp]
    assert list(files_under(storage)) and (tmp_path / "mlflow" / "mlflow.db").is_file()
    assert list((ray_tmp / "ray").glob("session_*/logs/*")), "the search's Ray wrote its session here"
    assert leaks(outputs, roots) == []


def test_a_planted_ray_token_is_in_nothing_we_print_write_log_or_submit(
    tmp_path: Path, sqlite_template: SqliteTemplate
) -> None:
    """The cluster's token (``RAY_AUTH_TOKEN`` of every command, the file of every node) and a wrong one.

    A real head + worker cluster started with the planted token; a search through ``run --address``; a search
    submitted through the Jobs API (``--dry-run`` first), followed, inspected and listed; a submission with the
    wrong token. Searched: every command's output, the job as the cluster recorded it, the storage folder, the
    tracking server's store and artifacts, and the nodes' Ray folders (logs, the job's unpacked working_dir).
    """
    from tests.engine.ray_cluster import started_cluster

    token, wrong = secrets.token_hex(32), secrets.token_hex(32)
    space = write_space(
        tmp_path / "spaces",
        study="tokened",
        schedule="{scheduler: fifo, max_epochs: 2}",
        search="{algorithm: tpe, trials: 2, startup_trials: 2}",
    )
    storage, home = tmp_path / "storage", tmp_path / "home"
    outputs: dict[str, str] = {}

    server = sqlite_template.server(tmp_path / "mlflow").launch()
    try:
        for cluster in started_cluster(tmp_path / "nodes", [(2, 0)], head_cpus=0, dashboard=True, token=token):
            cluster.wait_for_job_server()
            server.wait()
            env = {**cluster.env, "RAY_AUTH_TOKEN": token, "ORCHESTRATOR_HOME": str(home), "PYTHONUNBUFFERED": "1"}
            env.pop("RAY_AUTH_TOKEN_PATH")
            at = ("--tracking-uri", server.uri, "--storage", str(storage))

            run = [sys.executable, "-m", "orchestrator", "run", str(space), "--address", cluster.address, *at]
            search = subprocess.Popen(  # beside the submitted one: the cluster fits both
                [*run, "--no-live"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )

            jobs_api = ("--ray-address", cluster.dashboard_url)
            dry_run = cli("submit", str(space), *jobs_api, *at, "--dry-run", env=env)
            submitted = cli("submit", str(space), *jobs_api, *at, env=env)
            outputs |= {"dry run": dry_run.stdout + dry_run.stderr, "submit": submitted.stdout + submitted.stderr}
            assert dry_run.returncode == 0 and submitted.returncode == 0, submitted.stdout + submitted.stderr
            job = submitted.stdout.split()[3]
            for command in (("logs", job, "--follow"), ("status", job), ("list",)):
                done = cli("jobs", *command, *jobs_api, env=env)
                outputs[f"jobs {command[0]}"] = done.stdout + done.stderr
                assert done.returncode == 0, done.stdout + done.stderr
            assert "2 finished, 0 failed" in outputs["jobs logs"], outputs["jobs logs"]
            assert "(FINISHED)" in outputs["jobs status"], outputs["jobs status"]

            refused = cli("submit", str(space), *jobs_api, *at, env={**env, "RAY_AUTH_TOKEN": wrong})
            outputs["refused"] = refused.stdout + refused.stderr
            assert refused.returncode == 1 and "refused the token from RAY_AUTH_TOKEN" in refused.stderr

            run_out, run_err = search.communicate(timeout=300)
            outputs |= {"run stdout": run_out, "run stderr": run_err}
            assert search.returncode == 0, run_out[-3000:] + run_err[-3000:]
            record = _job_record(cluster.dashboard_url, job, token)
            outputs["the job as the cluster recorded it"] = record
            assert job in record and "orchestrator run tokened/v1.yaml" in record

            roots = [storage, home, tmp_path / "mlflow", *(node.temp_dir for node in cluster.nodes)]
            assert list(files_under(storage)) and list((tmp_path / "mlflow").rglob("mlflow.db"))
            assert list(cluster.head.temp_dir.rglob("working_dir_files/*/tokened/v1.yaml")), "the job's files"
            assert leaks(outputs, roots, {"token": token, "wrong token": wrong}) == []
    finally:
        server.stop()


def _job_record(address: str, job: str, token: str) -> str:
    """Everything the cluster's job server keeps about ``job`` (entrypoint, runtime env, metadata): its JSON."""
    request = urllib.request.Request(f"{address}/api/jobs/{job}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read().decode()


# --------------------------------------------------------------------------- the team's stack

TEAM_SPACE = """\
study: planted_team
version: 1
trainable: analytic
metric: {name: loss, mode: min}
schedule: {scheduler: fifo, max_epochs: 2}
search: {algorithm: tpe, trials: 2, startup_trials: 2}
params:
  x: {uniform: [-1.0, 1.0]}
fixed: {function: quadratic}
"""


@pytest.fixture
def other_planted_secrets() -> dict[str, str]:
    """Secrets of other parts of the team's setup to search for too (name -> value). The Ray cluster's token has a
    test of its own with a token-authenticated cluster (``test_a_planted_ray_token_is_in_nothing_...``)."""
    return {}


def test_planted_team_secrets_are_in_no_output_no_file_no_record_and_no_submission(
    team: Team, tmp_path: Path, ray_tmp: Path, other_planted_secrets: dict[str, str]
) -> None:
    """The team server's secrets (PostgreSQL's password, the bucket's keys, the admin's), both users' passwords and
    a wrong one: in no output of ``run``, a refused ``run``, ``report``, ``access``, a refused login and
    ``submit --dry-run``; no file the search wrote (storage, Ray's session); no object in the bucket; no row of the
    tracking or the auth database (``pg_dump``). The bucket's and the database's secrets are in the user's shell
    too (``AWS_*``, ``PGPASSWORD``), as they may be on a teammate's machine."""
    wrong = f"wrong-{uuid.uuid4().hex}"
    planted = {
        **team.stack.secrets.values(),
        "alice's password": team.passwords["alice"],
        "bob's password": team.passwords["bob"],
        "a wrong password": wrong,
        **other_planted_secrets,
    }
    space = tmp_path / "spaces" / "planted_team" / "v1.yaml"
    space.parent.mkdir(parents=True)
    space.write_text(TEAM_SPACE)
    storage = tmp_path / "storage"
    shell = {
        "PYTHONUNBUFFERED": "1",
        "RAY_TMPDIR": str(ray_tmp),
        "ORCHESTRATOR_HOME": str(tmp_path / "home"),
        "AWS_ACCESS_KEY_ID": team.stack.secrets.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": team.stack.secrets.s3_secret_key,
        "PGPASSWORD": team.stack.secrets.db_password,
    }
    alice, bob = team.env("alice", **shell), team.env("bob", **shell)
    outputs: dict[str, str | bytes] = {}

    def record(what: str, done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        outputs[f"{what} stdout"], outputs[f"{what} stderr"] = done.stdout, done.stderr
        return done

    search = record("run", cli("run", str(space), "--storage", str(storage), "--no-live", env=alice))
    assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-3000:]
    refused = record("refused run", cli("run", str(space), "--storage", str(storage), "--no-live", env=bob))
    assert refused.returncode == 1 and "holds READ on study 'planted_team'" in refused.stderr, refused.stderr
    report = record("report", cli("report", "planted_team", env=bob))
    assert report.returncode == 0, report.stderr
    granted = record("access", cli("access", "planted_team", "--user", "bob", "--permission", "EDIT", env=alice))
    assert granted.returncode == 0 and granted.stdout.startswith("granted bob EDIT"), granted.stderr
    listed = record("access list", cli("access", "planted_team", env=bob))
    assert listed.returncode == 0 and "bob: experiment 'planted_team' EDIT" in listed.stdout, listed.stderr
    login = record("wrong login", cli("report", "planted_team", env={**bob, "MLFLOW_TRACKING_PASSWORD": wrong}))
    assert login.returncode == 1 and "(401 Unauthorized)" in login.stderr, login.stderr
    with_login = team.login_uri("alice")
    submit = ("-n", "team", "--new-cluster", "--image", IMAGE, "--tracking-uri", with_login, "--dry-run")
    dry_run = record("submit", cli("submit", str(space), *submit, env=alice, timeout=120))
    assert dry_run.returncode == 0, dry_run.stderr
    assert f"--tracking-uri {team.uri}" in next(yaml.safe_load_all(dry_run.stdout))["spec"]["entrypoint"]

    outputs |= {f"bucket {key}": data for key, data in team.objects().items()}
    assert any(key.endswith(schema.LEDGER_ARTIFACT) for key in outputs), "the search's records are in the bucket"
    for database in (DB_NAME, AUTH_DB_NAME):
        outputs[f"pg_dump {database}"] = team.stack.postgres.dump(database)
    assert "planted_team" in str(outputs[f"pg_dump {DB_NAME}"]), "the dump holds the search's runs"
    roots = [storage, ray_tmp, tmp_path / "home"]
    assert list(files_under(storage)) and list((ray_tmp / "ray").glob("session_*/logs/*"))
    assert leaks(outputs, roots, planted) == []
