"""Shared parts of the benchmarks: command line, machine facts, tables, results, a real MLflow server and Ray.

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
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from orchestrator.tracking.server import LoopbackMlflowServer

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


def parse_args(
    p: argparse.ArgumentParser, argv: Sequence[str] | None, sizes: Mapping[str, tuple[Any, Any]] | None = None
) -> argparse.Namespace:
    """Parse ``argv``, then quiet the libraries' chatter (see ``quiet_libraries``).

    ``sizes`` maps an option's dest to its (quick, full) defaults: an option left unset takes the
    one of the mode (``--quick`` or not)."""
    args = p.parse_args(argv)
    for dest, (quick, full) in (sizes or {}).items():
        if getattr(args, dest) is None:
            setattr(args, dest, quick if args.quick else full)
    quiet_libraries()
    return args


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
    return f"{x:.{digits}g}"  # significant digits: medians that differ in the fourth one stay apart


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


# --------------------------------------------------------------------------- a real MLflow server and Ray


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
def ray_and_mlflow(
    prefix: str, out: dict[str, Any], num_cpus: int | None = None
) -> Iterator[tuple[Path, LoopbackMlflowServer]]:
    """A scratch folder, a local Ray and a warmed-up mlflow server in it; both shut down afterwards.

    The server boots while Ray starts. Their start-up times go into ``out`` (``ray_startup_s``,
    ``mlflow_server_startup_s``, ``mlflow_server_warm_up_s``)."""
    with scratch_dir(prefix) as root:
        server = LoopbackMlflowServer(root).launch()
        try:
            out["ray_startup_s"] = local_ray(num_cpus)
            out["mlflow_server_startup_s"] = server.wait().startup_s
            out["mlflow_server_warm_up_s"] = server.warm_up()
            yield root, server
        finally:
            import ray

            ray.shutdown()
            server.stop()


def local_ray(num_cpus: int | None = None) -> float:
    """Start one local Ray (no dashboard, worker output kept out of the driver); returns the start time in s."""
    import logging

    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if ray.is_initialized():
        return 0.0
    t0 = time.perf_counter()
    # address="local": a bare ray.init() attaches to any Ray already running on this machine (someone else's)
    ray.init(
        address="local",
        num_cpus=num_cpus or cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    return time.perf_counter() - t0


@dataclass(frozen=True)
class TimedFit:
    """What ``timed_fit`` measured: Ray Tune's result grid, when ``fit`` started (``perf_counter``) and its seconds."""

    grid: Any
    started: float
    seconds: float

    @property
    def errors(self) -> int:
        return sum(1 for r in self.grid if r.error is not None)


def timed_fit(tuner: Any) -> TimedFit:
    """``tuner.fit()`` timed, with library chatter kept out of the tables."""
    with swallow_stdout():
        started = time.perf_counter()
        grid = tuner.fit()
        seconds = time.perf_counter() - started
    return TimedFit(grid, started, seconds)


def quiet_libraries() -> None:
    """Silence the INFO chatter of mlflow / alembic / ray that would bury the tables."""
    import logging
    import warnings

    for name in ("alembic", "mlflow", "ray", "ray.tune", "ray.train", "hyperopt", "optuna", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
