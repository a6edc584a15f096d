"""What a study's runs say about it as a whole: the metric it is searched on and its best trial."""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.spaces import Metric

from . import schema
from .mlflow_store import MlflowStore, TrialRow


def study_metric(store: MlflowStore, study: str) -> Metric | None:
    """The metric and mode of the study's newest search (its parent run's params); None without searches."""
    searches = sorted(store.searches(study), key=lambda run: run.info.start_time or 0)
    for run in reversed(searches):
        params = run.data.params
        if params.get(schema.PARAM_METRIC) and params.get(schema.PARAM_MODE) in ("min", "max"):
            return Metric(params[schema.PARAM_METRIC], params[schema.PARAM_MODE])
    return None


def best_trial(rows: Iterable[TrialRow], metric: Metric) -> tuple[TrialRow, float] | None:
    """The FINISHED trial with the best score of ``metric`` (``TrialRow.score``; the earliest to end among equals),
    and that score."""
    scored = []
    for row in rows:
        value = row.score(metric.name)
        if row.status == "FINISHED" and value is not None:
            scored.append((metric.loss(value), row.end_time or 0, row, value))
    if not scored:
        return None
    _, _, row, value = min(scored, key=lambda s: s[:2])
    return row, value
