"""Run or resume one search: space file -> carried trials -> Ray Tune -> MLflow.

The flow (docs/architecture.md): load and validate the version with its lineage; check
the trainable, the tracking store and the Ray cluster early; read every earlier trial of
the study and carry those that fit; start a parent run; run Ray Tune with the warm-started
searcher, ASHA, per-trial resources, retries and actor reuse; log every trial as a nested
run from a background thread; finish the parent run with the leaderboard.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from orchestrator.checks import check_trainable
from orchestrator.errors import OrchestratorError
from orchestrator.spaces import StudyVersion, load_with_lineage, parse_version
from orchestrator.spaces.carry import CarryReport, carry
from orchestrator.tracking import ledger as ledger_mod
from orchestrator.tracking.async_logger import replay_spill
from orchestrator.tracking.mlflow_store import HASH, KIND, STUDY, TAG, VERSION, MlflowStore, describe_uri

STATE_DIR = Path(os.environ.get("ORCHESTRATOR_HOME", ".orchestrator"))
META = "orchestrator.json"
Echo = Callable[[str], None]


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(STATE_DIR / 'mlflow.db').resolve()}"


def default_storage() -> str:
    return str((STATE_DIR / "ray_results").resolve())


@dataclass
class SearchOptions:
    trials: int | None = None
    concurrency: int | None = None
    address: str | None = None
    tracking_uri: str | None = None
    seed: int = 0
    storage: str | None = None
    ledger: Path | None = None
    live: bool | None = None
    reuse_actors: bool = True


@dataclass
class SearchResult:
    study: str
    version: int
    experiment_path: str
    parent_run_id: str
    tracking_uri: str
    planned: int
    finished: int = 0
    failed: int = 0
    best_value: float | None = None
    best_config: dict[str, Any] = field(default_factory=dict)
    carry: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    interrupted: bool = False


# --------------------------------------------------------------------------- early checks


def open_store(uri: str) -> MlflowStore:
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    store = MlflowStore(uri)
    store.check_reachable()
    return store


def start_ray(address: str | None) -> bool:
    """Connect to ``address`` or start a local Ray; True when this call started it."""
    import ray

    if address:
        _probe(address)
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    # Unfinished trials of an interrupted search have no results yet: expected, not a warning.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # Trial output stays in the trial's folder unless asked for: the live view is ours.
    worker_logs = os.environ.get("ORCHESTRATOR_WORKER_LOGS") == "1"
    kwargs: dict[str, Any] = {
        "include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": worker_logs,
    }  # fmt: skip
    try:
        # "local" starts a fresh Ray for this search; a bare ray.init() would join any Ray already running here.
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local", **kwargs)
    except Exception as e:
        where = f"Ray cluster at {address!r}" if address else "a local Ray"
        raise OrchestratorError(f"could not connect to {where}: {str(e).strip().splitlines()[0]}") from None
    return True


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, naming the address, when nothing listens there (``ray.init`` retries for minutes)."""
    target = address.removeprefix("ray://")
    if target == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        raise OrchestratorError(
            f"Ray cluster at {address!r} is not reachable ({reason}); check --address "
            "(host:port of the head's GCS, ray://host:10001 for Ray Client, or auto on a cluster node)"
        ) from None


def trial_slots(version: StudyVersion) -> int:
    """How many trials the cluster can run at once with the space's per-trial resources."""
    import ray

    total = ray.cluster_resources()
    slots = math.floor(total.get("CPU", 1) / version.resources.cpu + 1e-9)
    if version.resources.gpu > 0:
        slots = min(slots, math.floor(total.get("GPU", 0) / version.resources.gpu + 1e-9))
    if slots < 1:
        need = f"cpu {version.resources.cpu}, gpu {version.resources.gpu}"
        raise OrchestratorError(
            f"{version.source}: the cluster cannot fit one trial ({need}); it has "
            f"CPU {total.get('CPU', 0)}, GPU {total.get('GPU', 0)}"
        )
    return slots


# --------------------------------------------------------------------------- storage helpers


def _fs(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def _write_meta(experiment: str, meta: dict[str, Any]) -> None:
    fs, path = _fs(experiment)
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{META}") as f:
        f.write(json.dumps(meta, indent=2).encode())


def read_meta(experiment: str) -> dict[str, Any]:
    fs, path = _fs(experiment)
    try:
        with fs.open_input_stream(f"{path}/{META}") as f:
            return json.loads(f.read().decode())
    except (FileNotFoundError, OSError):
        raise OrchestratorError(
            f"{experiment} is not a search started by orchestrator (no {META}); "
            "give the experiment path printed by `orchestrator run`"
        ) from None


def latest_unfinished(storage: str, study: str, version: int) -> str | None:
    fs, root = _fs(storage)
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    except OSError:
        return None
    prefix = f"{study}-v{version}-"
    for info in sorted((i for i in infos if i.base_name.startswith(prefix)), key=lambda i: i.base_name, reverse=True):
        experiment = storage.rstrip("/") + "/" + info.base_name
        try:
            if not read_meta(experiment).get("finished"):
                return experiment
        except OrchestratorError:
            continue
    return None


# --------------------------------------------------------------------------- carry-over


def carried_trials(store: MlflowStore, version: StudyVersion, ledger: Path | None) -> tuple[CarryReport, float, str]:
    """Earlier trials of the study that fit ``version``, the seconds it took, and where they were read from."""
    start = time.perf_counter()
    rows, source = ledger_mod.trials_with_ledger(store, version.study, ledger)
    report = carry((r.prior(version.metric.name) for r in rows), version)
    return report, time.perf_counter() - start, source


# --------------------------------------------------------------------------- run / resume


def run_search(path: str | Path, options: SearchOptions, echo: Echo = print) -> SearchResult:
    version, lineage = load_with_lineage(path)
    spec = check_trainable(version)
    uri = options.tracking_uri or default_tracking_uri()
    store = open_store(uri)
    storage = options.storage or default_storage()
    echo(f"{version.label}  hash {version.short_hash}  trainable {spec.name}  metric {version.metric.name} "
         f"({version.metric.mode})  lineage " + " -> ".join(f"v{v.version}" for v in lineage))  # fmt: skip

    experiment_id = store.experiment_id(version.study)
    assert experiment_id is not None
    report, carry_s, source = carried_trials(store, version, options.ledger)
    echo(f"warm start from {source} in {carry_s:.2f}s: {report.summary()}")

    started_ray = start_ray(options.address)
    try:
        slots = trial_slots(version)
        planned = options.trials or version.search.trials
        concurrency = max(1, min(options.concurrency or version.search.concurrency or slots, planned))
        name = f"{version.study}-v{version.version}-{time.strftime('%Y%m%d-%H%M%S')}"
        experiment = storage.rstrip("/") + "/" + name
        parent = _start_parent(store, experiment_id, version, report, carry_s, planned, concurrency, experiment)
        meta = {
            "study": version.study, "version": version.version, "space_file": str(version.source),
            "space_text": Path(str(version.source)).read_text(), "space_hash": version.content_hash,
            "tracking_uri": describe_uri(uri), "parent_run_id": parent, "experiment_id": experiment_id,
            "planned": planned, "concurrency": concurrency, "seed": options.seed, "finished": False,
            "reuse_actors": options.reuse_actors,
        }  # fmt: skip
        _write_meta(experiment, meta)
        echo(f"search {experiment}\n  MLflow experiment {version.study!r}, parent run {parent} at {describe_uri(uri)}"
             f"\n  {planned} trials, {concurrency} at a time (cluster fits {slots})")  # fmt: skip
        tuner = _tuner(version, report, options, uri, experiment_id, parent, planned, concurrency, storage, name)
        return _fit(tuner, version, store, experiment, meta, uri, echo, report.as_dict())
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def resume_search(experiment: str, options: SearchOptions, echo: Echo = print) -> SearchResult:
    meta = read_meta(experiment)
    if meta.get("finished"):
        raise OrchestratorError(f"{experiment} already finished; start a new search with `orchestrator run`")
    version = parse_version(meta["space_text"], meta["space_file"])
    check_trainable(version)
    uri = options.tracking_uri or meta["tracking_uri"]
    if options.tracking_uri and describe_uri(options.tracking_uri) != meta["tracking_uri"]:
        echo(f"note: logging to {describe_uri(uri)} (the search started with {meta['tracking_uri']})")
    store = open_store(uri)
    spill = Path(experiment) / "tracking-spill.jsonl" if "://" not in experiment else None
    if spill is not None and spill.exists():
        echo(f"sending {replay_spill(spill, store)} update(s) kept from the last driver")
    store.reopen_run(meta["parent_run_id"])
    started_ray = start_ray(options.address)
    try:
        from ray import tune

        from .trainable import ray_trainable

        fs, path = _fs(experiment)
        trainable = ray_trainable(version.trainable, version.resources.cpu, version.resources.gpu)
        echo(f"resuming {experiment} ({meta['planned']} trials planned)")
        tuner = tune.Tuner.restore(
            path, trainable=trainable, resume_unfinished=True, resume_errored=True, storage_filesystem=fs
        )
        return _fit(tuner, version, store, experiment, meta, uri, echo)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _start_parent(
    store: MlflowStore, experiment_id: str, version: StudyVersion, report: CarryReport, carry_s: float,
    planned: int, concurrency: int, experiment: str,
) -> str:  # fmt: skip
    tags = {
        KIND: "search", STUDY: version.study, VERSION: str(version.version), HASH: version.content_hash,
        TAG + "carry": json.dumps(report.as_dict()), TAG + "experiment_path": experiment,
        "mlflow.note.content": f"{version.label} ({version.short_hash})\n\n{report.summary()}\n\n{version.notes}",
    }  # fmt: skip
    params = {
        "space.study": version.study, "space.version": version.version, "space.hash": version.content_hash,
        "space.parent": version.parent, "trainable": version.trainable, "metric": version.metric.name,
        "mode": version.metric.mode, "trials": planned, "concurrency": concurrency,
    }  # fmt: skip
    run = store.create_run(experiment_id, f"{version.label} {time.strftime('%Y-%m-%d %H:%M')}", tags, params)
    now = int(time.time() * 1000)
    store.log_batch(run, metrics=[("carried_trials", len(report.carried), now, 0),
                                  ("dropped_trials", sum(report.dropped.values()), now, 0),
                                  ("warm_start_s", carry_s, now, 0)])  # fmt: skip
    return run


def _tuner(
    version: StudyVersion, report: CarryReport, options: SearchOptions, uri: str, experiment_id: str,
    parent: str, planned: int, concurrency: int, storage: str, name: str,
) -> Any:  # fmt: skip
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from .optuna_searcher import OptunaWarmStartSearcher
    from .progress import ProgressCallback
    from .searcher import WarmStartSearcher
    from .tracking_callback import MlflowTrialCallback
    from .trainable import ray_trainable

    s = version.schedule
    scheduler = (
        ASHAScheduler(time_attr="training_iteration", max_t=s.max_epochs, grace_period=s.grace_period,
                      reduction_factor=s.reduction_factor)
        if s.scheduler == "asha" else FIFOScheduler()
    )  # fmt: skip
    searcher_cls = OptunaWarmStartSearcher if version.search.algorithm == "optuna_tpe" else WarmStartSearcher
    searcher = searcher_cls(version, report.carried, seed=options.seed)
    fs, path = _fs(storage)
    spill = (
        str(Path(storage) / name / "tracking-spill.jsonl")
        if "://" not in storage
        else str(STATE_DIR / f"{name}-spill.jsonl")
    )
    callbacks = [
        MlflowTrialCallback(version, uri, experiment_id, parent, spill, searcher),
        ProgressCallback(version.metric, planned, list(version.params.params), live=options.live),
    ]
    return tune.Tuner(
        ray_trainable(version.trainable, version.resources.cpu, version.resources.gpu),
        tune_config=tune.TuneConfig(
            metric=version.metric.name, mode=version.metric.mode, search_alg=searcher, scheduler=scheduler,
            num_samples=planned, max_concurrent_trials=concurrency, reuse_actors=options.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=path, storage_filesystem=fs, callbacks=callbacks, verbose=0,
            failure_config=tune.FailureConfig(max_failures=version.search.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )  # fmt: skip


def _fit(
    tuner: Any, version: StudyVersion, store: MlflowStore, experiment: str, meta: dict[str, Any], uri: str,
    echo: Echo, carry_info: dict[str, Any] | None = None,
) -> SearchResult:  # fmt: skip
    start = time.perf_counter()
    status = "FAILED"
    result = SearchResult(version.study, version.version, experiment, meta["parent_run_id"], describe_uri(uri),
                          meta["planned"], carry=carry_info or {})  # fmt: skip
    try:
        grid = tuner.fit()
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except Exception as e:
        raise OrchestratorError(_tune_error(e)) from None
    finally:
        result.wall_s = time.perf_counter() - start
        if status != "FINISHED":
            store.end_run(meta["parent_run_id"], status)
    result = _summarize(grid, version, result)
    if result.finished + result.failed < meta["planned"]:
        store.end_run(meta["parent_run_id"], "KILLED")
        echo(f"interrupted after {result.finished + result.failed} of {meta['planned']} trials; "
             f"continue with: orchestrator resume {experiment}")  # fmt: skip
        result.interrupted = True
        return result
    _finish_parent(store, version, result)
    meta["finished"] = True
    _write_meta(experiment, meta)
    echo(_leaderboard(grid, version))
    best = json.dumps(result.best_config, sort_keys=True)
    echo(f"{result.finished} finished, {result.failed} failed in {result.wall_s:.1f}s; "
         f"best {version.metric.name} {result.best_value} with {best}")  # fmt: skip
    return result


def _tune_error(e: BaseException) -> str:
    text = str(e)
    for line in reversed(text.splitlines()):
        if "MetricNotReported" in line or "did not report the metric" in line:
            return line.split("MetricNotReported: ")[-1].strip()
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return f"the search failed: {first}"


def _summarize(grid: Any, version: StudyVersion, result: SearchResult) -> SearchResult:
    name = version.metric.name
    statuses = [t.status for t in grid._experiment_analysis.trials]
    result.finished, result.failed = statuses.count("TERMINATED"), statuses.count("ERROR")
    try:
        best = grid.get_best_result(metric=name, mode=version.metric.mode, scope="all")
        result.best_value = best.metrics.get(f"best_{name}", None)
        df = best.metrics_dataframe
        if df is not None and name in df:
            result.best_value = float(df[name].max() if version.metric.mode == "max" else df[name].min())
        result.best_config = {k: best.config[k] for k in version.params.params if k in best.config}
    except (RuntimeError, KeyError, ValueError):
        pass
    return result


def _finish_parent(store: MlflowStore, version: StudyVersion, result: SearchResult) -> None:
    now = int(time.time() * 1000)
    metrics = [("finished_trials", result.finished, now, 0), ("failed_trials", result.failed, now, 0),
               ("search_wall_s", result.wall_s, now, 0)]  # fmt: skip
    if result.best_value is not None:
        metrics.append((f"best_{version.metric.name}", result.best_value, now, 0))
    store.log_batch(result.parent_run_id, metrics=metrics,
                    tags={TAG + "best_config": json.dumps(result.best_config, sort_keys=True)})  # fmt: skip
    store.end_run(result.parent_run_id, "FINISHED")


def _leaderboard(grid: Any, version: StudyVersion, top: int = 5) -> str:
    name, rows = version.metric.name, []
    for r in grid:
        df = r.metrics_dataframe
        if df is None or name not in df:
            continue
        value = float(df[name].max() if version.metric.mode == "max" else df[name].min())
        rows.append((value, r.metrics.get("trial_id", "?"), {k: r.config.get(k) for k in version.params.params}))
    rows.sort(key=lambda row: row[0], reverse=version.metric.mode == "max")
    lines = [f"top {min(top, len(rows))} by {name}:"]
    lines += [f"  {v:.5g}  {tid}  {json.dumps(cfg, sort_keys=True, default=str)}" for v, tid, cfg in rows[:top]]
    return "\n".join(lines)
