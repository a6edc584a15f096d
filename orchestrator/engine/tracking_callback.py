"""A Ray Tune callback that mirrors each trial into a nested MLflow run, off the critical path.

Everything goes through ``AsyncTrialLogger``: the driver only enqueues. The callback is
pickled with the tuner (for ``Tuner.restore``), so it holds plain data until ``setup``.
On a resumed search, ``setup`` closes child runs the dead driver left RUNNING as KILLED
and remembers, per trial, the run and the last step logged; a trial that Ray resumes
reopens its own run and skips steps already logged, so nothing is logged twice.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ray.tune import Callback

from orchestrator.spaces import StudyVersion, flatten
from orchestrator.tracking import schema
from orchestrator.tracking.async_logger import AsyncTrialLogger, SpillFile, tracking_wait_s
from orchestrator.tracking.mlflow_store import MlflowStore

from .results import user_metrics
from .searchers.base import SpaceSearcher


class MlflowTrialCallback(Callback):
    """``spill`` keeps what could not be sent when the search ends (``orchestrator resume`` sends it)."""

    flush_timeout_s: float | None = None  # None: tracking_wait_s() (TRACKING_WAIT_S or its environment variable)

    def __init__(
        self,
        version: StudyVersion,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        spill: SpillFile,
        searcher: SpaceSearcher | None = None,
    ):
        self.version = version
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.spill = spill
        self.searcher = searcher
        self.logger: AsyncTrialLogger | None = None
        self._best: dict[str, float] = {}
        self._last_step: dict[str, int] = {}
        self._existing: dict[str, tuple[str, int]] = {}
        self._killed: set[str] = set()
        self._open: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["logger"] = None
        state["searcher"] = None  # the tuner pickles its own searcher
        return state

    # ------------------------------------------------------------------ lifecycle

    def setup(self, **info: Any) -> None:
        self._existing = self._close_orphans()
        self.logger = AsyncTrialLogger(
            lambda: MlflowStore(self.tracking_uri), on_error=lambda m: print(m, file=sys.stderr, flush=True)
        )
        self.logger.start()

    def _close_orphans(self) -> dict[str, tuple[str, int]]:
        """Child runs of this search from an earlier driver: RUNNING ones become KILLED."""
        store = MlflowStore(self.tracking_uri)
        existing: dict[str, tuple[str, int]] = {}
        for row in store.trials(self.version.study, parent_run_id=self.parent_run_id):
            if row.status == "RUNNING":
                store.end_run(row.run_id, "KILLED")
                self._killed.add(row.trial_id)
            existing[row.trial_id] = (row.run_id, store.metric_steps(row.run_id, self.version.metric.name))
        return existing

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        assert self.logger is not None
        for key in sorted(self._open):  # interrupted (Ctrl-C): `orchestrator resume` reopens them
            self.logger.close(key, "KILLED", {schema.STATUS: "KILLED"})
        self._open.clear()
        self._tag_lost()
        self.shutdown()

    def _tag_lost(self) -> None:
        """Runs killed with the old driver whose trial Ray did not resume: it started after the last saved state."""
        assert self.logger is not None
        for trial_id in self._killed & self._existing.keys():
            run_id, _ = self._existing[trial_id]
            self.logger.open(trial_id, self.experiment_id, "", {}, {}, reuse_run_id=run_id)
            self.logger.close(trial_id, "KILLED", {schema.LOST: "the driver stopped before Ray Tune saved this "
                                                   "trial; the resumed search ran another in its place"})  # fmt: skip

    def shutdown(self, timeout: float | None = None) -> int:
        """Flush (up to ``timeout``, default the bounded wait) and stop; returns how many updates were unsent."""
        if self.logger is None:
            return 0
        if timeout is None:
            timeout = tracking_wait_s() if self.flush_timeout_s is None else self.flush_timeout_s
        try:
            spilled = self.logger.stop(timeout=timeout, spill_to=self.spill)
            kept = f"kept in {self.spill.where}, sent by `orchestrator resume`"
        except OSError as e:  # the storage itself cannot be written
            spilled, kept = self.logger.stop(timeout=0), f"lost: cannot write {self.spill.where} ({e})"
        self.logger = None
        if spilled:
            print(f"tracking: {spilled} update(s) could not be sent within {timeout:.0f}s; {kept}", file=sys.stderr)
        return spilled

    # ------------------------------------------------------------------ trials

    def _values(self, trial: Any) -> dict[str, Any]:
        return {k: trial.config[k] for k in self.version.params.params if k in trial.config}

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        assert self.logger is not None
        key = trial.trial_id
        if key in self._open:
            return  # a retry after a failure (FailureConfig): same trial, same run
        values = self._values(trial)
        v = self.version
        tags = {
            schema.PARENT: self.parent_run_id, schema.KIND: schema.TRIAL_RUN, schema.STUDY: v.study,
            schema.VERSION: str(v.version), schema.HASH: v.content_hash, schema.TRIAL_ID: key,
            schema.CONFIG: json.dumps(values, sort_keys=True), schema.TRAINABLE: v.trainable,
            schema.SEED: str(trial.config.get("seed", "")),
        }  # fmt: skip
        if self.searcher is not None and key in self.searcher.suggested_by:
            tags[schema.SUGGESTED_BY] = self.searcher.suggested_by[key]
        params = flatten(values)
        reuse, done_upto = self._existing.pop(key, ("", -1))
        self._open.add(key)
        self.logger.open(
            key, self.experiment_id, f"{v.study}-v{v.version}-{key}", tags, params,
            reuse_run_id=reuse, skip_steps_upto=done_upto,
        )  # fmt: skip

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        assert self.logger is not None
        metrics = user_metrics(result)
        step = int(metrics.pop("epoch", result.get("training_iteration", 0)))
        name = self.version.metric.name
        if name in metrics:
            best = self._best.get(trial.trial_id)
            if best is None or self.version.metric.better(metrics[name], best):
                self._best[trial.trial_id] = metrics[name]
        tags = {}
        if trial.trial_id not in self._last_step and "node_id" in result:
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
        if key in self._best:
            self.logger.log(key, {schema.best_metric(name): self._best[key]}, step=max(last, 0))
        self.logger.close(key, status, tags)
        self._open.discard(key)


def failure_reason(trial: Any) -> str:
    """The last line of the trial's error (for example ``TrialFailed: loss became NaN at epoch 3``)."""
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
    reason = lines[-1] if lines else "failed without an error message"
    return reason[:4000]
