"""HyperOpt TPE as a Ray Tune searcher that starts from scored earlier trials.

Ray's own ``HyperOptSearch`` cannot take scored prior trials (its ``add_evaluated_point``
is not implemented and ``points_to_evaluate`` re-runs points). This searcher builds
hyperopt's trial documents directly (``orchestrator.spaces.hyperopt.scored_trials``), so
10,000 carried trials load in well under a second and TPE is past its start-up phase
from the first suggestion. Its state is saved as JSON (values, never pickles) so a
resumed search continues with the same history.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
from hyperopt import JOB_STATE_DONE, JOB_STATE_ERROR, STATUS_OK, Domain, rand, tpe
from ray.tune.search import Searcher

from orchestrator.spaces import StudyVersion
from orchestrator.spaces.hyperopt import decode, encode, scored_trials, to_hyperopt

RESERVED = ("max_epochs", "seed")


class MetricNotReported(RuntimeError):
    pass


class SpaceSearcher(Searcher, ABC):
    """What every searcher over a ``StudyVersion`` shares: the prior, the bookkeeping of suggested
    trials, the config a trial receives, the metric check, JSON save/restore (values, never
    pickles) and pickling that rebuilds the derived state.

    A subclass lists the attributes it can rebuild in ``_derived`` and rebuilds them in ``_build()``.
    """

    _derived: tuple[str, ...] = ()

    def __init__(self, version: StudyVersion, prior: list[tuple[dict[str, Any], float]], seed: int = 0):
        super().__init__(metric=version.metric.name, mode=version.metric.mode)
        self.version = version
        self.seed = seed
        self._prior = [(dict(c), float(loss)) for c, loss in prior]
        self._completed: list[tuple[dict[str, Any], float]] = []
        self._live: dict[str, dict[str, Any]] = {}
        self.suggested_by: dict[str, str] = {}
        self._count = 0
        self._build()

    @abstractmethod
    def _build(self) -> None:
        """Rebuild the attributes named in ``_derived`` from the saved state."""

    def _issue(self, trial_id: str, values: dict[str, Any], suggested_by: str, seed: int) -> dict[str, Any]:
        """Record a suggestion and return what the trainable receives: fixed + values + reserved keys."""
        self._live[trial_id] = values
        self.suggested_by[trial_id] = suggested_by
        self._count += 1
        config = self.version.trial_config(values)
        config.update(max_epochs=self.version.schedule.max_epochs, seed=seed % 100_000)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.metric not in result:
            reported = sorted(k for k, v in result.items() if isinstance(v, int | float) and k in _user_keys(result))
            raise MetricNotReported(
                f"the trainable {self.version.trainable!r} did not report the metric {self.metric!r} "
                f"named in the space file; it reported: {', '.join(reported) or 'nothing'}"
            )

    def save(self, checkpoint_path: str) -> None:
        state = {
            "completed": self._completed,
            "live": self._live,
            "suggested_by": self.suggested_by,
            "count": self._count,
        }
        with open(checkpoint_path, "w") as f:
            json.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            state = json.load(f)
        self._completed = [(c, float(loss)) for c, loss in state["completed"]]
        self._live = state["live"]
        self.suggested_by = state["suggested_by"]
        self._count = state["count"]
        self._build()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in self._derived:
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build()


class WarmStartSearcher(SpaceSearcher):
    """TPE (or random) over a ``StudyVersion``'s params, warm-started from ``(config, loss)`` pairs."""

    _derived = ("_domain", "_trials", "_tids")

    # ------------------------------------------------------------------ hyperopt state

    def _build(self) -> None:
        space = self.version.params
        self._domain = Domain(lambda _: 0.0, to_hyperopt(space))
        self._trials = scored_trials(space, self._prior + self._completed)
        self._tids: dict[str, int] = {}
        for trial_id, values in self._live.items():  # pending trials of a resumed search
            self._tids[trial_id] = self._insert_pending(values)

    def _insert_pending(self, values: Mapping[str, Any]) -> int:
        (tid,) = self._trials.new_trial_ids(1)
        vals = encode(self.version.params, values)
        idxs = {label: [tid] if v else [] for label, v in vals.items()}
        misc = {
            "tid": tid,
            "cmd": ("domain_attachment", "FMinIter_Domain"),
            "workdir": None,
            "idxs": idxs,
            "vals": vals,
        }
        (doc,) = self._trials.new_trial_docs([tid], [None], [{"status": "new"}], [misc])
        self._trials.insert_trial_docs([doc])
        self._trials.refresh()
        return tid

    @property
    def n_scored(self) -> int:
        return sum(1 for t in self._trials.trials if t["result"].get("status") == STATUS_OK)

    # ------------------------------------------------------------------ Ray Tune API

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # metric and mode come from the space file

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        search = self.version.search
        (tid,) = self._trials.new_trial_ids(1)
        seed = int(np.random.default_rng([self.seed, self._count]).integers(2**31 - 1))
        startup = self.n_scored < search.startup_trials
        if search.algorithm == "random" or startup:
            docs = rand.suggest([tid], self._domain, self._trials, seed)
        else:
            docs = tpe.suggest([tid], self._domain, self._trials, seed, n_startup_jobs=search.startup_trials)
        values = decode(self.version.params, docs[0]["misc"]["vals"])
        docs[0]["misc"]["vals"] = encode(self.version.params, values)  # TPE learns from what actually runs
        self._trials.insert_trial_docs(docs)
        self._trials.refresh()
        self._tids[trial_id] = tid
        return self._issue(
            trial_id, values, "random" if search.algorithm == "random" else "startup" if startup else "tpe", seed
        )

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        tid = self._tids.pop(trial_id, None)
        values = self._live.pop(trial_id, None)
        if tid is None:
            return
        doc = next(t for t in self._trials._dynamic_trials if t["tid"] == tid)
        value = None if result is None else result.get(self.metric)
        if error or value is None or not np.isfinite(value):
            doc["state"] = JOB_STATE_ERROR
            doc["result"] = {"status": "fail"}
        else:
            loss = self.version.metric.loss(float(value))
            doc["state"] = JOB_STATE_DONE
            doc["result"] = {"loss": loss, "status": STATUS_OK}
            if values is not None:
                self._completed.append((values, loss))
        self._trials.refresh()


_RAY_KEYS = {
    "training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "trial_id", "date", "pid",
    "hostname", "node_ip", "config", "done", "iterations_since_restore", "time_since_restore",
    "checkpoint_dir_name", "should_checkpoint", "experiment_tag",
}  # fmt: skip


def _user_keys(result: Mapping[str, Any]) -> set[str]:
    return {k for k in result if k not in _RAY_KEYS}


def user_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """What the trainable reported (numbers only), without Ray's bookkeeping."""
    return {
        k: float(v)
        for k, v in result.items()
        if k not in _RAY_KEYS and isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
    }
