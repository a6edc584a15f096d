"""The Ray Tune callback that reviews each ended trial (``review.trial``) and gates the review worker.

It stands beside the engine's tracking callback (``engine.tracking_callback.MlflowTrialCallback``), which
owns the trials' runs: a review is submitted once its trial's run exists, through that callback's logger.
The gate: renders wait while trials on the driver's machine (those not yet placed count as on it) leave fewer
than ``REVIEW_SPARE_CPUS`` of its CPUs free. At the end of a search that was not interrupted, it waits for the
queue (bounded by ``settings.review_wait_s()``); it comes before the tracking callback in the tuner's list,
so it finishes while the logger still sends its tags.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from orchestrator.engine.ray_session import driver_node_cpus
from orchestrator.engine.tracking_callback import MlflowTrialCallback
from orchestrator.engine.trainable import RESUME_KEY
from orchestrator.settings import review_wait_s
from orchestrator.spaces import StudyVersion
from orchestrator.spaces.secrets import mask_secrets, with_fixed_values
from orchestrator.tracking.mlflow_store import with_login

from .trial import REVIEW_SPARE_CPUS, TrialReviews, has_review_hook


class TrialReviewCallback(Callback):
    """Review artifacts for every trial of ``version`` that ends with a checkpoint, rendered off the training path."""

    def __init__(self, version: StudyVersion, tracking: MlflowTrialCallback):
        review_wait_s()  # a bad value of its environment variable is named now, not when the trials are done
        self.version = version
        self.tracking = tracking
        self.reviews: TrialReviews | None = None
        self._driver_node, self._driver_cpus = "", 0.0  # the driver's Ray node and its CPUs, set up with the reviews
        self._on_driver_node: set[str] = set()  # open trials on it, or not placed yet
        self._open: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["version"] = mask_secrets(self.version)  # Ray Tune's state holds no secret value
        state["reviews"] = None  # a process and its queues
        return state

    def setup(self, **info: Any) -> None:
        self.tracking.setup(**info)  # its logger sends the review tags and says when a trial's run exists
        assert self.tracking.logger is not None
        self.reviews = TrialReviews(
            self.version.trainable, with_login(self.tracking.tracking_uri), self.tracking.logger
        )
        self._driver_node, self._driver_cpus = driver_node_cpus()  # the worker starts held

    def _update_gate(self) -> None:
        if self.reviews is not None:
            used = len(self._on_driver_node) * self.version.resources.cpu
            self.reviews.machine_busy(used > 0 and used > self._driver_cpus - REVIEW_SPARE_CPUS)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._open.add(trial.trial_id)
        self._on_driver_node.add(trial.trial_id)
        self._update_gate()

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        node = result.get("node_id")
        if node is None:
            return
        on_driver = str(node) == self._driver_node
        if on_driver != (trial.trial_id in self._on_driver_node):  # placed, or moved by a retry on another node
            (self._on_driver_node.add if on_driver else self._on_driver_node.discard)(trial.trial_id)
            self._update_gate()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial)

    def _ended(self, trial: Any) -> None:
        """Hand an ended trial with a checkpoint to the worker, with the config its trainable received."""
        self._open.discard(trial.trial_id)
        self._on_driver_node.discard(trial.trial_id)
        self._update_gate()
        if self.reviews is None:
            return
        self.reviews.collect()  # tags the failures of earlier reviews
        if trial.checkpoint is not None:
            own = {k: v for k, v in trial.config.items() if k != RESUME_KEY}
            self.reviews.add(trial.trial_id, with_fixed_values(self.version, own), trial.checkpoint)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        if self.reviews is None:
            return
        reviews, self.reviews = self.reviews, None
        if self._open:  # interrupted (Ctrl-C): no wait; the trials continue on resume
            reviews.stop()
        else:
            reviews.finish(review_wait_s())  # bounded, with a progress line; Ctrl-C stops it


def review_callbacks(plan: Any, tracking: MlflowTrialCallback) -> list[Callback]:
    """The trial callbacks of a search (``engine.hooks.RunHooks``): the reviews, when asked for and the trainable
    has a review hook."""
    if not plan.review_artifacts or not has_review_hook(plan.version.trainable):
        return []
    return [TrialReviewCallback(plan.version, tracking)]
