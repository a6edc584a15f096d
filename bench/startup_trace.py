"""Where a fresh ``orchestrator`` command spends its seconds: a timeline of one process, from outside the product.

Run as a script in the process being measured (it needs nothing but the standard library, so it runs as well in
another checkout's environment, the "before" side of a comparison)::

    python bench/startup_trace.py EVENTS.json -- run SPACE.yaml --tracking-uri ...

It installs post-import hooks that wrap a few functions when their modules load, calls ``orchestrator.cli.main``
with the arguments after ``--``, and writes the events as JSON when the interpreter exits (after every other exit
handler but those registered before it). Each event is ``[name, start, end]`` in ``time.time()`` seconds (``end``
equals ``start`` for an instant). The wrapped functions are the libraries' (``ray.init``, ``Tuner.fit``, Ray Tune's
callback list, ``ray.shutdown``), which every version of the product calls, and a few of the product's, wrapped
wherever they are defined (a name a version lacks is skipped). ``timeline`` turns the events into phases.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and sys.path and sys.path[0].endswith("bench"):
    del sys.path[0]  # run as a script: bench/logging.py would shadow the standard library's logging

import atexit
import functools
import importlib.abc
import importlib.machinery
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

# module -> (dotted attribute, event name, every call (True) or the first only)
WRAPPED: dict[str, list[tuple[str, str, bool]]] = {
    "ray": [("init", "ray.init", False), ("shutdown", "ray.shutdown", True)],
    "ray.tune.tuner": [("Tuner.fit", "tuner.fit", False)],
    "ray.tune.callback": [
        ("CallbackList.setup", "callbacks.setup", False),
        ("CallbackList.on_trial_start", "trial.start", True),
        ("CallbackList.on_trial_result", "trial.result", True),
        ("CallbackList.on_trial_complete", "trial.complete", True),
        ("CallbackList.on_experiment_end", "experiment.end", False),
    ],
    # the searcher as Ray Tune calls it (every searcher sits under a ConcurrencyLimiter there)
    "ray.tune.search.concurrency_limiter": [
        ("ConcurrencyLimiter.suggest", "searcher.suggest", True),
        ("ConcurrencyLimiter.on_trial_result", "searcher.result", True),
        ("ConcurrencyLimiter.on_trial_complete", "searcher.complete", True),
    ],
    "orchestrator.engine.peers": [("StudyPeers.read", "peers.read", True), ("StudyPeers.snapshot", "peers.wait", True)],
    "orchestrator.tracking.mlflow_store": [("open_store", "store.open", False)],
    "orchestrator.tracking.carried": [("carried_trials", "warm_start", False)],
    "orchestrator.engine.runner": [
        ("open_store", "store.open", False),
        ("carried_trials", "warm_start", False),
        ("_record_end", "search.end", False),
    ],
    "orchestrator.engine.plan": [("build_searcher", "build_searcher", False), ("build_tuner", "build_tuner", False)],
    "orchestrator.review.trial": [
        ("TrialReviews.finish", "reviews.wait", False),
        ("TrialReviews.model", "reviews.model_wait", False),
    ],
    "orchestrator.review.search": [
        ("review_search", "search.review", False),
        ("log_search_review", "search.review", False),  # what older versions call at the end
        ("plot_best_so_far", "search.review.best_so_far", False),
    ],
    "orchestrator.analysis.importance": [("parameter_importance", "search.review.importance", False)],
    "orchestrator.models.register": [("log_best_model", "search.review.model", False)],
    "orchestrator.tracking.ledger": [("write_artifact", "search.ledger", False)],
}
MODULE_LOADED = ("orchestrator.engine.runner", "ray.tune")  # when these finish importing: an instant event

EVENTS: list[list[Any]] = []
_LOCK = threading.Lock()


def _record(name: str, start: float, end: float) -> None:
    with _LOCK:
        EVENTS.append([name, start, end])


def _wrap(function: Callable[..., Any], name: str, every: bool) -> Callable[..., Any]:
    seen = [False]

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if seen[0] and not every:
            return function(*args, **kwargs)
        seen[0] = True
        start = time.time()
        try:
            return function(*args, **kwargs)
        finally:
            _record(name, start, time.time())

    return wrapper


def _patch(module: Any) -> None:
    for dotted, name, every in WRAPPED.get(module.__name__, ()):
        owner: Any = module
        *path, attr = dotted.split(".")
        try:
            for part in path:
                owner = getattr(owner, part)
            original = getattr(owner, attr)
        except AttributeError:
            continue
        if isinstance(owner, type) and isinstance(owner.__dict__.get(attr), staticmethod | classmethod):
            continue
        setattr(owner, attr, _wrap(original, name, every))
    if module.__name__ in MODULE_LOADED:
        now = time.time()
        _record(f"imported {module.__name__}", now, now)


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader):
        self.inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.inner.exec_module(module)
        _patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in WRAPPED and fullname not in MODULE_LOADED:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader)
                return spec
        return None


def install(out: str) -> None:
    sys.meta_path.insert(0, _Finder())

    def write() -> None:
        _record("exit", time.time(), time.time())
        with open(out, "w") as f:
            json.dump(EVENTS, f)

    atexit.register(write)  # registered first: runs after every later handler (Ray's, mlflow's)


# --------------------------------------------------------------------------- reading a trace


def first(events: Sequence[Sequence[Any]], name: str) -> tuple[float, float] | None:
    spans = sorted((e[1], e[2]) for e in events if e[0] == name)
    return spans[0] if spans else None


def last(events: Sequence[Sequence[Any]], name: str) -> tuple[float, float] | None:
    spans = sorted((e[1], e[2]) for e in events if e[0] == name)
    return spans[-1] if spans else None


def timeline(events: Sequence[Sequence[Any]], started: float, ended: float) -> dict[str, float | None]:
    """Seconds from the process's start (``started``, ``time.time()`` just before it was spawned) to each landmark,
    and the phases between them; None where the trace lacks the event."""

    def at(name: str, which: str = "start", pick: Callable[..., Any] = first) -> float | None:
        span = pick(events, name)
        if span is None:
            return None
        return (span[0] if which == "start" else span[1]) - started

    marks: dict[str, float | None] = {
        "imports_done_s": at("imported orchestrator.engine.runner"),
        "ray_init_start_s": at("ray.init"),
        "ray_init_end_s": at("ray.init", "end"),
        "store_open_start_s": at("store.open"),
        "store_open_end_s": at("store.open", "end"),
        "warm_start_end_s": at("warm_start", "end"),
        "fit_start_s": at("tuner.fit"),
        "first_trial_start_s": at("trial.start"),
        "first_result_s": at("trial.result"),
        "last_complete_s": at("trial.complete", pick=last),
        "fit_end_s": at("tuner.fit", "end"),
        "shutdown_start_s": at("ray.shutdown"),
        "shutdown_end_s": at("ray.shutdown", "end", pick=last),
        "exit_handlers_done_s": at("exit"),
        "process_end_s": ended - started,
    }
    ray_init = first(events, "ray.init")
    marks["ray_init_s"] = ray_init[1] - ray_init[0] if ray_init else None
    marks["reviews_wait_s"] = _span(first(events, "reviews.wait"))
    marks["search_review_s"] = _span(first(events, "search.review"))
    for part in ("best_so_far", "importance", "model"):
        marks[f"search_review_{part}_s"] = _span(first(events, f"search.review.{part}"))
    marks["search_review_model_wait_s"] = _span(first(events, "reviews.model_wait"))
    marks["search_ledger_s"] = _span(first(events, "search.ledger"))
    marks["trials_started"] = sum(1 for e in events if e[0] == "trial.start")
    marks["results"] = sum(1 for e in events if e[0] == "trial.result")
    return marks


# The driver's work per trial that the trace times: (what, the events that are part of it)
DRIVER_WORK = {
    "callbacks": ("trial.start", "trial.result", "trial.complete"),
    "searcher": ("searcher.suggest", "searcher.result", "searcher.complete"),
    "peers_read": ("peers.read",),  # in the peers' own thread, every PEERS_POLL_S: off the trials' path
    "peers_wait": ("peers.wait",),  # at each suggestion: what it waited for a fresh read (none without other searches)
}


def driver_work(events: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Seconds the driver spent in each part of ``DRIVER_WORK`` (every callback of the run's list, Ray Tune's own
    loggers included; the searcher as Ray Tune calls it; other live searches' reads), their count, and per trial
    in milliseconds."""
    trials = max(1, sum(1 for e in events if e[0] == "trial.complete"))
    out: dict[str, Any] = {"trials": trials}
    for part, names in DRIVER_WORK.items():
        spans = [e[2] - e[1] for e in events if e[0] in names]
        out[f"{part}_s"] = sum(spans)
        out[f"{part}_calls"] = len(spans)
        out[f"{part}_ms_per_trial"] = 1000 * sum(spans) / trials
    waits = [e[2] - e[1] for e in events if e[0] == "peers.wait"]
    out["peers_wait_max_ms"] = 1000 * max(waits, default=0.0)
    return out


def _span(span: tuple[float, float] | None) -> float | None:
    return span[1] - span[0] if span else None


def main(argv: Sequence[str]) -> None:
    out, sep, *rest = argv
    assert sep == "--", "usage: startup_trace.py EVENTS.json -- ARGS..."
    install(out)
    from orchestrator.cli import main as cli_main

    _record("cli.main", time.time(), time.time())
    cli_main(list(rest))


if __name__ == "__main__":
    main(sys.argv[1:])
