"""``optuna_tpe``'s liar: running trials count as completed with the worst, mean or best loss, or not at all (off).

Each test compares a searcher whose trials are still running with the same searcher (same seed, same number of
suggestions) whose trials failed, which Optuna leaves out of its model: the two differ only in what the sampler
sees of the running trials.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.engine.searchers import searcher_class
from orchestrator.engine.searchers.base import SpaceSearcher
from orchestrator.spaces import StudyVersion, parse_version
from orchestrator.spaces.version import LIARS

from .searcher_contract import BRANIN_PARAMS, HEAD, QUADRATIC_PARAMS, branin, min_distances, quadratic

pytest.importorskip("optuna")

LIES = [liar for liar in LIARS if liar != "off"]


def optuna_version(liar: str, params: str = QUADRATIC_PARAMS, startup: int = 3) -> StudyVersion:
    return parse_version(f"{HEAD}search: {{algorithm: optuna_tpe, liar: {liar}, startup_trials: {startup}}}\n{params}")


def searcher(version: StudyVersion, seed: int = 1) -> SpaceSearcher:
    return searcher_class("optuna_tpe")(version, [], seed=seed)


def values_of(version: StudyVersion, config: dict[str, Any]) -> dict[str, Any]:
    return {name: config[name] for name in version.params.params}


def scored_then_pending(version: StudyVersion, scored: int = 6, pending: int = 3, fail_pending: bool = False) -> Any:
    """A searcher with ``scored`` completed trials and ``pending`` running ones (failed instead: ``fail_pending``)."""
    s = searcher(version)
    for i in range(scored):
        config = s.suggest(f"s{i}")
        s.on_trial_complete(f"s{i}", {"loss": quadratic(config)})
    for i in range(pending):
        s.suggest(f"p{i}")
        if fail_pending:
            s.on_trial_complete(f"p{i}", error=True)
    return s


@pytest.mark.parametrize("liar", LIES)
def test_pending_trials_change_the_next_suggestion_with_a_liar(liar: str) -> None:
    version = optuna_version(liar)
    running, failed = scored_then_pending(version), scored_then_pending(version, fail_pending=True)
    assert values_of(version, running.suggest("next")) != values_of(version, failed.suggest("next"))


def test_pending_trials_leave_the_next_suggestion_alone_with_the_liar_off() -> None:
    version = optuna_version("off")
    running, failed = scored_then_pending(version), scored_then_pending(version, fail_pending=True)
    assert values_of(version, running.suggest("next")) == values_of(version, failed.suggest("next"))


@pytest.mark.parametrize("liar", LIES)
def test_the_lie_is_the_worst_mean_or_best_completed_loss(liar: str) -> None:
    s = scored_then_pending(optuna_version(liar), scored=5, pending=2)
    losses = [loss for _, budgets in s._completed for loss in budgets.values()]
    expected = {"worst": max(losses), "mean": float(np.mean(losses)), "best": min(losses)}[liar]
    assert s._lies() == pytest.approx({number: expected for number in s._trials.values()})
    assert len(s._lies()) == 2


def test_sequential_suggestions_do_not_depend_on_the_liar() -> None:
    """Nothing runs at a sequential suggestion: every liar suggests what Optuna's own TPE does for the seed."""
    sequences = []
    for liar in LIARS:
        version = optuna_version(liar)
        s = searcher(version, seed=7)
        sequence = []
        for i in range(12):
            config = s.suggest(f"t{i}")
            s.on_trial_complete(f"t{i}", {"loss": quadratic(config)})
            sequence.append(values_of(version, config))
        sequences.append(sequence)
    assert all(sequence == sequences[0] for sequence in sequences)


@pytest.mark.parametrize(("liar", "first_model_based"), [("worst", "optuna_tpe"), ("off", "startup")])
def test_running_trials_count_towards_the_start_up_phase_with_a_liar(liar: str, first_model_based: str) -> None:
    """Start-up of 4 at concurrency 4: once one trial has a loss, the three running ones complete the start-up."""
    version = optuna_version(liar, startup=4)
    s = searcher(version)
    configs = [s.suggest(f"t{i}") for i in range(4)]
    s.on_trial_complete("t0", {"loss": quadratic(configs[0])})
    s.suggest("t4")
    assert s.suggested_by["t4"] == first_model_based
    failed = scored_then_pending(version, scored=1, pending=3, fail_pending=True)  # start-up: one scored trial
    same_as_startup = values_of(version, failed.suggest("next")) == values_of(version, s._live["t4"])
    assert same_as_startup == (liar == "off")


def test_best_liar_gathers_concurrent_suggestions_the_worst_spreads_them() -> None:
    rng = np.random.default_rng(0)
    configs = ({"x1": float(rng.uniform(-5, 10)), "x2": float(rng.uniform(0, 15))} for _ in range(40))
    prior = [(c, branin(c)) for c in configs]

    def spread(liar: str) -> float:
        version = optuna_version(liar, BRANIN_PARAMS)
        per_seed = []
        for seed in range(4):
            s = searcher_class("optuna_tpe")(version, prior, seed=seed)
            points = np.array([[c["x1"], c["x2"]] for c in (s.suggest(f"p{i}") for i in range(8))])
            per_seed.append(np.median(min_distances(points)))
        return float(np.median(per_seed))

    assert spread("best") < spread("worst")


@pytest.mark.parametrize("liar", LIES)
def test_pending_lies_survive_save_restore_and_pickling(liar: str, tmp_path: Path) -> None:
    version = optuna_version(liar)
    s = scored_then_pending(version)
    s.save(str(tmp_path / "state.json"))
    restored = searcher(version)
    restored.restore(str(tmp_path / "state.json"))
    for clone in (restored, pickle.loads(pickle.dumps(s))):
        assert sorted(clone._lies().values()) == sorted(s._lies().values())
        assert len(clone._lies()) == 3
