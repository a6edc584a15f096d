"""Run or resume one search: space file -> carried trials -> Ray Tune -> MLflow.

The flow (docs/architecture.md): load and validate the version with its lineage; check
the trainable, the tracking store and the Ray cluster early; read every earlier trial of
the study and carry those that fit; start a parent run; run Ray Tune with the warm-started
searcher, ASHA, per-trial resources, retries and actor reuse; log every trial as a nested
run from a background thread; finish the parent run with the leaderboard.

The pieces: ``plan`` (what runs, decided once), ``storage`` (where its state lives, by URI
scheme), ``ray_session`` (the Ray it runs on), ``tracking.schema`` (the MLflow names).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.checks import check_version
from orchestrator.errors import OrchestratorError
from orchestrator.redaction import redact_config, redact_text
from orchestrator.review.leaderboard import Leaderboard
from orchestrator.spaces import StudyVersion, load_with_lineage
from orchestrator.spaces.carry import CarriedTrial, CarryReport, carry
from orchestrator.tracking import ledger as ledger_mod
from orchestrator.tracking import schema
from orchestrator.tracking.access import require_edit
from orchestrator.tracking.async_logger import replay_spill, tracking_wait_s
from orchestrator.tracking.mlflow_store import MlflowStore, TrackingError, TrialRow, short_error

from .plan import SearchPlan, build_searcher, build_tuner, check_secrets
from .ray_session import ray_session, trial_slots
from .results import MetricNotReported
from .searchers.base import Replay
from .storage import FINISHED, Experiment, open_experiment, open_storage
from .trainable import RESUME_KEY, ResumeFrom

STATE_DIR = Path(os.environ.get("ORCHESTRATOR_HOME", ".orchestrator"))
ENDED = ("FINISHED", "FAILED")  # a trial run in one of these is done: it counts against the planned trials
INTERRUPTED = ("RUNNING", "KILLED")  # a trial run a driver left in one of these continues on resume
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
    review_artifacts: bool = True  # per trial: model summary, network picture, predictions (orchestrator.review)


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


def open_store(uri: str) -> MlflowStore:
    """The tracking store at ``uri``, checked to answer (a local SQLite file gets its folder)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    store = MlflowStore(uri)
    store.check_reachable()
    return store


def latest_unfinished(storage: str, study: str, version: int) -> str | None:
    """The path of the newest unfinished search of ``study`` v``version`` under ``storage`` (for ``run --resume``)."""
    experiment = open_storage(storage).latest_unfinished(study, version)
    return experiment.uri if experiment is not None else None


# --------------------------------------------------------------------------- carry-over


def carried_trials(store: MlflowStore, version: StudyVersion, ledger: Path | None) -> tuple[CarryReport, float, str]:
    """Earlier trials of the study that fit ``version``, the seconds it took, and where they were read from."""
    start = time.perf_counter()
    rows, source = ledger_mod.trials_with_ledger(store, version.study, ledger)
    report = carry((r.prior(version.metric.name) for r in rows), version)
    return report, time.perf_counter() - start, source


# --------------------------------------------------------------------------- run / resume


def run_search(path: str | Path, options: SearchOptions, echo: Echo = print) -> SearchResult:
    """Start a search of the space file ``path``.

    What can be checked is checked before the parent run exists (space, trainable, tracking store,
    storage written to, ledger, Ray); every failure after it closes the run (``closes_parent_on_failure``).
    """
    version, lineage = load_with_lineage(path)
    spec = check_version(version)
    check_secrets(version)
    uri = options.tracking_uri or default_tracking_uri()
    store = open_store(uri)
    require_edit(store, version.study, "orchestrator run")  # a teammate with READ: one line, before anything runs
    tracking_wait_s()  # a bad value of its environment variable is named now, not when the trials are done
    storage = open_storage(options.storage or default_storage())
    storage.check_writable()
    echo(
        f"{version.label}  hash {version.short_hash}  trainable {spec.name}  metric {version.metric.name} "
        f"({version.metric.mode})  lineage " + " -> ".join(f"v{v.version}" for v in lineage)
    )

    experiment_id = store.experiment_id(version.study)
    assert experiment_id is not None
    report, carry_s, source = carried_trials(store, version, options.ledger)
    echo(f"warm start from {source} in {carry_s:.2f}s: {report.summary()}")

    with ray_session(options.address):
        slots = trial_slots(version)
        planned = options.trials or version.search.trials
        concurrency = max(1, min(options.concurrency or version.search.concurrency or slots, planned))
        experiment = storage.new_experiment(f"{version.study}-v{version.version}-{time.strftime('%Y%m%d-%H%M%S')}")
        parent = store.create_run(
            experiment_id,
            f"{version.label} {time.strftime('%Y-%m-%d %H:%M')}",
            _search_tags(version, report, experiment),
            _search_params(version, planned, concurrency),
        )
        with closes_parent_on_failure(store, parent, echo):
            _log_carry(store, parent, report, carry_s)
            plan = SearchPlan(
                version=version,
                space_text=Path(str(version.source)).read_text(),
                tracking_uri=uri,
                experiment=experiment,
                experiment_id=experiment_id,
                parent_run_id=parent,
                planned=planned,
                concurrency=concurrency,
                seed=options.seed,
                reuse_actors=options.reuse_actors,
                review_artifacts=options.review_artifacts,
            )
            experiment.write_meta(plan.meta())
            echo(
                f"search {experiment.uri}\n  MLflow experiment {version.study!r}, parent run {parent} "
                f"at {plan.shown_tracking_uri}\n  {planned} trials, {concurrency} at a time (cluster fits {slots})"
            )
            tuner = build_tuner(plan, build_searcher(plan, report.carried), live=options.live)
            return _fit(tuner, plan, store, echo, report.as_dict())


def resume_search(experiment: str, options: SearchOptions, echo: Echo = print) -> SearchResult:
    """Continue the search in the folder ``experiment``; a resume that fails closes the parent run FAILED."""
    folder = open_experiment(experiment)
    meta = folder.read_meta()
    if meta.get(FINISHED):
        raise OrchestratorError(f"{folder.uri} already finished; start a new search with `orchestrator run`")
    plan = SearchPlan.from_meta(folder, meta, options.tracking_uri or meta["tracking_uri"])
    check_version(plan.version)
    if options.tracking_uri and plan.shown_tracking_uri != meta["tracking_uri"]:
        echo(f"note: logging to {plan.shown_tracking_uri} (the search started with {meta['tracking_uri']})")
    store = open_store(plan.tracking_uri)
    tracking_wait_s()
    if plan.spill.exists():
        echo(f"sending {replay_spill(plan.spill, store)} update(s) kept from the last driver")
    store.reopen_run(plan.parent_run_id)
    store.delete_tag(plan.parent_run_id, schema.END_REASON)  # why it stopped last time: no longer true
    with closes_parent_on_failure(store, plan.parent_run_id, echo), ray_session(options.address):
        so_far = SearchSoFar.read(store, plan)
        echo(f"resuming {folder.uri}: {so_far.summary(plan.planned)}")
        carried: list[CarriedTrial] = []  # a train runs its planned models: no warm start
        if not plan.is_train:
            report, carry_s, source = carried_trials(store, plan.version, options.ledger)
            echo(f"warm start from {source} in {carry_s:.2f}s: {report.summary()}")
            carried = report.carried
        left = plan.planned - len(so_far.ended)
        searcher = build_searcher(plan, carried)
        searcher.replay_first(so_far.continued)
        searcher.replay_first(so_far.not_started(plan))
        tuner = build_tuner(plan, searcher, live=options.live, trials=left) if left > 0 else None
        return _fit(tuner, plan, store, echo, earlier=so_far.ended)


@dataclass(frozen=True)
class SearchSoFar:
    """What the trials of a search whose driver stopped left in the tracking store (the trusted record).

    Resume rebuilds the search from this and ``orchestrator.json``, never from Ray Tune's pickled state: the
    trials that ended count against the planned ones, and each interrupted trial continues first, with its
    values and seed, from its newest checkpoint that the store saw (or from epoch 1 without one), in its own run.
    """

    ended: list[TrialRow]
    continued: list[Replay]

    @classmethod
    def read(cls, store: MlflowStore, plan: SearchPlan) -> SearchSoFar:
        rows = store.trials(plan.version.study, parent_run_id=plan.parent_run_id, kind=plan.trial_kind)
        interrupted = (_continued(store, plan, row) for row in rows if row.status in INTERRUPTED)
        return cls([r for r in rows if r.status in ENDED], [c for c in interrupted if c is not None])

    def not_started(self, plan: SearchPlan) -> list[Replay]:
        """A train's planned models that neither ended nor continue (none for a search: its searcher suggests)."""
        started = [redact_config(r.config) for r in self.ended] + [redact_config(c.values) for c in self.continued]
        return [Replay(values, seed) for values, seed in plan.trainings if redact_config(values) not in started]

    def summary(self, planned: int) -> str:
        finished = sum(r.status == "FINISHED" for r in self.ended)
        from_checkpoint = sum(bool(c.extra[RESUME_KEY]["checkpoint"]) for c in self.continued)
        return (
            f"{finished} finished, {len(self.ended) - finished} failed of {planned} planned; "
            f"{len(self.continued)} interrupted continue ({from_checkpoint} from a checkpoint)"
        )


def _continued(store: MlflowStore, plan: SearchPlan, row: TrialRow) -> Replay | None:
    """How the interrupted trial of ``row`` continues; None without a recorded seed (a new trial takes its place)."""
    tags = store.client.get_run(row.run_id).data.tags
    seed = tags.get(schema.SEED, "")
    if not seed.isdigit() or not row.trial_id:
        return None
    logged = store.metric_steps(row.run_id, plan.version.metric.name)
    checkpoint = plan.experiment.last_checkpoint(tags.get(schema.RESUMED_AS) or row.trial_id, logged)
    resume = ResumeFrom(trial_id=row.trial_id, checkpoint=checkpoint or "")
    return Replay(row.config, int(seed), {RESUME_KEY: resume})


class SearchEndNotRecorded(TrackingError):
    """The trials ran, but the tracking server could not be told the search ended (``resume`` does it later)."""


@contextmanager
def closes_parent_on_failure(store: MlflowStore, parent_run_id: str, echo: Echo) -> Iterator[None]:
    """Close the parent run when the block raises: KILLED for Ctrl-C, FAILED otherwise, with ``END_REASON``.

    ``SearchEndNotRecorded`` leaves the run alone: the server is gone, and ``resume`` finishes it.
    """
    try:
        yield
    except SearchEndNotRecorded:
        raise
    except KeyboardInterrupt:
        end_parent(store, parent_run_id, "KILLED", "interrupted (Ctrl-C)", echo)
        raise
    except BaseException as e:
        end_parent(store, parent_run_id, "FAILED", failure_line(e), echo)
        raise


def end_parent(store: MlflowStore, parent_run_id: str, status: str, reason: str, echo: Echo) -> None:
    """End the parent run with ``status`` and ``reason``; a store that cannot be reached is told in one line."""
    try:
        store.log_batch(parent_run_id, tags={schema.END_REASON: reason})
        store.end_run(parent_run_id, status)
    except Exception as e:  # already failing: report, never mask the error being raised
        echo(f"tracking: could not mark the search's run {parent_run_id} {status} ({short_error(e)})")


def failure_line(error: BaseException) -> str:
    """The one line a failure is recorded under: our own message, or the error's type and first line."""
    if isinstance(error, OrchestratorError):
        return short_error(error)
    text = short_error(error)
    return type(error).__name__ if text == type(error).__name__ else f"{type(error).__name__}: {text}"


def _search_tags(version: StudyVersion, report: CarryReport, experiment: Experiment) -> dict[str, str]:
    """The tags of a search's parent run."""
    return {
        schema.KIND: schema.SEARCH_RUN,
        schema.STUDY: version.study,
        schema.VERSION: str(version.version),
        schema.HASH: version.content_hash,
        schema.CARRY: json.dumps(report.as_dict()),
        schema.EXPERIMENT_PATH: experiment.uri,
        schema.NOTE: f"{version.label} ({version.short_hash})\n\n{report.summary()}\n\n{version.notes}",
    }


def _search_params(version: StudyVersion, planned: int, concurrency: int) -> dict[str, Any]:
    """The params of a search's parent run: the space and the sizes."""
    return {
        schema.SPACE_STUDY: version.study,
        schema.SPACE_VERSION: version.version,
        schema.SPACE_HASH: version.content_hash,
        schema.SPACE_PARENT: version.parent,
        schema.PARAM_TRAINABLE: version.trainable,
        schema.PARAM_METRIC: version.metric.name,
        schema.PARAM_MODE: version.metric.mode,
        schema.PARAM_TRIALS: planned,
        schema.PARAM_CONCURRENCY: concurrency,
    }


def _log_carry(store: MlflowStore, parent: str, report: CarryReport, carry_s: float) -> None:
    now = int(time.time() * 1000)
    store.log_batch(
        parent,
        metrics=[
            (schema.CARRIED_TRIALS, len(report.carried), now, 0),
            (schema.DROPPED_TRIALS, sum(report.dropped.values()), now, 0),
            (schema.WARM_START_S, carry_s, now, 0),
        ],
    )


def fit_plan(plan: SearchPlan, searcher: Any, store: MlflowStore, echo: Echo, live: bool | None = None) -> SearchResult:
    """Run every trial of a new ``plan`` (its parent run open, its ``orchestrator.json`` written) with ``searcher``
    and record the end, as ``run_search`` does: how ``orchestrator train`` starts (``production.train``)."""
    return _fit(build_tuner(plan, searcher, live=live), plan, store, echo)


def _fit(
    tuner: Any | None,
    plan: SearchPlan,
    store: MlflowStore,
    echo: Echo,
    carry_info: dict[str, Any] | None = None,
    earlier: Sequence[TrialRow] = (),
) -> SearchResult:
    """Run the tuner (None: no trial is left to run), then record the search's end; errors are raised for
    ``closes_parent_on_failure``. ``earlier``: the search's trials that ended under an earlier driver."""
    version, parent = plan.version, plan.parent_run_id
    start = time.perf_counter()
    result = SearchResult(
        version.study,
        version.version,
        plan.experiment.uri,
        parent,
        plan.shown_tracking_uri,
        plan.planned,
        carry=carry_info or {},
    )
    grid: Any = ()  # no trial ran: an empty result grid
    try:
        if tuner is not None:
            grid = tuner.fit()
    except Exception as e:
        raise OrchestratorError(tune_error_message(e)) from None
    finally:
        result.wall_s = time.perf_counter() - start
    result = _summarize(grid if tuner is not None else None, version, result, earlier)
    board = Leaderboard.from_grid(grid, version)
    if result.finished + result.failed < plan.planned:
        resume = f"continue with: orchestrator resume {plan.experiment.uri}"
        done = f"interrupted after {result.finished + result.failed} of {plan.planned} trials"
        end_parent(store, parent, "KILLED", f"{done}; {resume}", echo)
        echo(f"{done}; {resume}")
        result.interrupted = True
        return result
    if plan.is_train:  # its errors fail the train: ``resume`` registers the models it has not registered yet
        _finish_train(store, plan, result, echo)
    else:
        _finish_search(store, plan, result, echo, grid, board)
    plan.experiment.write_meta(plan.meta(finished=True))
    echo(board.text())
    best = json.dumps(result.best_config, sort_keys=True)
    echo(
        f"{result.finished} finished, {result.failed} failed in {result.wall_s:.1f}s; "
        f"best {version.metric.name} {result.best_value} with {best}"
    )
    return result


def _finish_search(
    store: MlflowStore, plan: SearchPlan, result: SearchResult, echo: Echo, grid: Any, board: Leaderboard
) -> None:
    """Record the end of a search; a store that fails here is ``SearchEndNotRecorded`` (``resume`` retries)."""
    try:
        _finish_parent(store, plan.version, result, echo, grid, board)
    except Exception as e:  # the server went away during the search: Ray's state and the spill keep everything
        kept = f"unsent updates are in {plan.spill.where}; " if plan.spill.exists() else ""
        raise SearchEndNotRecorded(
            f"the search ran ({result.finished} finished, {result.failed} failed), but the tracking server "
            f"{plan.shown_tracking_uri} could not record its end ({short_error(e)}); {kept}"
            f"once it answers: orchestrator resume {plan.experiment.uri}"
        ) from None


def tune_error_message(error: BaseException) -> str:
    """What to tell the user when ``Tuner.fit`` raised.

    Ray Tune re-raises an error of the searcher (``MetricNotReported``, raised on the driver in
    ``on_trial_result``) as a ``TuneError`` from inside its handler, so the original is on the chain.
    Anything else is named by the error the chain started from.
    """
    chain = exception_chain(error)
    reported = next((e for e in chain if isinstance(e, MetricNotReported)), None)
    if reported is not None:
        return str(reported)
    root = chain[-1]
    text = redact_text(str(root).strip())
    return f"the search failed: {type(root).__name__}" + (f": {text.splitlines()[0]}" if text else "")


def exception_chain(error: BaseException) -> list[BaseException]:
    """``error``, then what it was raised from or while handling, and so on to the first one."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _summarize(
    grid: Any | None, version: StudyVersion, result: SearchResult, earlier: Sequence[TrialRow] = ()
) -> SearchResult:
    """Counts and best trial of the search: Ray Tune's ``grid`` (None: no trial ran) and the ``earlier`` runs."""
    name = version.metric.name
    result.finished = sum(r.status == "FINISHED" for r in earlier)
    result.failed = len(earlier) - result.finished
    best_of = [(r.metrics.get(schema.best_metric(name), r.metrics.get(name)), r.config) for r in earlier]
    if grid is not None:
        result.finished += grid.num_terminated
        result.failed += grid.num_errors
        try:
            best = grid.get_best_result(metric=name, mode=version.metric.mode, scope="all")
            value = best.metrics.get(schema.best_metric(name), None)
            df = best.metrics_dataframe
            if df is not None and name in df:
                value = float(df[name].max() if version.metric.mode == "max" else df[name].min())
            best_of.append(
                (value, redact_config({k: best.config[k] for k in version.params.params if k in best.config}))
            )
        except (RuntimeError, KeyError, ValueError):
            pass
    scored = [(value, config) for value, config in best_of if value is not None]
    if scored:
        result.best_value, result.best_config = min(scored, key=lambda vc: version.metric.loss(vc[0]))
    return result


def _finish_parent(
    store: MlflowStore, version: StudyVersion, result: SearchResult, echo: Echo, grid: Any, board: Leaderboard
) -> None:
    """Log the search's counts and best, write the study's ledger artifact and review artifacts (neither ever
    fails the search), end it."""
    _log_counts(store, version, result)
    try:
        ledger_mod.write_artifact(store, version.study, result.parent_run_id)
    except Exception as e:  # only the next warm start's speed depends on it
        echo(
            f"tracking: no ledger artifact on run {result.parent_run_id} ({short_error(e)}); "
            "the next warm start reads the runs instead"
        )
    _log_review(store, version, result, grid, board, echo)
    store.end_run(result.parent_run_id, "FINISHED")


def _log_counts(store: MlflowStore, version: StudyVersion, result: SearchResult) -> None:
    """The counts, the wall time and the best value and values on the parent run of a search or a train."""
    now = int(time.time() * 1000)
    metrics = [
        (schema.FINISHED_TRIALS, result.finished, now, 0),
        (schema.FAILED_TRIALS, result.failed, now, 0),
        (schema.SEARCH_WALL_S, result.wall_s, now, 0),
    ]
    if result.best_value is not None:
        metrics.append((schema.best_metric(version.metric.name), result.best_value, now, 0))
    store.log_batch(
        result.parent_run_id, metrics=metrics, tags={schema.BEST_CONFIG: json.dumps(result.best_config, sort_keys=True)}
    )


def _finish_train(store: MlflowStore, plan: SearchPlan, result: SearchResult, echo: Echo) -> None:
    """Log a train's counts, register each model it trained (``orchestrator.production.train``), end its run."""
    from orchestrator.production.train import register_models

    _log_counts(store, plan.version, result)
    register_models(store, plan, echo)
    store.end_run(result.parent_run_id, "FINISHED")


def _log_review(
    store: MlflowStore, version: StudyVersion, result: SearchResult, grid: Any, board: Leaderboard, echo: Echo
) -> None:
    """The search's review artifacts (``orchestrator.review.search``); a failure is a tag and one line, never more."""
    try:
        from orchestrator.review.search import log_search_review

        log_search_review(store, version, result.parent_run_id, board, grid, echo)
    except Exception as e:
        reason = failure_line(e)
        echo(f"review: no review artifacts on run {result.parent_run_id} ({reason})")
        with suppress(Exception):  # the store is failing: ending the run reports it
            store.log_batch(result.parent_run_id, tags={schema.REVIEW_ERROR: reason})
