"""Adapt a registered trainable (``train(config, reporter)``) to a Ray Tune function trainable.

A trial that ``orchestrator resume`` continues carries ``RESUME_KEY`` in its config (a ``ResumeFrom``):
the wrapper takes it out before the family's ``train`` sees the config, and the reporter hands the
named checkpoint folder to the loop when Ray Tune has no checkpoint of the trial's own.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

from ray import tune
from ray.tune import Checkpoint

import trainables

from .results import RESUME_KEY
from .storage import CHECKPOINT_EPOCH, copy_to_local

TRAINING_ITERATION = "training_iteration"  # what Ray Tune (and ASHA) counts a trial's progress in


class ResumeFrom(TypedDict):
    """What a continued trial carries under ``RESUME_KEY``."""

    trial_id: str  # the trial's id in the tracking store (its run's ``orchestrator.trial_id``)
    checkpoint: str  # URI of the checkpoint folder to start from; "" starts from epoch 1


class RayReporter:
    """The ``trainables.Reporter`` a trial gets under Ray Tune: reports and checkpoints go to Tune.

    ``resume_from`` (a checkpoint folder's URI) is where the trial starts when Tune has no checkpoint for it;
    ``measure`` the hardware costs beyond params and macs the search needs (``trainables.costs``: the latencies).
    """

    def __init__(self, resume_from: str = "", measure: Sequence[str] = ()) -> None:
        self._resume_from = resume_from
        self.measure = tuple(measure)
        self._restored: str | None = None
        self._placement: dict[str, str] | None = None

    def report(self, metrics: Mapping[str, float], checkpoint_dir: str | None = None) -> None:
        """Report to Tune. With an epoch, progress counts in epochs (a trial continued from epoch k reaches ASHA's
        rungs at the right epochs) and the checkpoint records it (``resume`` picks checkpoints by epoch)."""
        epoch = int(metrics["epoch"]) if "epoch" in metrics else None
        if checkpoint_dir and epoch is not None:
            with open(f"{checkpoint_dir}/{CHECKPOINT_EPOCH}", "w") as f:
                json.dump({"epoch": epoch}, f)
        checkpoint = Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        progress = {} if epoch is None else {TRAINING_ITERATION: epoch}
        tune.report({**metrics, **self.placement(), **progress}, checkpoint=checkpoint)

    def placement(self) -> dict[str, str]:
        """Where this trial runs (node and GPU ids): recorded on its MLflow run."""
        if self._placement is None:
            import ray

            ctx = ray.get_runtime_context()
            self._placement = {
                "node_id": ctx.get_node_id(),
                "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
            }
        return self._placement

    def restore_dir(self) -> str | None:
        """A local copy of the checkpoint to start from: Tune's own (a retry), else ``resume_from``; None for none."""
        checkpoint = tune.get_checkpoint()
        if checkpoint is None and not self._resume_from:
            return None
        if self._restored is None:
            self._restored = tempfile.mkdtemp(prefix="orchestrator-restore-")
        if checkpoint is not None:
            return checkpoint.to_directory(self._restored)
        return copy_to_local(self._resume_from, self._restored)

    def cleanup(self) -> None:
        if self._restored:
            shutil.rmtree(self._restored, ignore_errors=True)


def ray_trainable(
    name: str,
    cpu: float,
    gpu: float,
    prepare: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
    measure: Sequence[str] = (),
) -> Any:
    """A Tune trainable for the registered ``name`` with per-trial resources attached.

    ``prepare`` turns the config Ray Tune holds into the one the trainable gets (after ``RESUME_KEY`` is taken out);
    ``measure`` names the costs the shared loop measures beyond params and macs (``RayReporter.measure``).
    """
    spec = trainables.get(name)

    def train(config: dict[str, Any]) -> None:
        fn: Callable[[dict[str, Any], Any], None] = spec.load()
        own = dict(config)
        resume: ResumeFrom | None = own.pop(RESUME_KEY, None)
        reporter = RayReporter(resume["checkpoint"] if resume else "", measure)
        try:
            fn(prepare(own) if prepare else own, reporter)
        finally:
            reporter.cleanup()

    train.__name__ = train.__qualname__ = name
    return tune.with_resources(train, {"cpu": cpu, "gpu": gpu})
