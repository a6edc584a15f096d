"""A real ``mlflow server`` process on loopback, with its SQLite store and artifacts in one folder.

Used by the tests and the benchmarks, and meant for a local UI command: it binds only 127.0.0.1,
so nothing off this machine can reach it. mlflow is not imported here (the server runs as
``python -m mlflow server`` with this interpreter); only ``warm_up`` imports the client.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from orchestrator.errors import OrchestratorError

LOOPBACK = "127.0.0.1"
DEFAULT_UI_PORT = 5000  # MLflow's own default; `orchestrator ui --port` changes it
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_CHARS = 2000
# MLflow's job runner (huey workers) polls all the time: on a small machine it takes CPU from every
# request and from the trials being measured. Tracking calls do not use it.
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent thread ends


class MlflowServerError(RuntimeError):
    """The server exited or did not answer ``/health``; the message ends with the tail of its log."""


class PortInUse(OrchestratorError):
    """The port asked for is taken on 127.0.0.1 (another server): nothing was started."""


def check_port_free(port: int) -> None:
    """Raise ``PortInUse`` when something listens on 127.0.0.1:``port`` (a server started there would fail, and a
    health check would reach the other one)."""
    with socket.socket() as s:
        # As the server binds (uvicorn sets SO_REUSEADDR): a listener refuses the bind, the TIME_WAIT connections a
        # server stopped a moment ago on this port leaves behind do not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError as e:
            raise PortInUse(
                f"port {port} on {LOOPBACK} is in use ({e.strerror or e}); another server listens there: stop it "
                "or choose another port (--port)"
            ) from None


@contextmanager
def stopped_by_signals(signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """In the block, SIGTERM and SIGHUP end the command as Ctrl-C does (``KeyboardInterrupt``), so the servers it
    started are stopped on the way out rather than left running (Python's default for SIGTERM exits at once,
    skipping every ``finally``). Main thread only; the previous handlers come back after the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _death_signal() -> Callable[[], None] | None:
    """What the child runs between fork and exec so that it gets SIGTERM when the thread that started it ends,
    whatever ended it (SIGKILL too): Linux's ``prctl(PR_SET_PDEATHSIG)``, looked up here in the parent so the child
    only calls it. None where there is no such call (the server then dies with ``stop()`` and signals only)."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class LoopbackMlflowServer:
    """``mlflow server`` on ``127.0.0.1:<port>``: store ``root/mlflow.db``, artifacts ``root/artifacts``.

    The port is fixed when the object is made, so ``stop()`` then ``start()`` brings the same
    server back on the same address and store (an outage and its end). ``launch()`` starts the
    process without waiting, for callers that have other start-up work to overlap with it.
    """

    def __init__(
        self,
        root: Path,
        *,
        port: int | None = None,
        workers: int = 1,
        jobs: bool = False,
        backend_store_uri: str | None = None,
    ) -> None:
        """``jobs=True`` keeps MLflow's job runner on (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION``);
        ``backend_store_uri`` serves an existing store (``orchestrator ui``) instead of ``root/mlflow.db``."""
        self.root = Path(root)
        self.port = port if port is not None else free_loopback_port()
        self.workers = workers
        self.jobs = jobs
        self.uri = f"http://{LOOPBACK}:{self.port}"
        self.db_path = self.root / "mlflow.db"
        self._backend_store_uri = backend_store_uri
        self.log_path = self.root / "server.log"
        self.startup_s = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._launched_at = 0.0

    @property
    def backend_store_uri(self) -> str:
        """The store the server writes (by default the SQLite file ``db_path``), for reading it directly (no HTTP)."""
        return self._backend_store_uri or f"sqlite:///{self.db_path}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--backend-store-uri",
            self.backend_store_uri,
            "--artifacts-destination",
            str(self.root / "artifacts"),
        ]

    def environment(self) -> dict[str, str]:
        """Variables the server process gets on top of this process's environment (none here; a subclass's
        secrets go here, never into ``command()``, which any local user can read with ``ps``)."""
        return {}

    def launch(self) -> LoopbackMlflowServer:
        """Start the process and return at once; ``wait()`` for it to answer."""
        if self.running:
            raise MlflowServerError(f"mlflow server at {self.uri} is already running")
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {**os.environ, JOB_EXECUTION_ENV: "true" if self.jobs else "false", **self.environment()}
        check_port_free(self.port)
        self._launched_at = time.perf_counter()
        # A session of its own: stop() signals the whole group (the CLI, uvicorn and its workers). Started from the
        # main thread, it also dies with this process (``_death_signal``).
        main = threading.current_thread() is threading.main_thread()
        self._proc = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_death_signal() if main else None,
        )
        return self

    def wait(self, timeout: float = START_TIMEOUT_S) -> LoopbackMlflowServer:
        """Until ``/health`` answers; ``startup_s`` then holds the seconds since ``launch()``."""
        if self._proc is None:
            raise MlflowServerError("launch() the mlflow server before waiting for it")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise MlflowServerError(f"mlflow server exited with code {code}:\n{self.log_tail()}")
            if self._healthy():
                self.startup_s = time.perf_counter() - self._launched_at
                return self
            time.sleep(0.25)
        self.stop()
        raise MlflowServerError(
            f"mlflow server at {self.uri} did not answer /health within {timeout:.0f}s:\n{self.log_tail()}"
        )

    def start(self, timeout: float = START_TIMEOUT_S) -> LoopbackMlflowServer:
        return self.launch().wait(timeout)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:  # refused while it boots, or a timeout
            return False

    def warm_up(self) -> float:
        """A freshly started server answers its first searches slowly (seconds): send two; returns their time."""
        from mlflow.tracking import MlflowClient

        t0 = time.perf_counter()
        client = MlflowClient(self.uri)
        client.search_experiments(max_results=1)
        client.search_runs(["0"], max_results=1)
        return time.perf_counter() - t0

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no server log)"

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it is still there after a while."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LoopbackMlflowServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
