"""A run decided once: what runs, where its state and tracking go; and the Ray Tune objects made from it.

A search and a train are both runs of a plan: a train is a plan whose every trial is a fixed configuration
(``fixed_trials``, handed to the searcher as replays before it would suggest anything) and that carries no
earlier trials (``warm_start`` false). ``kind`` names the parent run's ``orchestrator.kind``, which also picks
the nested runs' kind (``schema.NESTED_KIND``) and, in the composition layer, what runs at its end.

``runner.start_run`` builds a ``SearchPlan`` when it starts a run and writes it to ``orchestrator.json``;
``resume`` reads it back from there. Everything after that (the tuner, its callbacks, the final
bookkeeping) takes its settings from the plan, never from the command's options.
A resumed run gets a new tuner too (``build_tuner`` with the trials left), never Ray Tune's
pickled state back (``Tuner.restore``): see ``runner.resume_search``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.redaction import mask_yaml_secrets
from orchestrator.spaces import Metric, Schedule, StudyVersion, parse_version
from orchestrator.spaces.carry import CarriedTrial
from orchestrator.spaces.secrets import mask_secrets, with_fixed_values
from orchestrator.spaces.version import Constraint
from orchestrator.tracking import schema
from orchestrator.tracking.async_logger import SpillFile
from orchestrator.tracking.mlflow_store import describe_uri

from .storage import FINISHED, Experiment

CHECKPOINTS_TO_KEEP = 2
TUNE_NO_DEFAULT_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"  # read by Ray Tune when a fit starts
TUNE_NO_STRICT_METRICS = "TUNE_DISABLE_STRICT_METRIC_CHECKING"  # read by Ray Tune at each result
SPACE_REDACTED = "space_redacted"  # orchestrator.json: the recorded space text has its secret values masked

FixedTrial = tuple[dict[str, Any], int]  # the values and seed of a trial the plan runs as it is
# What a kind of run adds beside the trials: (plan, the tracking callback) -> Ray Tune callbacks.
TrialCallbacks = Callable[["SearchPlan", Any], list[Any]]


@dataclass(frozen=True)
class SearchPlan:
    """One run: the space version, the tracking store and runs, the experiment folder, the sizes."""

    version: StudyVersion
    space_text: str  # the space file as it was when the run started (resume parses it)
    tracking_uri: str  # may hold credentials: for connecting only, never printed or written
    experiment: Experiment
    experiment_id: str  # the MLflow experiment (the study)
    parent_run_id: str
    planned: int
    concurrency: int
    seed: int = 0
    reuse_actors: bool = True
    review_artifacts: bool = True  # per-trial review artifacts (the composition layer's trial callbacks)
    kind: str = schema.SEARCH_RUN  # the parent run's ``orchestrator.kind``
    fixed_trials: tuple[FixedTrial, ...] = ()  # run first, in order, as they are; the searcher suggests the rest
    warm_start: bool = True  # the study's earlier trials are carried into the searcher (and a ledger left)

    @property
    def trial_kind(self) -> str:
        """The ``KIND`` of this plan's nested runs (a train's are not trials a search's warm start reads)."""
        return schema.NESTED_KIND[self.kind]

    @property
    def shown_tracking_uri(self) -> str:
        """The tracking URI without credentials, for messages and ``orchestrator.json``."""
        return describe_uri(self.tracking_uri)

    @property
    def spill(self) -> SpillFile:
        """Where tracking updates this search could not send are kept until ``resume`` sends them."""
        return self.experiment.spill

    def meta(self, finished: bool = False) -> dict[str, Any]:
        """What ``orchestrator.json`` holds."""
        v = self.version
        return {
            "study": v.study,
            "version": v.version,
            "space_file": str(v.source),
            "space_hash": v.content_hash,
            "tracking_uri": self.shown_tracking_uri,
            "parent_run_id": self.parent_run_id,
            "experiment_id": self.experiment_id,
            "planned": self.planned,
            "concurrency": self.concurrency,
            "seed": self.seed,
            FINISHED: finished,
            "reuse_actors": self.reuse_actors,
            "review_artifacts": self.review_artifacts,
            "kind": self.kind,
            "fixed_trials": [[values, seed] for values, seed in self.fixed_trials],
            "warm_start": self.warm_start,
        } | recorded_space_text(self.space_text)

    @classmethod
    def from_meta(cls, experiment: Experiment, meta: dict[str, Any], tracking_uri: str) -> SearchPlan:
        """The plan of a run that started earlier; ``tracking_uri`` replaces the recorded one (credentials).

        A space with secret values was recorded masked: it is read again from its file, which must be unchanged.
        Files written before plans were generic name the fixed trials ``trainings``, and only searches warm-started.
        """
        text = recorded_space(meta)
        kind = meta.get("kind", schema.SEARCH_RUN)
        return cls(
            version=parse_version(text, meta["space_file"]),
            space_text=text,
            tracking_uri=tracking_uri,
            experiment=experiment,
            experiment_id=meta["experiment_id"],
            parent_run_id=meta["parent_run_id"],
            planned=meta["planned"],
            concurrency=meta["concurrency"],
            seed=meta.get("seed", 0),
            reuse_actors=meta.get("reuse_actors", True),
            review_artifacts=meta.get("review_artifacts", True),
            kind=kind,
            fixed_trials=fixed_trials(meta.get("fixed_trials", meta.get("trainings", ()))),
            warm_start=meta.get("warm_start", kind == schema.SEARCH_RUN),
        )


def fixed_trials(pairs: Sequence[Sequence[Any]]) -> tuple[FixedTrial, ...]:
    """``[[values, seed], ...]`` as a plan holds them."""
    return tuple((dict(values), int(seed)) for values, seed in pairs)


# --------------------------------------------------------------------------- the space text a plan records


def recorded_space_text(text: str) -> dict[str, Any]:
    """The ``orchestrator.json`` entries for the space file's text: as it is, or masked when it holds secrets."""
    masked = mask_yaml_secrets(text)
    return {"space_text": text} if masked is None else {"space_text": masked, SPACE_REDACTED: True}


def recorded_space(meta: Mapping[str, Any]) -> str:
    """The space text an ``orchestrator.json`` recorded; read again from its file when it was recorded masked."""
    return space_file_text(meta) if meta.get(SPACE_REDACTED) else meta["space_text"]


def space_file_text(meta: Mapping[str, Any]) -> str:
    """The text of the space file a search recorded masked, checked to be the file it started from."""
    path = Path(meta["space_file"])
    try:
        text = path.read_text()
        unchanged = parse_version(text, str(path)).content_hash == meta["space_hash"]
    except (OSError, ValueError):
        unchanged = False
    if not unchanged:
        raise OrchestratorError(
            f"the search's space has secret values, which its state keeps masked: resume needs the space file "
            f"{path} as it was when the search started (content hash {meta['space_hash']})"
        )
    return text


# --------------------------------------------------------------------------- Ray Tune objects


def import_ahead(version: StudyVersion) -> None:
    """Import what ``build_searcher`` and ``build_tuner`` need (the searcher's library, Ray Tune's schedulers and the
    callbacks), ahead of them: called while Ray starts in its thread, so that the imports take none of the search's
    time."""
    from ray.tune.schedulers import ASHAScheduler  # noqa: F401

    from . import progress, tracking_callback  # noqa: F401
    from .searchers import searcher_class

    searcher_class(version.search.algorithm)


def build_searcher(plan: SearchPlan, carried: list[CarriedTrial]) -> Any:
    """The space's search algorithm, warm-started from the carried ``(values, loss)`` or, with a known per-epoch
    history, ``(values, loss, {epoch: loss})`` trials.

    It searches the space with its secrets masked: Ray Tune pickles it, and records the configs it issues."""
    from .searchers import searcher_class

    return searcher_class(plan.version.search.algorithm)(mask_secrets(plan.version), carried, seed=plan.seed)


def asha_scheduler(schedule: Schedule, goals: Sequence[Metric] = (), constraints: Sequence[Constraint] = ()) -> Any:
    """Ray Tune's ``ASHAScheduler`` for the space's schedule, counting epochs as ``training_iteration`` (the
    searchers' ``EPOCH_KEY``); with ``brackets`` > 1 (asynchronous Hyperband) trials join the brackets in
    Hyperband's proportions (``brackets.HyperbandAsha``), with one it is Ray's stock scheduler. With several
    objectives ``goals`` or any ``constraints``, MO-ASHA (``pareto_asha.ParetoAsha``: rungs promote by
    non-dominated sorting, infeasible trials last), in the same brackets."""
    from ray.tune.schedulers import ASHAScheduler

    from .brackets import HyperbandAsha

    settings = asha_settings(schedule)
    if len(goals) > 1 or constraints:
        from .pareto_asha import ParetoAsha

        return ParetoAsha(schedule, goals, constraints, **settings)
    return HyperbandAsha(schedule, **settings) if schedule.brackets > 1 else ASHAScheduler(**settings)


def asha_settings(schedule: Schedule) -> dict[str, Any]:
    """The ``ASHAScheduler`` arguments of a schedule but its brackets: epochs as ``training_iteration``."""
    return {
        "time_attr": "training_iteration",
        "max_t": schedule.max_epochs,
        "grace_period": schedule.grace_period,
        "reduction_factor": schedule.reduction_factor,
    }


def build_tuner(
    plan: SearchPlan,
    searcher: Any,
    live: bool | None = None,
    trials: int | None = None,
    trial_callbacks: TrialCallbacks | None = None,
) -> Any:
    """A new ``ray.tune.Tuner`` for ``plan`` in its experiment folder, running ``trials`` (None: the planned ones);
    ``live`` picks the progress view (None: a terminal gets the panel); ``trial_callbacks`` adds the callbacks of
    the run's kind (``hooks.RunHooks``), which see the tracking callback (its logger, the runs it opens)."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback
    from ray.tune.schedulers import FIFOScheduler

    from .progress import ProgressCallback, quiet_ray_tune
    from .tracking_callback import MlflowTrialCallback

    quiet_ray_tune()
    v = plan.version
    s = v.schedule
    trials = plan.planned if trials is None else trials
    scheduler = asha_scheduler(s, v.goals, v.constraints) if s.scheduler == "asha" else FIFOScheduler()
    tracking = MlflowTrialCallback(
        v, plan.tracking_uri, plan.experiment_id, plan.parent_run_id, plan.spill, searcher, trial_kind=plan.trial_kind
    )
    added = trial_callbacks(plan, tracking) if trial_callbacks is not None else []
    # The added callbacks come first: at the experiment's end they finish while the tracking callback's logger
    # still runs (each calls ``tracking.setup`` first, which is idempotent, so the logger exists for them).
    progress = ProgressCallback(v.metric, trials, list(v.params.params), live=live, experiment_uri=plan.experiment.uri)
    callbacks = [*added, tracking, progress, JsonLoggerCallback()]  # Tune's only logger (``tune_fit_settings``)
    return tune.Tuner(
        _trainable(v),
        tune_config=tune.TuneConfig(
            metric=v.metric.name,
            mode=v.metric.mode,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=trials,
            max_concurrent_trials=plan.concurrency,
            reuse_actors=plan.reuse_actors,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=plan.experiment.name,
            storage_path=plan.experiment.storage.path,
            storage_filesystem=plan.experiment.storage.filesystem,
            callbacks=callbacks,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=v.search.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_TO_KEEP),
        ),
    )


@contextmanager
def tune_fit_settings() -> Iterator[None]:
    """Within the block (a ``Tuner.fit`` of ``build_tuner``'s), Ray Tune's settings for our searches; other tuners of
    the process keep Ray's defaults.

    * None of Tune's default loggers: they are CSV, JSON and TensorBoard per trial, and the first import of
      tensorboardX (which loads torch) delayed a search's first trial by seconds while each result was written three
      times. ``build_tuner`` gives the trials Tune's JSON log (the result grid and resume's tests read it); their
      metrics are in MLflow.
    * Our check of the metrics a result must hold, not Tune's: the searcher's (``results.check_reported``) names
      the missing objective and what the trainable reported, where Tune's ``ValueError`` dumps the whole result.
    """
    settings = {TUNE_NO_DEFAULT_LOGGERS: "1", TUNE_NO_STRICT_METRICS: "1"}
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def trial_name(trial: Any) -> str:
    """A trial's name and folder: its trainable and id only (Ray Tune's default spells out config values)."""
    return f"{trial.trainable_name}_{trial.trial_id}"


def _trainable(version: StudyVersion) -> Any:
    from trainables.costs import to_measure

    from .trainable import ray_trainable

    return ray_trainable(
        version.trainable,
        version.resources.cpu,
        version.resources.gpu,
        prepare=functools.partial(with_fixed_values, version),
        measure=to_measure(version.reported),  # latencies, when an objective or constraint names them
    )
