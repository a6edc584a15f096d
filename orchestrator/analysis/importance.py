"""Which searched parameters mattered in a search: Optuna's fANOVA over its trials (``orchestrator[optuna]``).

Why fANOVA (``optuna.importance.FanovaImportanceEvaluator``) and not PED-ANOVA: PED-ANOVA compares the
distribution of the top quantile of trials (10 % by default) with that of all of them, so a search needs
tens of trials before its top set holds more than one trial; a review of a small search does not have
them. fANOVA fits a random forest (scikit-learn, a core dependency) on every trial and splits the variance
of the fitted function among the parameters: normalised importances from a handful of trials, for
numeric and categorical parameters alike. Parameters are Optuna's view of the space
(``engine/backends/optuna.py``: a choice is its option index, labels are structural paths such as
``optimizer[1].momentum``); with conditional sub-spaces the importance covers the parameters active in
every trial (their intersection), as Optuna's own evaluators do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.review.leaderboard import TrialOutcome  # until the next commit makes it a protocol
from orchestrator.spaces import StudyVersion, ValueNotInSpace

MIN_TRIALS = 4  # fewer trials than this tell nothing about importance
MIN_PARAMS = 2  # one parameter is trivially "all the importance"
EVALUATOR = "fanova"


class ImportanceSkipped(Exception):
    """No importance for this search; the message says why in one line."""


@dataclass(frozen=True)
class Importance:
    """Importance of each parameter (structural label -> share, summing to 1), most important first."""

    evaluator: str
    metric: str
    trials: int
    values: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        return {"evaluator": self.evaluator, "metric": self.metric, "trials": self.trials, "importance": self.values}


def parameter_importance(version: StudyVersion, trials: Sequence[TrialOutcome], seed: int = 0) -> Importance:
    """fANOVA importance of ``version``'s searched parameters over the FINISHED ``trials``.

    Raises ``ImportanceSkipped`` when optuna is not installed, with fewer than ``MIN_TRIALS`` finished
    trials, fewer than ``MIN_PARAMS`` parameters common to all of them, or values that do not vary.
    """
    try:
        import optuna

        from orchestrator.engine.backends.optuna import encode
    except ImportError:
        from orchestrator.engine.searchers import SEARCHERS

        hint = SEARCHERS["optuna_tpe"].install_hint()  # the one place the optuna extra is named
        raise ImportanceSkipped(f"parameter importance needs optuna: {hint}") from None

    encoded = []
    for trial in trials:
        if trial.status != "FINISHED":
            continue
        try:
            encoded.append((trial.value, *encode(version.params, trial.config)))
        except ValueNotInSpace:  # not a configuration of this space; nothing to attribute it to
            continue
    if len(encoded) < MIN_TRIALS:
        raise ImportanceSkipped(
            f"parameter importance needs at least {MIN_TRIALS} finished trials, this search has {len(encoded)}"
        )
    common = set.intersection(*(set(params) for _, params, _ in encoded))
    if len(common) < MIN_PARAMS:
        raise ImportanceSkipped(
            f"parameter importance needs at least {MIN_PARAMS} searched parameters common "
            f"to every trial, found {len(common)}"
        )
    if len({value for value, _, _ in encoded}) < 2:
        raise ImportanceSkipped(f"every trial has the same {version.metric.name}: no importance to attribute")

    direction = "maximize" if version.metric.mode == "max" else "minimize"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        study = optuna.create_study(direction=direction)
        study.add_trials(
            [
                optuna.trial.create_trial(params=params, distributions=dists, value=value)
                for value, params, dists in encoded
            ]
        )
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        values = optuna.importance.get_param_importances(study, evaluator=evaluator, params=sorted(common))
    finally:
        optuna.logging.set_verbosity(verbosity)
    return Importance(EVALUATOR, version.metric.name, len(encoded), {k: float(v) for k, v in values.items()})
