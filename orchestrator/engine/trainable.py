"""Adapt a registered trainable (``train(config, reporter)``) to a Ray Tune function trainable."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from ray import tune
from ray.tune import Checkpoint

import trainables


class RayReporter:
    """The ``trainables.Reporter`` a trial gets under Ray Tune: reports and checkpoints go to Tune."""

    def __init__(self) -> None:
        self._restored: str | None = None
        self._placement: dict[str, str] | None = None

    def report(self, metrics: Mapping[str, float], checkpoint_dir: str | None = None) -> None:
        checkpoint = Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report({**metrics, **self.placement()}, checkpoint=checkpoint)

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
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        if self._restored is None:
            self._restored = tempfile.mkdtemp(prefix="orchestrator-restore-")
        return checkpoint.to_directory(self._restored)

    def cleanup(self) -> None:
        if self._restored:
            shutil.rmtree(self._restored, ignore_errors=True)


def ray_trainable(name: str, cpu: float, gpu: float) -> Any:
    """A Tune trainable for the registered ``name`` with per-trial resources attached."""
    spec = trainables.get(name)

    def train(config: dict[str, Any]) -> None:
        fn: Callable[[dict[str, Any], Any], None] = spec.load()
        reporter = RayReporter()
        try:
            fn(dict(config), reporter)
        finally:
            reporter.cleanup()

    train.__name__ = train.__qualname__ = name
    return tune.with_resources(train, {"cpu": cpu, "gpu": gpu})
