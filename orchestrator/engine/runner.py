"""Run or resume a search or a train: space version -> carried trials -> Ray Tune -> MLflow.

The flow (docs/architecture.md): load and validate the version with its lineage; check the trainable, the
tracking store and the Ray cluster early; read every earlier trial of the study and carry those that fit;
start a parent run; run Ray Tune with the warm-started searcher, ASHA, per-trial resources, retries and actor
reuse; log every trial as a nested run from a background thread; end the parent run, after the run's kind
(``hooks.RunHooks``) did its work at the end.

A search and a train take one path, ``start_run``: a ``RunRequest`` says what runs (a version, fixed trials
first, warm start or not) and how the parent run records it. The pieces: ``plan`` (what runs, decided once),
``storage`` (where its state lives, by URI scheme), ``ray_session.starting_ray`` (the Ray it runs on), ``parent_run``
(the parent run's tags and end), ``resume`` (what a stopped driver left), ``tracking.schema`` (the names).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.console import Echo
from orchestrator.errors import OrchestratorError, failure_line, first_line
from orchestrator.redaction import redact_config
from orchestrator.settings import default_storage, default_tracking_uri, tracking_wait_s
from orchestrator.spaces import StudyVersion, load_with_lineage
from orchestrator.spaces.carry import CarriedTrial, CarryReport
from orchestrator.tracking import ledger as ledger_mod
from orchestrator.tracking import schema
from orchestrator.tracking.access import is_server, require_edit
from orchestrator.tracking.async_logger import replay_spill
from orchestrator.tracking.carried import carried_trials
from orchestrator.tracking.mlflow_store import MlflowStore, TrialRow, check_store_location, open_store
from trainables.costs import computable

from .checks import check_version
from .costs import fill_costs
from .fronts import log_fronts
from .hooks import NO_HOOKS, Ended, HookTable, RunHooks
from .leaderboard import Leaderboard
from .parent_run import (
    RunFailed,
    SearchEndNotRecorded,
    carry_tags,
    closes_parent_on_failure,
    end_parent,
    log_carry,
    log_counts,
    run_params,
    run_tags,
)
from .peers import StudyPeers
from .plan import FixedTrial, SearchPlan, build_searcher, build_tuner, import_ahead, tune_fit_settings
from .ray_session import shut_down_ray_soon, starting_ray, trial_slots
from .results import MetricNotReported, error_reason
from .resume import SearchSoFar
from .searchers.base import Replay
from .storage import FINISHED, open_experiment, open_storage


@dataclass
class SearchOptions:
    trials: int | None = None
    concurrency: int | None = None
    address: str | None = None
    tracking_uri: str | None = None
    seed: int | None = None  # None: a new seed per search (recorded), so two searches at once differ
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
    best_values: dict[str, float] = field(default_factory=dict)  # several objectives: the knee's value of each
    carry: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    interrupted: bool = False


@dataclass(frozen=True)
class RunRequest:
    """What a run is: ``version`` runs (its ``search.trials``, or exactly its ``fixed_trials``), recorded on the
    parent run as the space version ``recorded`` (the version itself for a search; the trained trial's for a
    train), named ``run_name``, in an experiment folder named from ``folder``; ``tags`` and ``params`` are the
    kind's own on top of every run's; ``note`` replaces the search's description (version, carry report, notes);
    ``command`` is what the user ran.
    """

    kind: str
    version: StudyVersion
    space_text: str
    run_name: str
    folder: str
    recorded: StudyVersion | None = None
    fixed_trials: tuple[FixedTrial, ...] = ()
    warm_start: bool = True
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None
    command: str = "orchestrator run"  # what the user ran, named when the tracking server refuses it

    @property
    def space(self) -> StudyVersion:
        """The space version the parent run records."""
        return self.recorded or self.version


def latest_unfinished(storage: str, study: str, version: int) -> str | None:
    """The path of the newest unfinished search of ``study`` v``version`` under ``storage`` (for ``run --resume``)."""
    experiment = open_storage(storage).latest_unfinished(study, version)
    return experiment.uri if experiment is not None else None


# --------------------------------------------------------------------------- run / resume


def run_search(path: str | Path, options: SearchOptions, hooks: HookTable, echo: Echo = print) -> SearchResult:
    """Start a search of the space file ``path`` (what its kind does at the end: ``hooks[schema.SEARCH_RUN]``)."""
    version, lineage = load_with_lineage(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    request = RunRequest(
        kind=schema.SEARCH_RUN,
        version=version,
        space_text=Path(str(version.source)).read_text(),
        run_name=f"{version.label} {time.strftime('%Y-%m-%d %H:%M')}",
        folder=f"{version.study}-v{version.version}-{stamp}",
    )
    return start_run(request, options, hooks, echo, lineage=lineage)


def start_run(
    request: RunRequest,
    options: SearchOptions,
    hooks: HookTable,
    echo: Echo = print,
    lineage: Sequence[StudyVersion] = (),
) -> SearchResult:
    """Start the run ``request``: what can be checked is checked before the parent run exists (space, trainable,
    tracking store, storage written to, ledger, Ray); every failure after it closes the run
    (``closes_parent_on_failure``)."""
    version = request.version
    spec = check_version(version)
    tracking_wait_s()  # a bad value of its environment variable is named now, not when the trials are done
    uri = options.tracking_uri or default_tracking_uri()
    check_store_location(uri, create=True)  # before the storage check makes its folder: a refusal creates nothing
    storage = open_storage(options.storage or default_storage())
    storage.check_writable()
    if request.warm_start and options.ledger is not None:
        ledger_mod.check(options.ledger)  # read when Ray is starting; a bad file is named before that
    store: MlflowStore | None = None
    if is_server(uri):  # a teammate without EDIT: one line before Ray or the review process start
        store = open_store(uri, create=True)
        require_edit(store, version.study, request.command)
    # Ray starts in a thread from here: the tracking store, the warm start and the search's imports meanwhile.
    kind_hooks = hooks.get(request.kind, NO_HOOKS)
    with kind_hooks.entered(version, uri, options.review_artifacts), starting_ray(options.address) as ray_start:
        if store is None:
            store = open_store(uri, create=True)
        if lineage:
            echo(
                f"{version.label}  hash {version.short_hash}  trainable {spec.name}  metric {version.metric.name} "
                f"({version.metric.mode})  lineage " + " -> ".join(f"v{v.version}" for v in lineage)
            )
        experiment_id = store.experiment_id(version.study)
        assert experiment_id is not None
        report, carry_s = CarryReport(), 0.0
        if request.warm_start:
            report, carry_s, source = carried_trials(store, version, options.ledger, computable=computable(spec.name))
            echo(f"warm start from {source} in {carry_s:.2f}s: {report.summary()}")
        import_ahead(version)
        ray_start.wait()
        if request.warm_start:  # costs carried trials never reported, computed from their configurations (issue 26)
            carry_s += fill_costs(report, version, echo)
        slots = trial_slots(version)
        planned = len(request.fixed_trials) or options.trials or version.search.trials
        concurrency = max(1, min(options.concurrency or version.search.concurrency or slots, planned))
        seed = options.seed if options.seed is not None else secrets.randbelow(2**31)
        experiment = storage.new_experiment(request.folder)
        space = request.space
        note = request.note or f"{space.label} ({space.short_hash})\n\n{report.summary()}\n\n{space.notes}"
        tags = run_tags(request.kind, space, experiment.uri, note, request.tags)
        if request.warm_start:
            tags.update(carry_tags(report))
        params = {schema.PARAM_SEED: seed, **request.params}
        parent = store.create_run(
            experiment_id, request.run_name, tags, run_params(space, planned, concurrency, params)
        )
        started_ms = int(time.time() * 1000)
        with closes_parent_on_failure(store, parent, echo):
            if request.warm_start:
                log_carry(store, parent, report, carry_s)
            plan = SearchPlan(
                version=version,
                space_text=request.space_text,
                tracking_uri=uri,
                experiment=experiment,
                experiment_id=experiment_id,
                parent_run_id=parent,
                planned=planned,
                concurrency=concurrency,
                seed=seed,
                reuse_actors=options.reuse_actors,
                review_artifacts=options.review_artifacts,
                kind=request.kind,
                fixed_trials=request.fixed_trials,
                warm_start=request.warm_start,
            )
            experiment.write_meta(plan.meta())
            echo(
                f"{request.kind} {experiment.uri}\n  MLflow experiment {version.study!r}, parent run {parent} "
                f"at {plan.shown_tracking_uri}\n  {planned} trials, {concurrency} at a time (cluster fits {slots})"
            )
            searcher = build_searcher(plan, report.carried)
            searcher.replay_first(Replay(values, fixed_seed) for values, fixed_seed in plan.fixed_trials)
            tuner = build_tuner(plan, searcher, live=options.live, trial_callbacks=kind_hooks.trial_callbacks)
            with watching_peers(plan, searcher, started_ms):
                return _fit(tuner, plan, store, kind_hooks, echo, report.as_dict() if request.warm_start else None)


def resume_search(experiment: str, options: SearchOptions, hooks: HookTable, echo: Echo = print) -> SearchResult:
    """Continue the run (a search or a train) in the folder ``experiment``; a resume that fails closes the parent
    run FAILED. The run's kind, recorded in its plan, picks its hooks."""
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
    kind_hooks = hooks.get(plan.kind, NO_HOOKS)
    with (
        closes_parent_on_failure(store, plan.parent_run_id, echo),
        kind_hooks.entered(plan.version, plan.tracking_uri, plan.review_artifacts),
        starting_ray(options.address) as ray_start,
    ):
        so_far = SearchSoFar.read(store, plan)
        echo(f"resuming {folder.uri}: {so_far.summary(plan.planned)}")
        carried: list[CarriedTrial] = []
        if plan.warm_start:  # the run's own interrupted trials continue: they are not earlier trials to carry
            trainable = plan.version.trainable
            report, carry_s, source = carried_trials(
                store, plan.version, options.ledger, so_far.interrupted_runs, computable(trainable)
            )
            echo(f"warm start from {source} in {carry_s:.2f}s: {report.summary()}")
            carried = report.carried
        left = plan.planned - len(so_far.ended)
        import_ahead(plan.version)
        ray_start.wait()
        if plan.warm_start:  # after Ray is up: the costs are measured in Ray tasks with the trials' resources
            fill_costs(report, plan.version, echo)
        searcher = build_searcher(plan, carried)
        searcher.replay_first(so_far.continued)
        searcher.replay_first(so_far.not_started(plan))
        tuner = None
        if left > 0:
            tuner = build_tuner(
                plan, searcher, live=options.live, trials=left, trial_callbacks=kind_hooks.trial_callbacks
            )
        with watching_peers(plan, searcher, int(time.time() * 1000)):
            return _fit(tuner, plan, store, kind_hooks, echo, earlier=so_far.ended)


@contextmanager
def watching_peers(plan: SearchPlan, searcher: Any, since_ms: int) -> Iterator[None]:
    """While the block runs, ``searcher`` sees the study's other live searches (``peers.StudyPeers``, its own store
    connection in a thread) when the plan searches; a train's fixed trials have nothing to avoid."""
    if not plan.warm_start:
        yield
        return
    peers = StudyPeers(MlflowStore(plan.tracking_uri), plan.version, plan.parent_run_id, plan.trial_kind, since_ms)
    searcher.watch_peers(peers)
    try:
        with peers:
            yield
    finally:
        searcher.watch_peers(None)


# --------------------------------------------------------------------------- fit and end


def fit_plan(
    plan: SearchPlan, searcher: Any, store: MlflowStore, echo: Echo, hooks: RunHooks = NO_HOOKS
) -> SearchResult:
    """Run every trial of a new ``plan`` (its parent run open, its ``orchestrator.json`` written) with ``searcher``
    and record the end, as ``start_run`` does (benchmarks and tests that build a plan by hand)."""
    return _fit(build_tuner(plan, searcher, trial_callbacks=hooks.trial_callbacks), plan, store, hooks, echo)


def _fit(
    tuner: Any | None,
    plan: SearchPlan,
    store: MlflowStore,
    hooks: RunHooks,
    echo: Echo,
    carry_info: dict[str, Any] | None = None,
    earlier: Sequence[TrialRow] = (),
) -> SearchResult:
    """Run the tuner (None: no trial is left to run), then record the run's end; errors are raised for
    ``closes_parent_on_failure``. ``earlier``: the run's trials that ended under an earlier driver."""
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
            with tune_fit_settings():
                grid = tuner.fit()
            shut_down_ray_soon()  # the trials are over: a Ray started here goes while the run's end is recorded
    except Exception as e:
        raise OrchestratorError(tune_error_message(e)) from None
    finally:
        result.wall_s = time.perf_counter() - start
    board = Leaderboard.of_search(grid, version, earlier)  # by front: earlier drivers' trials too
    _summarize(result, version, board, grid if tuner is not None else None, earlier)
    if result.finished + result.failed < plan.planned:
        resume = f"continue with: orchestrator resume {plan.experiment.uri}"
        done = f"interrupted after {result.finished + result.failed} of {plan.planned} trials"
        end_parent(store, parent, "KILLED", f"{done}; {resume}", echo)
        echo(f"{done}; {resume}")
        result.interrupted = True
        return result
    if result.finished == 0:
        _record_failure(store, plan, result, grid)
    _record_end(Ended(store, plan, result, board, grid, echo), hooks)
    plan.experiment.write_meta(plan.meta(finished=True))
    echo(board.text())
    best = json.dumps(result.best_config, sort_keys=True)
    shown = f"best {version.metric.name} {result.best_value}"
    if board.multi_objective:
        knee = ", ".join(f"{name} {value:.5g}" for name, value in result.best_values.items())
        shown = f"knee of the front {knee}" if knee else "no trial meets the constraints"
    echo(f"{result.finished} finished, {result.failed} failed in {result.wall_s:.1f}s; {shown} with {best}")
    return result


def _record_end(ended: Ended, hooks: RunHooks) -> None:
    """Log the counts and best (and the study's ledger for a warm-started run: the next warm start's fast path;
    writing it never fails the run), run the kind's end hook, end the parent run FINISHED.

    A store that fails while the counts or the end are recorded is ``SearchEndNotRecorded`` (``resume`` does it
    again); an error of the end hook fails the run."""
    store, plan, result = ended.store, ended.plan, ended.result
    try:
        log_counts(
            store,
            result.parent_run_id,
            plan.version.metric.name,
            result.finished,
            result.failed,
            result.wall_s,
            result.best_value,
            result.best_config,
        )
        if plan.warm_start:
            _write_ledger(store, plan, result, ended.echo)
        if ended.board is not None and ended.board.multi_objective and plan.kind == schema.SEARCH_RUN:
            ended = dataclasses.replace(ended, board=log_fronts(store, plan, ended.board))
    except Exception as e:
        raise _end_not_recorded(plan, result, e) from None
    if hooks.finish is not None:
        hooks.finish(ended)
    try:
        store.end_run(result.parent_run_id, "FINISHED")
    except Exception as e:
        raise _end_not_recorded(plan, result, e) from None


class NoTrialFinished(RunFailed):
    """Every planned trial of a run ended without finishing: the run ends FAILED with what they died of."""


def _record_failure(store: MlflowStore, plan: SearchPlan, result: SearchResult, grid: Any) -> None:
    """A run none of whose trials finished is a failure: its counts logged, its plan marked finished (nothing is
    left to resume); raises ``NoTrialFinished``, which ends the run FAILED with what the trials died of."""
    died_of = Counter(error_reason(str(r.error)) for r in grid if getattr(r, "error", None) is not None)
    earlier = result.failed - sum(died_of.values())
    causes = [f"{n} x {reason}" if n > 1 else reason for reason, n in died_of.most_common()]
    causes += [f"{earlier} under an earlier driver"] if earlier > 0 else []
    reason = f"no trial finished: {result.failed} of {plan.planned} failed ({'; '.join(causes)})"
    with suppress(Exception):  # the run's end below says whether the store answers
        log_counts(store, result.parent_run_id, plan.version.metric.name, 0, result.failed, result.wall_s, None, {})
    plan.experiment.write_meta(plan.meta(finished=True))
    raise NoTrialFinished(
        reason,
        f"{reason}; each trial's run in {plan.shown_tracking_uri} has its error, and its folder under "
        f"{plan.experiment.uri} the whole traceback (error.txt)",
    )


def _write_ledger(store: MlflowStore, plan: SearchPlan, result: SearchResult, echo: Echo) -> None:
    try:
        ledger_mod.write_artifact(store, plan.version.study, result.parent_run_id)
    except Exception as e:  # only the next warm start's speed depends on it
        echo(
            f"tracking: no ledger artifact on run {result.parent_run_id} ({first_line(e)}); "
            "the next warm start reads the runs instead"
        )


def _end_not_recorded(plan: SearchPlan, result: SearchResult, error: BaseException) -> SearchEndNotRecorded:
    """The server went away at the end: Ray's state and the spill keep everything, ``resume`` records it."""
    kept = f"unsent updates are in {plan.spill.where}; " if plan.spill.exists() else ""
    return SearchEndNotRecorded(
        f"the {plan.kind} ran ({result.finished} finished, {result.failed} failed), but the tracking server "
        f"{plan.shown_tracking_uri} could not record its end ({first_line(error)}); {kept}"
        f"once it answers: orchestrator resume {plan.experiment.uri}"
    )


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
    return f"the search failed: {failure_line(chain[-1])}"


def exception_chain(error: BaseException) -> list[BaseException]:
    """``error``, then what it was raised from or while handling, and so on to the first one."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _summarize(
    result: SearchResult, version: StudyVersion, board: Leaderboard, grid: Any | None, earlier: Sequence[TrialRow]
) -> None:
    """Counts and best trial of the run: this driver's trials (Ray Tune's ``grid``, ranked on ``board``; None: no
    trial ran) and those that ended under an earlier driver (``earlier``), each by the one score rule."""
    name = version.metric.name
    result.finished = sum(r.status == "FINISHED" for r in earlier)
    result.failed = len(earlier) - result.finished
    scored = [(r.score(name), r.config) for r in earlier]
    if grid is not None:
        result.finished += grid.num_terminated
        result.failed += grid.num_errors
    if board.best is not None:
        scored.append((board.best.value, redact_config(board.best.config)))
    scored = [(value, config) for value, config in scored if value is not None]
    if scored:
        result.best_value, result.best_config = min(scored, key=lambda vc: version.metric.loss(vc[0]))
    if board.fronts:  # ranked by front, over the whole search: the knee (never an infeasible trial), or none
        best = board.best
        result.best_value = None if best is None else best.value
        result.best_config = {} if best is None else redact_config(best.config)
        names = [m.name for m in board.objectives]
        result.best_values = {} if best is None else dict(zip(names, best.point, strict=True))
