"""Which searched parameters mattered in a search: the importance the review artifacts log and refine reads.

One computation for both (``evidence.ScopeModel.importance``): a Gaussian process of the finished trials
(``surrogate``), and per parameter the variance of its partial dependence across the parameter's range
(across the options for a choice) as a share of the sum over the parameters. That is the main-effect
share of a functional ANOVA, fANOVA's individual importance, with the process in place of fANOVA's random
forest; it needs only numpy and scikit-learn (core dependencies), so a core install gets the same numbers
as one with the optuna extra, and ``space refine``'s notes quote the importance the review's plot shows.

Why not Optuna's fANOVA any more (what the review used before): refine needs a model that gives the chance
of a region holding a better value (``evidence`` explains why a forest cannot), and importance from a
second model would disagree with the evidence beside it; Optuna is an optional extra, so refine on a core
install would have had none. Why not PED-ANOVA: it compares the top quantile of trials (10 % by default)
with all of them, so a search needs tens of trials before its top set holds more than one; a review of a
small search does not have them. Parameters are the space's top-level searched ones (a conditional
sub-space's parameters are active in some trials only; ``space refine`` models those from the trials that
took their option).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.spaces import StudyVersion, ValueNotInSpace
from orchestrator.spaces.carry import fit
from orchestrator.spaces.refine import ModelRow

MIN_TRIALS = 4  # fewer trials than this tell nothing about importance
MIN_PARAMS = 2  # one parameter is trivially "all the importance"
EVALUATOR = "gp_main_effect"


class ImportanceSkipped(Exception):
    """No importance for this search; the message says why in one line."""


class Outcome(Protocol):
    """A finished or failed trial as a search's leaderboard holds it (``review.leaderboard.TrialOutcome``)."""

    @property
    def config(self) -> dict[str, Any]: ...

    @property
    def value(self) -> float: ...

    @property
    def status(self) -> str: ...


@dataclass(frozen=True)
class Importance:
    """Importance of each parameter (name -> share, summing to 1), most important first."""

    evaluator: str
    metric: str
    trials: int
    values: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        return {"evaluator": self.evaluator, "metric": self.metric, "trials": self.trials, "importance": self.values}


def parameter_importance(version: StudyVersion, trials: Sequence[Outcome], seed: int = 0) -> Importance:
    """The importance of ``version``'s top-level searched parameters over the FINISHED ``trials``.

    Raises ``ImportanceSkipped`` with fewer than ``MIN_TRIALS`` finished trials that fit the version, fewer
    than ``MIN_PARAMS`` searched parameters, or values that do not vary.
    """
    from orchestrator.spaces.refine import RefineOptions

    from .evidence import scope_importance

    rows = []
    for trial in trials:
        if trial.status != "FINISHED":
            continue
        try:
            config = fit(version.params, trial.config)
        except ValueNotInSpace:  # not a configuration of this space; nothing to attribute it to
            continue
        rows.append(ModelRow(config, version.metric.loss(trial.value), trial.value, getattr(trial, "run_id", "")))
    if len(rows) < MIN_TRIALS:
        raise ImportanceSkipped(
            f"parameter importance needs at least {MIN_TRIALS} finished trials, this search has {len(rows)}"
        )
    searched = [name for name, p in version.params.params.items() if not p.is_fixed]
    if len(searched) < MIN_PARAMS:
        raise ImportanceSkipped(
            f"parameter importance needs at least {MIN_PARAMS} searched parameters, found {len(searched)}"
        )
    if len({row.loss for row in rows}) < 2:
        raise ImportanceSkipped(f"every trial has the same {version.metric.name}: no importance to attribute")
    rows.sort(key=lambda r: (r.loss, r.run_id, json.dumps(r.config, sort_keys=True, default=str)))
    shares = scope_importance(version.params, rows, RefineOptions(seed=seed))
    ranked = dict(sorted(shares.items(), key=lambda item: -item[1]))
    return Importance(EVALUATOR, version.metric.name, len(rows), ranked)
