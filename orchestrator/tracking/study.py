"""What a study's runs say about it as a whole: the metric (or objectives and constraints) it is searched on and
its best trial."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.spaces import Metric
from orchestrator.spaces.version import Constraint

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


@dataclass(frozen=True)
class StudyGoals:
    """What a study is searched for: its objectives (one: its metric) and constraints."""

    goals: tuple[Metric, ...]
    constraints: tuple[Constraint, ...] = ()

    @property
    def metric(self) -> Metric:
        return self.goals[0]

    @property
    def multi_objective(self) -> bool:
        return len(self.goals) > 1


def study_goals(store: MlflowStore, study: str) -> StudyGoals | None:
    """The objectives and constraints of the study's newest search (its parent run's params: ``objectives`` and
    ``constraints`` where it has several or any, else its metric); None without searches."""
    searches = sorted(store.searches(study), key=lambda run: run.info.start_time or 0)
    for run in reversed(searches):
        goals = goals_of(run.data.params)
        if goals is not None:
            return goals
    return None


def goals_of(params: dict[str, str]) -> StudyGoals | None:
    """A search run's goals from its ``params``; None when they do not name them (or not readably)."""
    try:
        objectives = tuple(Metric(m["name"], m["mode"]) for m in json.loads(params.get(schema.PARAM_OBJECTIVES, "[]")))
        constraints = tuple(
            Constraint(name, max=spec.get("max"), min=spec.get("min"))
            for name, spec in json.loads(params.get(schema.PARAM_CONSTRAINTS, "{}")).items()
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if any(m.mode not in ("min", "max") for m in objectives):
        return None
    if objectives:
        return StudyGoals(objectives, constraints)
    if params.get(schema.PARAM_METRIC) and params.get(schema.PARAM_MODE) in ("min", "max"):
        return StudyGoals((Metric(params[schema.PARAM_METRIC], params[schema.PARAM_MODE]),), constraints)
    return None
