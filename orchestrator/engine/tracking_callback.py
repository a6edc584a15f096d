"""A Ray Tune callback that mirrors each trial into a nested MLflow run, off the critical path.

Everything goes through ``AsyncTrialLogger``: the driver only enqueues. The callback is
pickled with the tuner (Ray Tune saves it; resume never loads it), so it holds plain data until ``setup``, and no
credentials: the tracking URI without its login (``keep_login``; the driver's process connects
with it) and trial values with secret-looking entries redacted.
On a resumed run, ``setup`` reads the runs an earlier driver left (``EarlierRuns``: RUNNING ones end KILLED);
a trial that ``resume`` continues (a new Ray Tune trial naming the old one under ``RESUME_KEY``) reopens the
old trial's run and skips steps already logged, so nothing is logged twice.
What a kind of run adds per trial (the review artifacts of a search) is a callback of its own beside this one
(``plan.build_tuner``'s ``trial_callbacks``), which reaches the runs through :attr:`MlflowTrialCallback.logger`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from ray.tune import Callback

from orchestrator.errors import first_line
from orchestrator.redaction import redact_config
from orchestrator.settings import tracking_wait_s
from orchestrator.spaces import StudyVersion, flatten
from orchestrator.spaces.secrets import mask_secrets
from orchestrator.tracking import schema
from orchestrator.tracking.async_logger import AsyncTrialLogger, SpillFile
from orchestrator.tracking.mlflow_store import History, MlflowStore, history_tag, keep_login, per_step

from .results import failure_reason, trial_identity, user_metrics
from .searchers.base import SpaceSearcher
from .trainable import RESUME_KEY


@dataclass
class EarlierRuns:
    """The nested runs of a run that an earlier driver started (resume): trial id -> (run id, metric by epoch, best).

    Reading them closes the ones left RUNNING as KILLED; a continued trial takes its run back (``take``)."""

    runs: dict[str, tuple[str, History, float | None]] = field(default_factory=dict)

    @classmethod
    def read(cls, store: MlflowStore, version: StudyVersion, parent_run_id: str, kind: str) -> EarlierRuns:
        metric = version.metric
        runs: dict[str, tuple[str, History, float | None]] = {}
        for row in store.trials(version.study, parent_run_id=parent_run_id, kind=kind):
            if row.status == "RUNNING":
                store.end_run(row.run_id, "KILLED")
            points = store.client.get_metric_history(row.run_id, metric.name)
            best = min((m.value for m in points), key=metric.loss, default=None)
            runs[row.trial_id] = (row.run_id, per_step(points), best)
        return cls(runs)

    def take(self, trial_id: str) -> tuple[str, History, float | None]:
        """The run, history and best value of ``trial_id`` if an earlier driver started it (once), else empty."""
        return self.runs.pop(trial_id, ("", {}, None))


class MlflowTrialCallback(Callback):
    """``spill`` keeps what could not be sent when the run ends (``orchestrator resume`` sends it)."""

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
        # per open trial, every other objective and constrained metric by epoch (several objectives: issue 26)
        self._more: dict[str, dict[str, History]] = {}
        self._node: dict[str, str] = {}  # per trial, the node its placement tags name (a retry may move it)
        self._earlier = EarlierRuns()
        self._open: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["logger"] = None
        state["version"] = mask_secrets(self.version)  # Ray Tune's state holds no secret value
        state["searcher"] = None  # the tuner pickles its own searcher
        return state

    # ------------------------------------------------------------------ lifecycle

    def setup(self, **info: Any) -> None:
        """Read the runs of an earlier driver and start the logger; once (a callback of the run's kind that needs the
        logger calls it before its own set-up)."""
        if self.logger is not None:
            return
        store = MlflowStore(self.tracking_uri)
        self._earlier = EarlierRuns.read(store, self.version, self.parent_run_id, self.trial_kind)
        self.logger = AsyncTrialLogger(
            lambda: MlflowStore(self.tracking_uri), on_error=lambda m: print(m, file=sys.stderr, flush=True)
        )
        self.logger.start()

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        assert self.logger is not None
        for key in sorted(self._open):  # interrupted (Ctrl-C): `orchestrator resume` reopens them
            self.logger.close(key, "KILLED", {schema.STATUS: "KILLED"})
        self._open.clear()
        self.shutdown()

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
            spilled, kept = self.logger.stop(timeout=0), f"lost: cannot write {self.spill.where} ({first_line(e)})"
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
        continued = trial.config.get(RESUME_KEY)
        identity = trial_identity(key, trial.config)  # the one its run has, for a trial that resume continues
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
        reuse, history, best = self._earlier.take(identity)
        done_upto = max(history, default=-1)
        if reuse:  # a continued trial: its epochs so far count for its best value, history and where it stopped
            self._last_step[key] = done_upto
            self._history[key] = dict(history)
            if best is not None:
                self._best[key] = best
        self._open.add(key)
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
        for other in self.version.reported[1:]:
            if other in metrics:
                self._more.setdefault(trial.trial_id, {}).setdefault(other, {})[step] = float(metrics[other])
        tags = {}
        if "node_id" in result and self._node.get(trial.trial_id) != str(result["node_id"]):
            # the first result, or the first after a retry on another node (a lost node): the tags follow the trial
            self._node[trial.trial_id] = str(result["node_id"])
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
        history = history_tag(name, self._history.pop(key, {}), self._more.pop(key, None))
        if history is not None:
            tags[schema.METRIC_HISTORY] = history
        if key in self._best:
            self.logger.log(key, {schema.best_metric(name): self._best[key]}, step=max(last, 0))
        self.logger.close(key, status, tags)
        self._open.discard(key)
