"""A study's trials read back for refine: final values plus the metric's per-epoch history."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from orchestrator.spaces import StudyVersion
from orchestrator.spaces.refine import ScoredTrial, usable_trials

if TYPE_CHECKING:
    from orchestrator.tracking.mlflow_store import MlflowStore

HISTORY_READERS = 8  # concurrent history reads against a tracking server (one for a local store)


def scored_trials(store: MlflowStore, version: StudyVersion) -> list[ScoredTrial]:
    """Every trial of ``version``'s study (all versions), with per-epoch histories under ASHA.

    Without early stopping every finished trial ran ``max_epochs`` and its final value is the
    one to rank on, so histories are read only when the version schedules with ASHA, and only
    for the trials refine can use (finished, a finite value, fitting ``version``): one read each.
    """
    metric = version.metric.name
    trials = [
        ScoredTrial(r.config, r.metrics.get(metric), {}, r.status, r.version, r.run_id)
        for r in store.trials(version.study)
    ]
    if version.schedule.scheduler != "asha":
        return trials
    needed = [t.run_id for _, t in usable_trials(version, trials)]
    histories = dict(zip(needed, metric_histories(store, needed, metric), strict=True))
    return [dataclasses.replace(t, history=histories[t.run_id]) if t.run_id in histories else t for t in trials]


def metric_histories(store: MlflowStore, run_ids: Sequence[str], metric: str) -> list[dict[int, float]]:
    """``{step: value}`` of ``metric`` for each run, in order (steps are epochs); the last value of a step wins."""

    def history(run_id: str) -> dict[int, float]:
        points = sorted(store.client.get_metric_history(run_id, metric), key=lambda m: (m.step, m.timestamp))
        return {int(m.step): float(m.value) for m in points}

    workers = HISTORY_READERS if store.uri.startswith(("http://", "https://")) else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(history, run_ids))
