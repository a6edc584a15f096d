"""What a study's runs say about it as a whole: the metric it is searched on and its best trial."""

from __future__ import annotations

import math
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


def ranking(metric: Metric, value: float, ended_ms: int | None) -> tuple[float, float]:
    """The order of trials by ``metric``, the one rule for "best": the better value first, and among equal values
    the trial that ended first (an unknown end last)."""
    return metric.loss(value), ended_ms if ended_ms is not None else math.inf


def best_trial(rows: Iterable[TrialRow], metric: Metric) -> tuple[TrialRow, float] | None:
    """The FINISHED trial with the best score of ``metric`` (``TrialRow.score``, ``ranking``), and that score."""
    scored = [
        (row, value) for row in rows if row.status == "FINISHED" and (value := row.score(metric.name)) is not None
    ]
    if not scored:
        return None
    return min(scored, key=lambda rv: ranking(metric, rv[1], rv[0].end_time))
