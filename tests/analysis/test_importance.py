"""Parameter importance: one computation for the review artifacts and for refine, with or without optuna."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bench.spacetools import sample_config
from orchestrator.analysis.evidence import gather_evidence
from orchestrator.analysis.importance import EVALUATOR, ImportanceSkipped, parameter_importance
from orchestrator.engine.leaderboard import TrialOutcome
from orchestrator.spaces import parse_version
from orchestrator.spaces.refine import RefineOptions, rank
from orchestrator.spaces.trials import RecordedTrial
from tests.spacefiles import space_doc

V1 = parse_version(
    space_doc(
        "imp",
        metric="{name: accuracy, mode: max}",
        fixed=None,
        params="""\
  lr: {loguniform: [1.0e-4, 1.0]}
  width: {int: [8, 64]}
  noise: {uniform: [0.0, 1.0]}
  act: {choice: [relu, tanh]}
""",
    )
)


def accuracy(c: dict) -> float:
    """lr matters most, act a little, width less, noise not at all."""
    return 1.0 - (np.log10(c["lr"]) + 2) ** 2 / 4 - (0.2 if c["act"] == "tanh" else 0.0) - 0.0005 * c["width"]


def outcomes(n: int = 40) -> list[TrialOutcome]:
    rng = np.random.default_rng(0)
    configs = [sample_config(V1.params, rng) for _ in range(n)]
    return [TrialOutcome(f"t{i}", accuracy(c), 1, "FINISHED", c, run_id=f"run{i:03d}") for i, c in enumerate(configs)]


def test_review_and_refine_quote_the_same_importance() -> None:
    trials = outcomes()
    review = parameter_importance(V1, trials)
    assert review.evaluator == EVALUATOR and review.trials == 40 and review.metric == "accuracy"
    assert list(review.values) == sorted(review.values, key=lambda k: -review.values[k])  # most important first
    assert sum(review.values.values()) == pytest.approx(1.0)
    assert next(iter(review.values)) == "lr" and review.values["noise"] < 0.05
    scored = [RecordedTrial(t.config, t.value, run_id=t.run_id) for t in trials]
    evidence = gather_evidence(V1, rank(V1, scored), RefineOptions())
    assert {name: evidence.params[name].importance for name in review.values} == pytest.approx(review.values)


def test_importance_needs_no_optuna(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # importing optuna now raises ImportError
    assert parameter_importance(V1, outcomes()).values["lr"] > 0.5


def test_importance_is_skipped_with_a_reason() -> None:
    trials = outcomes()
    with pytest.raises(ImportanceSkipped, match="at least 4 finished trials, this search has 3"):
        parameter_importance(V1, trials[:3])
    failed = [TrialOutcome(t.trial_id, t.value, 1, "FAILED", t.config) for t in trials]
    with pytest.raises(ImportanceSkipped, match="this search has 0"):
        parameter_importance(V1, failed)
    flat = [TrialOutcome(t.trial_id, 0.5, 1, "FINISHED", t.config, t.run_id) for t in trials]
    with pytest.raises(ImportanceSkipped, match="every trial has the same accuracy"):
        parameter_importance(V1, flat)
    one = parse_version(
        space_doc(
            "one",
            metric="{name: accuracy, mode: max}",
            params="  lr: {loguniform: [1.0e-4, 1.0]}\n  act: relu\n",
            fixed=None,
        )
    )
    with pytest.raises(ImportanceSkipped, match="at least 2 searched parameters, found 1"):
        parameter_importance(
            one,
            [TrialOutcome(t.trial_id, t.value, 1, "FINISHED", {"lr": t.config["lr"], "act": "relu"}) for t in trials],
        )
