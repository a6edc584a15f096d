"""The loopback ``mlflow server`` helper: what it runs, and what it says when the server cannot start."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from orchestrator.tracking.server import LOOPBACK, LoopbackMlflowServer, MlflowServerError, PortInUse


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_command_binds_loopback_and_keeps_store_and_artifacts_under_root(tmp_path: Path) -> None:
    server = LoopbackMlflowServer(tmp_path, port=5123, workers=2)
    command = server.command()
    assert command[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert _option(command, "--host") == LOOPBACK == "127.0.0.1"
    assert _option(command, "--port") == "5123" and _option(command, "--workers") == "2"
    assert server.uri == "http://127.0.0.1:5123"
    assert _option(command, "--backend-store-uri") == server.backend_store_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert Path(_option(command, "--artifacts-destination")).parent == tmp_path
    assert not server.running


def test_wait_before_launch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MlflowServerError, match="launch"):
        LoopbackMlflowServer(tmp_path).wait(1)


class ExitingServer(LoopbackMlflowServer):
    """A server whose command line mlflow refuses: it exits at once, its reason in its log."""

    def command(self) -> list[str]:
        return [*super().command(), "--no-such-option"]


@pytest.mark.slow
def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    server = ExitingServer(tmp_path)
    with pytest.raises(MlflowServerError, match="exited with code") as info:
        server.start(timeout=90)
    assert "no such option" in str(info.value).lower()
    assert not server.running


@pytest.mark.slow  # refused before the process starts, but start() is called (the suite's watcher counts it)
def test_a_port_someone_listens_on_is_refused_before_a_server_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        server = LoopbackMlflowServer(tmp_path, port=taken.getsockname()[1])
        with pytest.raises(PortInUse, match="is in use"):
            server.start(timeout=90)
    assert not server.running
