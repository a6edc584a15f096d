"""A Ray Tune callback that mirrors each trial into a nested MLflow run, off the critical path.

Everything goes through ``AsyncTrialLogger``: the driver only enqueues. The callback is
pickled with the tuner (Ray Tune saves it; resume never loads it), so it holds plain data until ``setup``, and no
credentials: the tracking URI without its login (``keep_login``; the driver's process connects
with it) and trial values with secret-looking entries redacted.
On a resumed search, ``setup`` closes child runs the dead driver left RUNNING as KILLED
and remembers, per trial, the run and the last step logged; a trial that ``resume`` continues
(a new Ray Tune trial naming the old one under ``RESUME_KEY``) reopens the old trial's run and
skips steps already logged, so nothing is logged twice.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ray.tune import Callback

from orchestrator.redaction import redact_config, redact_text
from orchestrator.review.trial import REVIEW_SPARE_CPUS, TrialReviews, has_review_hook, review_wait_s
from orchestrator.spaces import StudyVersion, flatten
from orchestrator.tracking import schema
from orchestrator.tracking.async_logger import AsyncTrialLogger, SpillFile, tracking_wait_s
from orchestrator.tracking.mlflow_store import (
    History,
    MlflowStore,
    history_tag,
    keep_login,
    per_step,
    short_error,
    with_login,
)

from .plan import mask_secrets, with_fixed_values
from .ray_session import driver_node_cpus
from .results import user_metrics
from .searchers.base import SpaceSearcher
from .trainable import RESUME_KEY


class MlflowTrialCallback(Callback):
    """``spill`` keeps what could not be sent when the search ends (``orchestrator resume`` sends it).

    With ``review_artifacts``, every trial that ends with a checkpoint is reviewed by one low-priority process
    (``orchestrator.review.trial``); the end of the search waits for it, bounded.
    """

    flush_timeout_s: float | None = None  # None: tracking_wait_s() (TRACKING_WAIT_S or its environment variable)

    def __init__(
        self,
        version: StudyVersion,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        spill: SpillFile,
        searcher: SpaceSearcher | None = None,
        *,
        review_artifacts: bool = True,
        trial_kind: str = schema.TRIAL_RUN,
    ):
        self.version = version
        self.tracking_uri = keep_login(tracking_uri)  # pickled: no credentials
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.spill = spill
        self.searcher = searcher
        self.trial_kind = trial_kind  # the runs' KIND: schema.TRAINING_RUN for the models of a train
        self.logger: AsyncTrialLogger | None = None
        self._best: dict[str, float] = {}
        self._last_step: dict[str, int] = {}
        self._history: dict[str, History] = {}  # per open trial, the metric by epoch (its METRIC_HISTORY tag)
        self._node: dict[str, str] = {}  # per trial, the node its placement tags name (a retry may move it)
        self._existing: dict[str, tuple[str, History, float | None]] = {}  # trial id -> run, history, best value
        self._open: set[str] = set()
        # Review artifacts of ended trials (orchestrator.review.trial), when the trainable has a review hook.
        self.review_artifacts = review_artifacts and has_review_hook(version.trainable)
        if self.review_artifacts:
            review_wait_s()  # a bad value of its environment variable is named now, not when the trials are done
        self.reviews: TrialReviews | None = None
        self._driver_node, self._driver_cpus = "", 0.0  # set up with the reviews: the driver's Ray node, its CPUs
        self._on_driver_node: set[str] = set()  # open trials on it, or not placed yet

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["logger"] = None
        state["version"] = mask_secrets(self.version)  # Ray Tune's state holds no secret value
        state["searcher"] = None  # the tuner pickles its own searcher
        state["reviews"] = None  # a process and its queues
        return state

    # ------------------------------------------------------------------ lifecycle

    def setup(self, **info: Any) -> None:
        self._existing = self._close_orphans()
        self.logger = AsyncTrialLogger(
            lambda: MlflowStore(self.tracking_uri), on_error=lambda m: print(m, file=sys.stderr, flush=True)
        )
        self.logger.start()
        if self.review_artifacts:
            self.reviews = TrialReviews(self.version.trainable, with_login(self.tracking_uri), self.logger)
            self._driver_node, self._driver_cpus = driver_node_cpus()  # the worker starts held

    def _update_review_gate(self) -> None:
        """Renders wait while trials on the driver's machine (those not yet placed count as on it) leave fewer
        than ``REVIEW_SPARE_CPUS`` of its CPUs free."""
        if self.reviews is not None:
            used = len(self._on_driver_node) * self.version.resources.cpu
            self.reviews.machine_busy(used > 0 and used > self._driver_cpus - REVIEW_SPARE_CPUS)

    def _close_orphans(self) -> dict[str, tuple[str, History, float | None]]:
        """Child runs of this search from an earlier driver (RUNNING ones become KILLED): run, metric by epoch
        (its last step is the last one logged), best."""
        store = MlflowStore(self.tracking_uri)
        metric = self.version.metric
        existing: dict[str, tuple[str, History, float | None]] = {}
        for row in store.trials(self.version.study, parent_run_id=self.parent_run_id, kind=self.trial_kind):
            if row.status == "RUNNING":
                store.end_run(row.run_id, "KILLED")
            points = store.client.get_metric_history(row.run_id, metric.name)
            best = min((m.value for m in points), key=metric.loss, default=None)
            existing[row.trial_id] = (row.run_id, per_step(points), best)
        return existing

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        assert self.logger is not None
        interrupted = bool(self._open)
        for key in sorted(self._open):  # interrupted (Ctrl-C): `orchestrator resume` reopens them
            self.logger.close(key, "KILLED", {schema.STATUS: "KILLED"})
        self._open.clear()
        try:
            if self.reviews is not None and not interrupted:
                self.reviews.finish(review_wait_s())  # bounded, with a progress line; Ctrl-C stops it
        finally:
            self.shutdown()

    def shutdown(self, timeout: float | None = None) -> int:
        """Flush (up to ``timeout``, default the bounded wait) and stop; returns how many updates were unsent."""
        if self.reviews is not None:  # before the logger stops: it sends the review tags
            self.reviews.stop()
            self.reviews = None
        if self.logger is None:
            return 0
        if timeout is None:
            timeout = tracking_wait_s() if self.flush_timeout_s is None else self.flush_timeout_s
        try:
            spilled = self.logger.stop(timeout=timeout, spill_to=self.spill)
            kept = f"kept in {self.spill.where}, sent by `orchestrator resume`"
        except OSError as e:  # the storage itself cannot be written
            spilled, kept = self.logger.stop(timeout=0), f"lost: cannot write {self.spill.where} ({short_error(e)})"
        self.logger = None
        if spilled:
            print(f"tracking: {spilled} update(s) could not be sent within {timeout:.0f}s; {kept}", file=sys.stderr)
        return spilled

    # ------------------------------------------------------------------ trials

    def _values(self, trial: Any) -> dict[str, Any]:
        return redact_config({k: trial.config[k] for k in self.version.params.params if k in trial.config})

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        assert self.logger is not None
        key = trial.trial_id
        if key in self._open:
            return  # a retry after a failure (FailureConfig): same trial, same run
        values = self._values(trial)
        v = self.version
        continued = trial.config.get(RESUME_KEY)  # the trial's identity stays the one its run has
        identity = continued["trial_id"] if continued else key
        tags = {
            schema.PARENT: self.parent_run_id,
            schema.KIND: self.trial_kind,
            schema.STUDY: v.study,
            schema.VERSION: str(v.version),
            schema.HASH: v.content_hash,
            schema.TRIAL_ID: identity,
            schema.CONFIG: json.dumps(values, sort_keys=True),
            schema.TRAINABLE: v.trainable,
            schema.SEED: str(trial.config.get("seed", "")),
        }
        if continued:
            tags[schema.RESUMED_AS] = key  # where its newer checkpoints are, for a later resume
        elif self.searcher is not None and key in self.searcher.suggested_by:
            tags[schema.SUGGESTED_BY] = self.searcher.suggested_by[key]
        params = flatten(values)
        reuse, history, best = self._existing.pop(identity, ("", {}, None))
        done_upto = max(history, default=-1)
        if reuse:  # a continued trial: its epochs so far count for its best value, history and where it stopped
            self._last_step[key] = done_upto
            self._history[key] = dict(history)
            if best is not None:
                self._best[key] = best
        self._open.add(key)
        self._on_driver_node.add(key)
        self._update_review_gate()
        self.logger.open(
            key,
            self.experiment_id,
            f"{v.study}-v{v.version}-{key}",
            tags,
            params,
            reuse_run_id=reuse,
            skip_steps_upto=done_upto,
        )

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        assert self.logger is not None
        metrics = user_metrics(result)
        step = int(metrics.pop("epoch", result.get("training_iteration", 0)))
        name = self.version.metric.name
        if name in metrics:
            best = self._best.get(trial.trial_id)
            if best is None or self.version.metric.better(metrics[name], best):
                self._best[trial.trial_id] = metrics[name]
            self._history.setdefault(trial.trial_id, {})[step] = float(metrics[name])
        tags = {}
        if "node_id" in result and self._node.get(trial.trial_id) != str(result["node_id"]):
            # the first result, or the first after a retry on another node (a lost node): the tags follow the trial
            self._node[trial.trial_id] = str(result["node_id"])
            if self._node[trial.trial_id] == self._driver_node:
                self._on_driver_node.add(trial.trial_id)
            else:
                self._on_driver_node.discard(trial.trial_id)
            self._update_review_gate()
            tags = {schema.NODE_ID: str(result["node_id"]), schema.GPU_IDS: str(result.get("gpu_ids", ""))}
        self._last_step[trial.trial_id] = step
        self.logger.log(trial.trial_id, metrics, step, tags=tags)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._close(trial, "FINISHED")

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        assert self.logger is not None
        self.logger.log(trial.trial_id, tags={schema.RETRIED_AFTER: failure_reason(trial)})

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._close(trial, "FAILED", failure_reason(trial))

    def _close(self, trial: Any, status: str, reason: str = "") -> None:
        assert self.logger is not None
        key = trial.trial_id
        name = self.version.metric.name
        tags = {schema.STATUS: status}
        if reason:
            tags[schema.FAILURE] = reason
        last = self._last_step.get(key, 0)
        if status == "FINISHED" and last < self.version.schedule.max_epochs:
            tags[schema.STOPPED_EARLY] = f"at epoch {last} of {self.version.schedule.max_epochs}"
        history = history_tag(name, self._history.pop(key, {}))
        if history is not None:
            tags[schema.METRIC_HISTORY] = history
        if key in self._best:
            self.logger.log(key, {schema.best_metric(name): self._best[key]}, step=max(last, 0))
        self.logger.close(key, status, tags)
        self._open.discard(key)
        self._on_driver_node.discard(key)
        self._update_review_gate()
        if self.reviews is not None:
            self._review(trial)

    def _review(self, trial: Any) -> None:
        """Hand an ended trial with a checkpoint to the review worker, with the config its trainable received."""
        assert self.reviews is not None
        self.reviews.collect()  # tags the failures of earlier reviews
        if trial.checkpoint is not None:
            own = {k: v for k, v in trial.config.items() if k != RESUME_KEY}
            self.reviews.add(trial.trial_id, with_fixed_values(self.version, own), trial.checkpoint)


def failure_reason(trial: Any) -> str:
    """The last line of the trial's error (for example ``TrialFailed: loss became NaN at epoch 3``), URIs redacted."""
    try:
        text = str(trial.get_error() or "")
    except Exception:
        text = ""
    if not text and getattr(trial, "error_file", None):
        try:
            text = Path(trial.error_file).read_text()
        except OSError:
            text = ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith((" ", "\t"))]
    reason = redact_text(lines[-1]) if lines else "failed without an error message"
    return reason[:4000]
