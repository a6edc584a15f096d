"""A study's trials read back for refine: final values plus the metric's per-epoch history."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from orchestrator.spaces import StudyVersion
from orchestrator.spaces.refine import ScoredTrial

if TYPE_CHECKING:
    from orchestrator.tracking.mlflow_store import MlflowStore, TrialRow

HISTORY_READERS = 8  # concurrent history reads against a tracking server (one for a local store)


def scored_trials(store: MlflowStore, version: StudyVersion) -> list[ScoredTrial]:
    """Every trial of ``version``'s study (all versions), with per-epoch histories under ASHA.

    Without early stopping every finished trial ran ``max_epochs`` and its final value is the
    one to rank on, so histories are read only when the version schedules with ASHA.
    """
    metric = version.metric.name
    rows = sorted(store.trials(version.study), key=lambda r: r.run_id)
    finished = [r for r in rows if r.status == "FINISHED"] if version.schedule.scheduler == "asha" else []
    histories = dict(zip((r.run_id for r in finished), metric_histories(store, finished, metric), strict=True))
    return [
        ScoredTrial(r.config, r.metrics.get(metric), histories.get(r.run_id, {}), r.status, r.version, r.run_id)
        for r in rows
    ]


def metric_histories(store: MlflowStore, rows: Sequence[TrialRow], metric: str) -> list[dict[int, float]]:
    """``{step: value}`` of ``metric`` for each row, in order (steps are epochs); the last value of a step wins."""

    def history(run_id: str) -> dict[int, float]:
        points = sorted(store.client.get_metric_history(run_id, metric), key=lambda m: (m.step, m.timestamp))
        return {int(m.step): float(m.value) for m in points}

    workers = HISTORY_READERS if store.uri.startswith(("http://", "https://")) else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(history, [r.run_id for r in rows]))
