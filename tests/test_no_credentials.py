"""A planted login is in no output and no file that a real search, a refused store and ``submit --dry-run`` produce.

The password (and the user name) go into ``--tracking-uri`` of a real search through the command line against a
real ``mlflow server`` (it does not check logins; MLflow's client still sends them), and the password also into a
space's secret-looking keys: a ``fixed:`` entry and a fixed entry of a choice's sub-space. One trial fails. Then
every byte is searched: the commands' output, every file under the storage folder (Ray Tune's pickles, JSON,
checkpoints), the server's store and artifacts, and the session folder of the Ray the search started.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from orchestrator.redaction import REDACTED
from orchestrator.tracking.server import LOOPBACK, LoopbackMlflowServer, free_loopback_port
from tests.conftest import MINIMAL_HEAD, ROOT

pytestmark = pytest.mark.slow

PASSWORD = f"pw-{uuid.uuid4().hex}"
USER = f"user-{uuid.uuid4().hex[:12]}"
IMAGE = "registry.example.com/orchestrator:0.1.0"

SPACE = (
    MINIMAL_HEAD.replace("study: demo", "study: planted")
    + f"""\
schedule: {{scheduler: fifo, max_epochs: 2}}
search: {{algorithm: tpe, trials: 3, startup_trials: 2}}
params:
  x: {{uniform: [-1.0, 1.0]}}
  fail_at_epoch: {{choice: [1, 99]}}
  optimizer:
    choice:
      - {{name: adam}}
      - {{name: sgd, momentum: {{uniform: [0.8, 0.99]}}, api_key: {PASSWORD}}}
fixed: {{function: quadratic, choice: {{name: vault, password: {PASSWORD}}}}}
"""
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


def leaks(outputs: Mapping[str, str], roots: list[Path]) -> list[str]:
    """Where either planted string appears, in any of its forms: ``what (form)``."""
    forms = {f"{name} {form}": value for name in (PASSWORD, USER) for form, value in encodings(name).items()}
    found = [f"{what} ({form})" for what, text in outputs.items() for form, v in forms.items() if v in text.encode()]
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


def test_a_planted_login_is_in_no_output_and_no_file(tmp_path: Path, ray_tmp: Path) -> None:
    space = tmp_path / "spaces" / "planted" / "v1.yaml"
    space.parent.mkdir(parents=True)
    space.write_text(SPACE)
    clean_space = tmp_path / "spaces" / "clean" / "v1.yaml"
    clean_space.parent.mkdir()
    clean_space.write_text(  # the same space without its secrets
        SPACE.replace("study: planted", "study: clean")
        .replace(f"api_key: {PASSWORD}", "label: a")
        .replace(f"password: {PASSWORD}", "label: b")
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

    with LoopbackMlflowServer(tmp_path / "mlflow") as server:
        uri = server.uri.replace("http://", f"http://{USER}:{PASSWORD}@")
        search = cli("run", str(space), "--tracking-uri", uri, "--storage", str(storage), "--no-live", env=env)
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
