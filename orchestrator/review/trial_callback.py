"""The Ray Tune callback that reviews each ended trial (``review.trial``) and gates the review worker.

It stands beside the engine's tracking callback (``engine.tracking_callback.MlflowTrialCallback``), which
owns the trials' runs: a review is submitted once its trial's run exists, through that callback's logger.
The gate: renders wait while trials on the driver's machine (those not yet placed count as on it) leave fewer
than ``spare_cpus()`` of its CPUs free (a physical core).

A run started through ``runner.start_run`` or ``resume_search`` has the review process from before Ray starts
(:func:`early_reviews`, the kind's ``RunHooks.around``): it warms up while Ray, the driver and the first trials
start, until the first trial does. At the end of a run that was not interrupted, the callback lets the worker go on
and the run's end hook (:func:`with_trial_reviews`) waits for its queue after the kind's own end (the search's
review, which has the worker log the best model meanwhile), bounded by ``settings.review_wait_s()``, while Ray shuts
down. Without :func:`early_reviews` (a tuner built by hand) the callback starts its worker itself and waits in
``on_experiment_end``; it comes before the tracking callback in the tuner's list, so it finishes while the logger
still sends its tags.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ray.tune import Callback

from orchestrator.engine.hooks import Ended
from orchestrator.engine.ray_session import driver_node_cpus
from orchestrator.engine.tracking_callback import MlflowTrialCallback
from orchestrator.engine.trainable import RESUME_KEY
from orchestrator.settings import review_wait_s
from orchestrator.spaces import StudyVersion
from orchestrator.spaces.secrets import mask_secrets, with_fixed_values
from orchestrator.tracking.mlflow_store import keep_login, with_login

from .trial import ReviewWorker, TrialReviews, has_review_hook, spare_cpus


class ReviewSession:
    """One run's per-trial reviews from before Ray starts to the run's end (:func:`early_reviews`): the review process
    started early, the callback's ``TrialReviews`` on it, and whether the run's trials ended so that its end hook
    waits for them (:func:`with_trial_reviews`)."""

    def __init__(self, trainable: str, tracking_uri: str):
        self.trainable = trainable
        self.tracking_uri = keep_login(tracking_uri)  # how the tracking callback names the store
        self.worker: ReviewWorker | None = None
        self.reviews: TrialReviews | None = None
        self.parent_run_id = ""
        self.taken = False  # by a callback (one run's)
        self.ended = False

    def close(self) -> None:
        """Stop what is left: reviews not waited for (their jobs tagged skipped), or a worker no callback took."""
        if self.reviews is not None:
            self.reviews.stop("the run ended before its review artifacts")
            self.reviews = None
        elif self.worker is not None:
            self.worker.stop(timeout=0)
        self.worker = None


_SESSIONS: list[ReviewSession] = []
_LOCK = threading.Lock()


@contextmanager
def early_reviews(version: StudyVersion, tracking_uri: str, review_artifacts: bool) -> Iterator[None]:
    """``RunHooks.around`` of searches and trains: the review process starts now, before Ray, and warms up (it goes on
    until the run's first trial starts); the callback takes it, the end hook waits for it, and whatever is left when
    the run ends is stopped. Nothing without review artifacts or a family review hook."""
    if not review_artifacts or not has_review_hook(version.trainable):
        yield
        return
    review_wait_s()  # a bad value of its environment variable is named now, not when the trials are done
    session = ReviewSession(version.trainable, tracking_uri)
    try:
        session.worker = ReviewWorker(version.trainable, tracking_uri, held=False)
    except OSError:  # no process to spare: the callback says so when it tries again
        session.worker = None
    with _LOCK:
        _SESSIONS.append(session)
    try:
        yield
    finally:
        with _LOCK:
            _SESSIONS.remove(session)
        session.close()


def _session_for(trainable: str, tracking_uri: str) -> ReviewSession | None:
    """The newest early session of ``trainable`` and this store that no callback has taken yet."""
    with _LOCK:
        free = [s for s in _SESSIONS if not s.taken and (s.trainable, s.tracking_uri) == (trainable, tracking_uri)]
        if not free:
            return None
        free[-1].taken = True
        return free[-1]


def _ended_session(parent_run_id: str) -> ReviewSession | None:
    with _LOCK:
        return next((s for s in _SESSIONS if s.parent_run_id == parent_run_id and s.reviews is not None), None)


def trial_reviews_of(parent_run_id: str) -> TrialReviews | None:
    """The per-trial reviews of the run ``parent_run_id`` whose trials ended and which its end hook waits for (the
    search's review has their worker log the best model); None when there are none."""
    session = _ended_session(parent_run_id)
    return session.reviews if session is not None and session.ended else None


def wait_for_trial_reviews(parent_run_id: str) -> None:
    """Wait for the per-trial reviews of the run ``parent_run_id`` (bounded, with a progress line), then stop them."""
    session = _ended_session(parent_run_id)
    if session is None or session.reviews is None:
        return
    reviews, session.reviews, session.worker = session.reviews, None, None
    if session.ended:
        reviews.finish(review_wait_s())  # Ctrl-C stops it
    else:
        reviews.stop()


def with_trial_reviews(finish: Callable[[Ended], Any] | None) -> Callable[[Ended], None]:
    """A kind's end hook (``RunHooks.finish``) followed by the wait for the run's per-trial reviews: the worker renders
    what is left while the kind's own end runs (and Ray shuts down)."""

    def finished(ended: Ended) -> None:
        if finish is not None:
            finish(ended)
        wait_for_trial_reviews(ended.plan.parent_run_id)

    return finished


class TrialReviewCallback(Callback):
    """Review artifacts for every trial of ``version`` that ends with a checkpoint, rendered off the training path."""

    def __init__(self, version: StudyVersion, tracking: MlflowTrialCallback):
        review_wait_s()  # a bad value of its environment variable is named now, not when the trials are done
        self.version = version
        self.tracking = tracking
        self.reviews: TrialReviews | None = None
        self._session: ReviewSession | None = None  # the early review process's, when the run has one
        self._driver_node, self._driver_cpus = "", 0.0  # the driver's Ray node and its CPUs, set up with the reviews
        self._on_driver_node: set[str] = set()  # open trials on it, or not placed yet
        self._open: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["version"] = mask_secrets(self.version)  # Ray Tune's state holds no secret value
        state["reviews"] = None  # a process and its queues
        state["_session"] = None
        return state

    def setup(self, **info: Any) -> None:
        self.tracking.setup(**info)  # its logger sends the review tags and says when a trial's run exists
        assert self.tracking.logger is not None
        session = _session_for(self.version.trainable, self.tracking.tracking_uri)
        self.reviews = TrialReviews(
            self.version.trainable,
            with_login(self.tracking.tracking_uri),
            self.tracking.logger,
            worker=session.worker if session is not None else None,
        )
        if session is not None:  # its worker warms up until the first trial starts
            session.reviews, session.parent_run_id = self.reviews, self.tracking.parent_run_id
            self._session = session
        self._driver_node, self._driver_cpus = driver_node_cpus()

    def _update_gate(self) -> None:
        if self.reviews is not None:
            used = len(self._on_driver_node) * self.version.resources.cpu
            self.reviews.machine_busy(used > 0 and used > self._driver_cpus - spare_cpus())

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
        elif self._session is not None:  # the run's end hook waits, after the kind's own end
            reviews.release()
            self._session.ended = True
        else:
            reviews.finish(review_wait_s())  # bounded, with a progress line; Ctrl-C stops it


def review_callbacks(plan: Any, tracking: MlflowTrialCallback) -> list[Callback]:
    """The trial callbacks of a search (``engine.hooks.RunHooks``): the reviews, when asked for and the trainable
    has a review hook."""
    if not plan.review_artifacts or not has_review_hook(plan.version.trainable):
        return []
    return [TrialReviewCallback(plan.version, tracking)]
