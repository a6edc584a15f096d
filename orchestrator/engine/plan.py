"""A search decided once: what runs, where its state and tracking go; and the Ray Tune objects made from it.

``run`` builds a ``SearchPlan`` when it starts a search and writes it to ``orchestrator.json``;
``resume`` reads it back from there. Everything after that (the tuner, its callbacks, the
final bookkeeping) takes its settings from the plan, never from the command's options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.spaces import StudyVersion, parse_version
from orchestrator.tracking.async_logger import SpillFile
from orchestrator.tracking.mlflow_store import describe_uri

from .storage import FINISHED, Experiment

CHECKPOINTS_TO_KEEP = 2


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
            "study": v.study, "version": v.version, "space_file": str(v.source), "space_text": self.space_text,
            "space_hash": v.content_hash, "tracking_uri": self.shown_tracking_uri,
            "parent_run_id": self.parent_run_id, "experiment_id": self.experiment_id, "planned": self.planned,
            "concurrency": self.concurrency, "seed": self.seed, FINISHED: finished, "reuse_actors": self.reuse_actors,
        }  # fmt: skip

    @classmethod
    def from_meta(cls, experiment: Experiment, meta: dict[str, Any], tracking_uri: str) -> SearchPlan:
        """The plan of a search that started earlier; ``tracking_uri`` replaces the recorded one (credentials)."""
        return cls(
            version=parse_version(meta["space_text"], meta["space_file"]), space_text=meta["space_text"],
            tracking_uri=tracking_uri, experiment=experiment, experiment_id=meta["experiment_id"],
            parent_run_id=meta["parent_run_id"], planned=meta["planned"], concurrency=meta["concurrency"],
            seed=meta.get("seed", 0), reuse_actors=meta.get("reuse_actors", True),
        )  # fmt: skip


# --------------------------------------------------------------------------- Ray Tune objects


def build_searcher(plan: SearchPlan, carried: list[tuple[dict[str, Any], float]]) -> Any:
    """The space's search algorithm, warm-started from the carried ``(values, loss)`` pairs."""
    from .searchers import searcher_class

    return searcher_class(plan.version.search.algorithm)(plan.version, carried, seed=plan.seed)


def build_tuner(plan: SearchPlan, searcher: Any, live: bool | None = None) -> Any:
    """A new ``ray.tune.Tuner`` for ``plan``; ``live`` picks the progress view (None: a terminal gets the panel)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from .progress import ProgressCallback
    from .tracking_callback import MlflowTrialCallback

    v = plan.version
    s = v.schedule
    scheduler = (
        ASHAScheduler(time_attr="training_iteration", max_t=s.max_epochs, grace_period=s.grace_period,
                      reduction_factor=s.reduction_factor)
        if s.scheduler == "asha" else FIFOScheduler()
    )  # fmt: skip
    callbacks = [
        MlflowTrialCallback(v, plan.tracking_uri, plan.experiment_id, plan.parent_run_id, plan.spill, searcher),
        ProgressCallback(v.metric, plan.planned, list(v.params.params), live=live),
    ]
    return tune.Tuner(
        _trainable(v),
        tune_config=tune.TuneConfig(
            metric=v.metric.name, mode=v.metric.mode, search_alg=searcher, scheduler=scheduler,
            num_samples=plan.planned, max_concurrent_trials=plan.concurrency, reuse_actors=plan.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=plan.experiment.name, storage_path=plan.experiment.storage.path,
            storage_filesystem=plan.experiment.storage.filesystem, callbacks=callbacks, verbose=0,
            failure_config=tune.FailureConfig(max_failures=v.search.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_TO_KEEP),
        ),
    )  # fmt: skip


def restore_tuner(plan: SearchPlan) -> Any:
    """The tuner of a search whose driver stopped, from Ray Tune's saved state (its callbacks come back with it)."""
    from ray import tune

    return tune.Tuner.restore(
        plan.experiment.path, trainable=_trainable(plan.version), resume_unfinished=True, resume_errored=True,
        storage_filesystem=plan.experiment.storage.filesystem,
    )  # fmt: skip


def _trainable(version: StudyVersion) -> Any:
    from .trainable import ray_trainable

    return ray_trainable(version.trainable, version.resources.cpu, version.resources.gpu)
