"""A study's trials read back for refine: final values (of every objective and constrained metric) plus the
metric's per-epoch history."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from orchestrator.spaces import StudyVersion
from orchestrator.spaces.refine import usable_trials
from orchestrator.spaces.trials import RecordedTrial

if TYPE_CHECKING:
    from orchestrator.tracking.mlflow_store import MlflowStore

HISTORY_READERS = 8  # concurrent history reads against a tracking server (one for a local store)


def scored_trials(store: MlflowStore, version: StudyVersion) -> list[RecordedTrial]:
    """Every trial of ``version``'s study (all versions), with per-epoch histories under ASHA.

    Without early stopping every finished trial ran ``max_epochs`` and its final value is the
    one to rank on, so histories are used only when the version schedules with ASHA, and only
    for the trials refine can use (finished, a finite value, fitting ``version``): the one a run
    carries in its ``orchestrator.metric_history`` tag, else one read of its metric history
    (runs logged before the tag).
    """
    metric = version.metric.name
    rows = store.trials(version.study)
    others = [name for name in version.reported if name != metric]  # several objectives, constraints: final values
    trials = [
        RecordedTrial(
            r.config,
            r.metrics.get(metric),
            {},
            r.status,
            r.version,
            r.run_id,
            values={name: r.metrics.get(name) for name in others},
        )
        for r in rows
    ]
    if version.schedule.scheduler != "asha":
        return trials
    tagged = {r.run_id: dict(r.history[metric]) for r in rows if metric in r.history}
    needed = [t.run_id for _, t in usable_trials(version, trials)]
    untagged = [run_id for run_id in needed if run_id not in tagged]
    histories = {run_id: tagged[run_id] for run_id in needed if run_id in tagged}
    histories.update(zip(untagged, metric_histories(store, untagged, metric), strict=True))
    return [dataclasses.replace(t, history=histories[t.run_id]) if t.run_id in histories else t for t in trials]


def metric_histories(store: MlflowStore, run_ids: Sequence[str], metric: str) -> list[dict[int, float]]:
    """``{step: value}`` of ``metric`` for each run, in order (``MlflowStore.metric_history``: steps are epochs, the
    last value of a step wins), read concurrently from a tracking server."""
    workers = HISTORY_READERS if store.uri.startswith(("http://", "https://")) else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda run_id: store.metric_history(run_id, metric), run_ids))
