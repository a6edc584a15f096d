"""``deploy/team-server/start.sh`` starts the team's stack on this machine and stops all of it on SIGTERM or Ctrl-C.

Run twice on one folder: the first run makes the database cluster and the secrets (mode 0600), the admin creates an
experiment, SIGTERM stops MLflow, S3 and PostgreSQL (every port closed, no PostgreSQL left running); the second run
finds the experiment again in the database and stops on SIGINT the same way.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.tracking.server import LOOPBACK, free_loopback_port
from orchestrator.tracking.team_server import ADMIN_USER, SECRETS_FILE
from tests.conftest import ROOT
from tests.team.stack import require_postgres

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "deploy" / "team-server" / "start.sh"
BANNER = "team tracking server at "
START_S = 240


@pytest.fixture
def folder() -> Iterator[Path]:
    """The script's folder: under /tmp and enterable by others (PostgreSQL runs as 'postgres' when we are root)."""
    require_postgres()
    path = Path(tempfile.mkdtemp(prefix="orchestrator-team-"))
    path.chmod(0o711)
    yield path / "state"
    shutil.rmtree(path, ignore_errors=True)


def start(folder: Path, port: int, db_port: int) -> tuple[subprocess.Popen[str], list[str]]:
    """The script, until it prints its banner; returns the process and what it printed."""
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONUNBUFFERED": "1"}
    args = [str(SCRIPT), str(folder), "--port", str(port), "--db-port", str(db_port), "--workers", "1"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + START_S
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            pytest.fail("the script exited:\n" + "".join(lines))
        lines.append(line)
        if line.startswith(BANNER):
            return proc, lines
    proc.kill()
    pytest.fail("no banner within the time:\n" + "".join(lines))


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((LOOPBACK, port)) == 0


def stop(proc: subprocess.Popen[str], signum: int, folder: Path, ports: tuple[int, int]) -> str:
    proc.send_signal(signum)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert "stopping the MLflow server, S3 and PostgreSQL" in output
    assert not any(listening(p) for p in ports), "a port is still served"
    assert not (folder / "postgres" / "data" / "postmaster.pid").exists(), "PostgreSQL is still running"
    return output


def test_the_script_starts_the_stack_and_stops_all_of_it_on_sigterm_and_sigint(folder: Path) -> None:
    from mlflow.tracking import MlflowClient

    port, db_port = free_loopback_port(), free_loopback_port()
    proc, lines = start(folder, port, db_port)
    banner = lines[-1]
    assert banner.startswith(f"{BANNER}http://{LOOPBACK}:{port} (basic auth; admin user '{ADMIN_USER}'")
    secrets = folder / SECRETS_FILE
    assert secrets.stat().st_mode & 0o777 == 0o600
    values = dict(line.split("=", 1) for line in secrets.read_text().splitlines())
    assert not any(value in "".join(lines) for value in values.values()), "a secret was printed"
    try:
        admin = MlflowClient(f"http://{ADMIN_USER}:{values['ADMIN_PASSWORD']}@{LOOPBACK}:{port}")
        experiment = admin.create_experiment("kept_across_restarts")
    finally:
        stop(proc, signal.SIGTERM, folder, (port, db_port))

    proc, _ = start(folder, port, db_port)  # the same folder: the same database and secrets
    try:
        assert admin.get_experiment_by_name("kept_across_restarts").experiment_id == experiment
    finally:
        stop(proc, signal.SIGINT, folder, (port, db_port))
