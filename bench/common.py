"""Shared parts of the benchmarks: command line, machine facts, tables, results, a real MLflow server.

Everything heavy (ray, mlflow, torch) is imported lazily, so ``bench.train_throughput`` runs on a
machine that has only torch, and package versions are read from the installed metadata.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("ray", "hyperopt", "mlflow", "torch", "optuna", "numpy", "pyarrow")


# --------------------------------------------------------------------------- command line


_START_LOAD: list[float] = []


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with ``--quick`` and ``--out`` (the result file; default bench/results/<name>.json).

    Also notes the load average: other work on the machine shows up in the timings, so results record it."""
    _START_LOAD[:] = load_average()
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: about two minutes on 2 CPU cores")
    p.add_argument("--out", type=Path, help="where to write the result JSON (default: bench/results/<name>.json)")
    return p


# --------------------------------------------------------------------------- machine facts


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not available on this platform
        return []


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in PACKAGES},
    }
    info["gpu"] = _gpu_name()
    info["load_average_1_5_15m"] = {"start": list(_START_LOAD), "end": load_average()}
    return info


def _gpu_name() -> str | None:
    """The CUDA device's name when torch is installed and sees one (torch is not imported otherwise)."""
    if "torch" not in sys.modules and _version("torch") is None:
        return None
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA install must not stop a CPU benchmark
        return None


# --------------------------------------------------------------------------- results


def result_payload(name: str, quick: bool, figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "benchmark": name,
        "mode": "quick" if quick else "full",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        **figures,
    }


def finish(name: str, quick: bool, figures: dict[str, Any], out: Path | None = None) -> dict[str, Any]:
    """Write ``bench/results/<name>.json`` and print the ``RESULT <json>`` line (the last line of output)."""
    payload = result_payload(name, quick, figures)
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_jsonable) + "\n")
    sys.stderr.flush()
    print(f"(written to {_show_path(path)})")
    print("RESULT " + json.dumps(payload, separators=(",", ":"), default=_jsonable), flush=True)
    return payload


def _show_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serializable: {type(x).__name__}")


def parse_result_line(text: str) -> dict[str, Any]:
    """The JSON of the last ``RESULT`` line in ``text`` (what a benchmark printed)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise ValueError("no RESULT line in the output")
    return json.loads(lines[-1].removeprefix("RESULT "))


# --------------------------------------------------------------------------- tables and numbers


def fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool) or not isinstance(x, int | float):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if not math.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}" if abs(x) >= 1 else f"{x:.{digits - 1}f}".rstrip("0").rstrip(".") or "0"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> str:
    """A plain-text table, numbers right-aligned."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) or row[i] is None for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    out += [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    print("\n" + table(headers, rows, title), flush=True)


class Timer:
    """``with Timer() as t: ...`` then ``t.s`` holds the seconds."""

    def __enter__(self) -> Timer:
        self.s = 0.0
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self._t0


# --------------------------------------------------------------------------- a real MLflow server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real ``mlflow server`` process on a free loopback port, with a SQLite store in ``root``."""

    def __init__(self, root: Path, workers: int = 1, jobs: bool = False):
        """``jobs=False`` turns off MLflow's job runner (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION``): its huey worker
        processes poll all the time, which on a 2-core machine takes CPU from the trials being measured; a
        team's server runs on a machine of its own. Tracking calls do not use it."""
        self.root = root
        self.workers = workers
        self.jobs = jobs
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.db = root / "mlflow.db"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0

    @property
    def sqlite_uri(self) -> str:
        return f"sqlite:///{self.db}"

    def start(self, timeout: float = 120.0) -> MlflowServer:
        return self.launch().wait(timeout)

    def launch(self) -> MlflowServer:
        """Start the process and return at once (``wait`` for it to answer)."""
        self._t0 = time.perf_counter()
        log = (self.root / "server.log").open("ab")
        cmd = [
            str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers), "--backend-store-uri", self.sqlite_uri,
            "--artifacts-destination", str(self.root / "artifacts"),
        ]  # fmt: skip
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if self.jobs else "false"}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
        return self

    def wait(self, timeout: float = 120.0) -> MlflowServer:
        """Until ``/health`` answers; ``startup_s`` counts from ``launch``."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        self.startup_s = time.perf_counter() - self._t0
                        return self
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer /health within {timeout:.0f}s")

    def warm_up(self) -> float:
        """A freshly started server answers its first searches slowly (seconds): send two before timing."""
        from mlflow.tracking import MlflowClient

        t0 = time.perf_counter()
        client = MlflowClient(self.uri)
        client.search_experiments(max_results=1)
        client.search_runs(["0"], max_results=1)
        return time.perf_counter() - t0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


@contextmanager
def swallow_stdout() -> Iterator[io.StringIO]:
    """Keep library chatter (MLflow prints two "View run" lines per ended run over HTTP) out of the tables."""
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        yield buffer


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{prefix}-") as d:
        yield Path(d)


@contextmanager
def mlflow_server(prefix: str = "mlflow") -> Iterator[MlflowServer]:
    """A started server in a temporary folder, stopped and removed afterwards."""
    with scratch_dir(prefix) as root, MlflowServer(root) as server:
        yield server


def local_ray(num_cpus: int | None = None) -> float:
    """Start one local Ray (no dashboard, worker output kept out of the driver); returns the start time in s."""
    import logging

    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if ray.is_initialized():
        return 0.0
    t0 = time.perf_counter()
    # address="local": a bare ray.init() attaches to any Ray already running on this machine (someone else's)
    ray.init(address="local", num_cpus=num_cpus or cpu_count(), include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)  # fmt: skip
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    return time.perf_counter() - t0


def quiet_libraries() -> None:
    """Silence the INFO chatter of mlflow / alembic / ray that would bury the tables."""
    import logging
    import warnings

    for name in ("alembic", "mlflow", "ray", "ray.tune", "ray.train", "hyperopt", "optuna", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
