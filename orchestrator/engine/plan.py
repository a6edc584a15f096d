"""A search decided once: what runs, where its state and tracking go; and the Ray Tune objects made from it.

``run`` builds a ``SearchPlan`` when it starts a search and writes it to ``orchestrator.json``;
``resume`` reads it back from there. Everything after that (the tuner, its callbacks, the
final bookkeeping) takes its settings from the plan, never from the command's options.
A resumed search gets a new tuner too (``build_tuner`` with the trials left), never Ray Tune's
pickled state back (``Tuner.restore``): see ``runner.resume_search``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.redaction import REDACTED, is_secret_key, mask_yaml_secrets
from orchestrator.spaces import SearchSpace, StudyVersion, dump, parse_version
from orchestrator.spaces.carry import CarriedTrial
from orchestrator.spaces.model import Schedule
from orchestrator.tracking import schema
from orchestrator.tracking.async_logger import SpillFile
from orchestrator.tracking.mlflow_store import describe_uri

from .storage import FINISHED, Experiment

CHECKPOINTS_TO_KEEP = 2
SPACE_REDACTED = "space_redacted"  # orchestrator.json: the recorded space text has its secret values masked


@dataclass(frozen=True)
class SearchPlan:
    """One search: the space version, the tracking store and runs, the experiment folder, the sizes."""

    version: StudyVersion
    space_text: str  # the space file as it was when the search started (resume parses it)
    tracking_uri: str  # may hold credentials: for connecting only, never printed or written
    experiment: Experiment
    experiment_id: str  # the MLflow experiment (the study)
    parent_run_id: str
    planned: int
    concurrency: int
    seed: int = 0
    reuse_actors: bool = True
    review_artifacts: bool = True  # per-trial review artifacts (orchestrator.review.trial)
    # ``schema.SEARCH_RUN``, or ``schema.TRAIN_RUN`` for ``orchestrator train`` (orchestrator.production.train):
    # its trials are ``trainings``, the ``(values, seed)`` of each model in order, and its end registers the models.
    kind: str = schema.SEARCH_RUN
    trainings: tuple[tuple[dict[str, Any], int], ...] = ()

    @property
    def is_train(self) -> bool:
        return self.kind == schema.TRAIN_RUN

    @property
    def trial_kind(self) -> str:
        """The ``KIND`` of this plan's nested runs: a train's are not trials that a search's warm start reads."""
        return schema.TRAINING_RUN if self.is_train else schema.TRIAL_RUN

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
            "trainings": [[values, seed] for values, seed in self.trainings],
        } | recorded_space_text(self.space_text)

    @classmethod
    def from_meta(cls, experiment: Experiment, meta: dict[str, Any], tracking_uri: str) -> SearchPlan:
        """The plan of a search that started earlier; ``tracking_uri`` replaces the recorded one (credentials).

        A space with secret values was recorded masked: it is read again from its file, which must be unchanged.
        """
        text = recorded_space(meta)
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
            kind=meta.get("kind", schema.SEARCH_RUN),
            trainings=tuple((dict(values), int(seed)) for values, seed in meta.get("trainings", ())),
        )


# --------------------------------------------------------------------------- secret values in a space
#
# The values of secret-looking keys (``orchestrator.redaction.is_secret_key``) are recorded as ``***``
# everywhere: MLflow, Ray Tune's state and trial folders, ``orchestrator.json``. They must therefore be
# fixed values (the space knows them): the searcher searches the masked space (``mask_secrets``), and the
# trainable gets the values back in the driver's process (``with_fixed_values``, in its closure).


def check_secrets(version: StudyVersion) -> None:
    """Refuse a searched parameter with a secret-looking name: recorded as ``***``, its values could not be told
    apart, carried or given back to the trainable."""
    walk = version.params.walk()
    searched = [label for label, p in walk if not p.is_fixed and is_secret_key(label.rpartition(".")[2])]
    if searched:
        raise OrchestratorError(
            f"{version.source}: params " + ", ".join(searched) + f" look like secrets (recorded as {REDACTED} "
            "wherever trials are kept), so they cannot be searched; make each a fixed value, or rename it if it "
            "is not a secret"
        )


def mask_secrets(version: StudyVersion) -> StudyVersion:
    """``version`` with the values of secret-looking keys masked: what Ray Tune may pickle, and the configs it
    issues. The content hash is the masked space's; the real version's is recorded (``content_hash``)."""
    masked = mask_yaml_secrets(dump(version))
    return version if masked is None else parse_version(masked, version.source)


def with_fixed_values(version: StudyVersion, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as Ray Tune holds it (secret-looking fixed entries redacted) with every fixed entry's value back."""
    out = _with_fixed(version.params, config)
    out.update({k: v for k, v in version.fixed.items() if k in out})
    return out


def _with_fixed(space: SearchSpace, config: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(config)
    for name, p in space.params.items():
        if name not in out:
            continue
        if p.is_fixed:
            out[name] = p.default_value
            continue
        option = p.select(out[name]) if p.is_choice else None
        sub = None if option is None else p.sub_space(option)
        if sub is not None and isinstance(out[name], Mapping):
            out[name] = _with_fixed(sub, out[name])
    return out


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


def build_searcher(plan: SearchPlan, carried: list[CarriedTrial]) -> Any:
    """The space's search algorithm, warm-started from the carried ``(values, loss)`` or, with a known per-epoch
    history, ``(values, loss, {epoch: loss})`` trials.

    It searches the space with its secrets masked: Ray Tune pickles it, and records the configs it issues."""
    from .searchers import searcher_class

    return searcher_class(plan.version.search.algorithm)(mask_secrets(plan.version), carried, seed=plan.seed)


def asha_scheduler(schedule: Schedule) -> Any:
    """Ray Tune's ``ASHAScheduler`` for the space's schedule, counting epochs as ``training_iteration`` (the
    searchers' ``EPOCH_KEY``); with ``brackets`` > 1 (asynchronous Hyperband) trials join the brackets in
    Hyperband's proportions (``brackets.HyperbandAsha``), with one it is Ray's stock scheduler."""
    from ray.tune.schedulers import ASHAScheduler

    from .brackets import HyperbandAsha

    settings = asha_settings(schedule)
    return HyperbandAsha(schedule, **settings) if schedule.brackets > 1 else ASHAScheduler(**settings)


def asha_settings(schedule: Schedule) -> dict[str, Any]:
    """The ``ASHAScheduler`` arguments of a schedule but its brackets: epochs as ``training_iteration``."""
    return {
        "time_attr": "training_iteration",
        "max_t": schedule.max_epochs,
        "grace_period": schedule.grace_period,
        "reduction_factor": schedule.reduction_factor,
    }


def build_tuner(plan: SearchPlan, searcher: Any, live: bool | None = None, trials: int | None = None) -> Any:
    """A new ``ray.tune.Tuner`` for ``plan`` in its experiment folder, running ``trials`` (None: the planned ones);
    ``live`` picks the progress view (None: a terminal gets the panel)."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from .progress import ProgressCallback
    from .tracking_callback import MlflowTrialCallback

    v = plan.version
    s = v.schedule
    trials = plan.planned if trials is None else trials
    scheduler = asha_scheduler(s) if s.scheduler == "asha" else FIFOScheduler()
    callbacks = [
        MlflowTrialCallback(
            v,
            plan.tracking_uri,
            plan.experiment_id,
            plan.parent_run_id,
            plan.spill,
            searcher,
            review_artifacts=plan.review_artifacts,
            trial_kind=plan.trial_kind,
        ),
        ProgressCallback(v.metric, trials, list(v.params.params), live=live),
    ]
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


def trial_name(trial: Any) -> str:
    """A trial's name and folder: its trainable and id only (Ray Tune's default spells out config values)."""
    return f"{trial.trainable_name}_{trial.trial_id}"


def _trainable(version: StudyVersion) -> Any:
    from .trainable import ray_trainable

    return ray_trainable(
        version.trainable,
        version.resources.cpu,
        version.resources.gpu,
        prepare=functools.partial(with_fixed_values, version),
    )
