"""Real services for engine tests: an `mlflow server` process on loopback and a local Ray."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 with a SQLite store; can be stopped and started again."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> None:
        log = (self.root / "server.log").open("ab")
        cmd = [
            str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"),
        ]  # fmt: skip
        # MLflow's job runner polls with several workers: on 2 cores it slows every request.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("mlflow server did not answer /health in time")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _ray_session() -> Iterator[None]:
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def local_ray(_ray_session: None) -> None:
    """A local Ray shared by the tests that use it (runs reuse it instead of starting their own)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)


SPACE_HEAD = """\
study: {study}
version: {version}
{parent}trainable: analytic
metric: {{name: loss, mode: min}}
schedule: {{scheduler: {scheduler}, max_epochs: {epochs}, grace_period: 1}}
resources: {{cpu: {cpu}, gpu: {gpu}}}
search: {{trials: {trials}, startup_trials: {startup}}}
fixed: {{function: quadratic, sleep: {sleep}}}
params:
"""


def write_space(
    root: Path, study: str, params: str, version: int = 1, *, trials: int = 4, epochs: int = 3, startup: int = 4,
    scheduler: str = "fifo", sleep: float = 0.0, cpu: float = 1, gpu: float = 0,
) -> Path:  # fmt: skip
    folder = root / "search_spaces" / study
    folder.mkdir(parents=True, exist_ok=True)
    parent = f"parent: {version - 1}\n" if version > 1 else ""
    text = SPACE_HEAD.format(study=study, version=version, parent=parent, scheduler=scheduler, epochs=epochs,
                             cpu=cpu, gpu=gpu, trials=trials, startup=startup, sleep=sleep) + params  # fmt: skip
    path = folder / f"v{version}.yaml"
    path.write_text(text)
    return path
