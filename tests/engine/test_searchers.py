"""Every searcher of the registry keeps the searcher contract (``tests/engine/searcher_contract.py``)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from orchestrator.engine.checks import check_version, version_problems
from orchestrator.engine.searchers import SEARCHERS, check_available, searcher_class, searcher_names
from orchestrator.engine.searchers.base import budgets_of, lie
from orchestrator.engine.searchers.hyperopt import HyperoptSearcher, good_count, model_selection
from orchestrator.errors import OrchestratorError
from orchestrator.spaces import SpaceError, StudyVersion, parse_version
from tests.engine.searcher_contract import HEAD, QUADRATIC_PARAMS, SearcherContract, quadratic, values_of

WORST_OR_OFF = ("worst", "off")  # liars of a searcher that supports only some (none of the table now)


class TestEverySearcher(SearcherContract):
    """The contract, for every searcher of the table (the ``algorithm`` fixture is parametrized over it)."""


def test_tpe_counts_running_trials_towards_the_start_up_phase(tmp_path: Path) -> None:
    """As in hyperopt's own ``tpe.suggest``: the first ``startup_trials`` suggestions are random whatever the
    concurrency (once a trial is scored). Four at a time with ``startup_trials: 4``, TPE suggests as soon as
    the first one ends, also after a save/restore or a pickle round trip."""
    contract = SearcherContract()
    version = contract.version("tpe", QUADRATIC_PARAMS, startup=4)
    s = contract.searcher(version, seed=5)
    configs = {f"p{i}": s.suggest(f"p{i}") for i in range(6)}
    assert set(s.suggested_by.values()) == {"startup"}  # nothing scored yet: nothing to model
    s.on_trial_complete("p0", {"loss": quadratic(values_of(version, configs["p0"]))})
    s.save(str(tmp_path / "state.json"))
    restored = contract.searcher(version, seed=5)
    restored.restore(str(tmp_path / "state.json"))
    for copy in (s, restored, pickle.loads(pickle.dumps(s))):
        copy.suggest("next")  # one scored and five running: past the start-up phase
        assert copy.suggested_by["next"] == "tpe"


@pytest.mark.parametrize("liar", ["mean", "best"])
def test_liars_a_searcher_cannot_do_are_refused_in_one_line(liar: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SEARCHERS, "optuna_tpe", dataclasses.replace(SEARCHERS["optuna_tpe"], liars=WORST_OR_OFF))
    version = SearcherContract().version("optuna_tpe", QUADRATIC_PARAMS, liar=liar)
    with pytest.raises(OrchestratorError, match=rf"^search\.liar: optuna_tpe takes worst or off, not '{liar}'"):
        SearcherContract().searcher(version)


# --------------------------------------------------------------------------- budgets, liars, the model's selection


@pytest.mark.parametrize(
    ("schedule", "budgets"),
    [
        ("{scheduler: fifo, max_epochs: 9}", (9,)),
        ("{scheduler: asha, max_epochs: 10, grace_period: 1, reduction_factor: 3}", (1, 3, 9, 10)),
        ("{scheduler: asha, max_epochs: 9, grace_period: 1, reduction_factor: 3}", (1, 3, 9)),
        ("{scheduler: asha, max_epochs: 40, grace_period: 4, reduction_factor: 3}", (4, 12, 36, 40)),
        ("{scheduler: asha, max_epochs: 6, grace_period: 1, reduction_factor: 1.5}", (1, 2, 3, 4, 6)),
    ],
)
def test_budgets_are_ashas_rungs_then_the_full_budget(schedule: str, budgets: tuple[int, ...]) -> None:
    version = parse_version(f"{HEAD}schedule: {schedule}\n{QUADRATIC_PARAMS}")
    assert budgets_of(version.schedule) == budgets


def test_ray_asha_judges_trials_at_the_same_rungs() -> None:
    """Ray Tune's ASHAScheduler (as ``plan.build_tuner`` makes it) has its rungs where the searcher records."""
    from ray.tune.schedulers import ASHAScheduler

    schedule = "schedule: {max_epochs: 40, grace_period: 4, reduction_factor: 3}\n"
    s = parse_version(f"{HEAD}{schedule}{QUADRATIC_PARAMS}").schedule
    asha = ASHAScheduler(
        time_attr="training_iteration",
        max_t=s.max_epochs,
        grace_period=s.grace_period,
        reduction_factor=s.reduction_factor,
    )
    milestones = sorted(math.ceil(milestone) for milestone, _ in asha._brackets[0]._rungs)
    assert tuple(m for m in milestones if m < s.max_epochs) == budgets_of(s)[:-1]


@pytest.mark.parametrize(
    "schedule",
    [
        "{max_epochs: 27, brackets: 4}",
        "{max_epochs: 10, brackets: 4}",
        "{max_epochs: 40, grace_period: 4, brackets: 4}",
    ],
)
def test_every_ray_asha_bracket_judges_at_rungs_the_searcher_records(schedule: str) -> None:
    """With brackets (asynchronous Hyperband), each bracket's milestones are budgets of the searcher, and the
    last of ``max_brackets()`` never stops a trial before the full budget."""
    from ray.tune.schedulers import ASHAScheduler

    from orchestrator.engine.plan import asha_scheduler

    s = parse_version(f"{HEAD}schedule: {schedule}\n{QUADRATIC_PARAMS}").schedule
    asha = asha_scheduler(s)
    assert isinstance(asha, ASHAScheduler) and len(asha._brackets) == s.brackets == s.max_brackets()
    early = [[m for m, _ in b._rungs if math.ceil(m) < s.max_epochs] for b in asha._brackets]
    assert all({math.ceil(m) for m in milestones} <= set(budgets_of(s)) for milestones in early)
    assert early[0] and not early[-1]


def test_a_carried_trial_that_ran_longer_counts_with_its_loss_at_this_full_budget() -> None:
    """A trial of a version with 27 epochs, carried into one with 9: its loss at epoch 9, not its final one."""
    version = parse_version(f"{HEAD}schedule: {{max_epochs: 9}}\n{QUADRATIC_PARAMS}")
    prior = [({"x": 0.1, "y": 0}, 0.1, {1: 0.9, 3: 0.6, 9: 0.4, 27: 0.1})]
    assert searcher_class("tpe")(version, prior)._prior[0][1] == {1: 0.9, 3: 0.6, 9: 0.4}


def test_trials_stopped_below_the_model_budget_rank_after_those_that_reached_it() -> None:
    """TPE's good set is made of trials observed at the budget it fits on; trials ASHA stopped earlier join its
    bad set with the worst loss seen there (however good their early loss was)."""
    version = parse_version(f"{HEAD}schedule: {{max_epochs: 9}}\n{QUADRATIC_PARAMS}")
    reached = [({"x": x, "y": 0}, x**2, {1: 0.5, 3: 0.4, 9: x**2}) for x in np.linspace(-1, 1, 8)]
    stopped = [({"x": x, "y": 1}, -5.0, {1: -5.0}) for x in np.linspace(-1, 1, 30)]
    s = searcher_class("tpe")(version, reached + stopped)
    assert s.model_budget() == 9
    trials, gamma = s._model_trials()
    losses = sorted(t["result"]["loss"] for t in trials.trials)
    assert len(losses) == 38 and losses.count(1.0) == 30 + 2  # the worst at epoch 9 is 1.0, at x = -1 and 1
    n_good = math.ceil(gamma * math.sqrt(len(losses)))
    assert n_good <= 8 and all(loss < 1.0 for loss in losses[:n_good])


@pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="needs the optuna extra")
def test_optuna_counts_trials_stopped_below_the_model_budget_as_pruned() -> None:
    """Optuna's TPE ranks pruned trials after completed ones, by the step they reached: carried and own trials
    that ASHA stopped below the budget the study fits on become pruned trials with their losses per rung."""
    from optuna.trial import TrialState

    version = parse_version(f"{HEAD}schedule: {{max_epochs: 9}}\nsearch: {{algorithm: optuna_tpe}}\n{QUADRATIC_PARAMS}")
    reached = [({"x": x, "y": 0}, x**2, {1: 0.5, 3: 0.4, 9: x**2}) for x in np.linspace(-1, 1, 8)]
    stopped = [({"x": x, "y": 1}, -5.0, {1: -5.0}) for x in np.linspace(-1, 1, 6)]
    s = searcher_class("optuna_tpe")(version, reached + stopped)
    assert s.model_budget() == 9
    pruned = [t for t in s._study.get_trials(deepcopy=False) if t.state == TrialState.PRUNED]
    assert len(pruned) == 6 and all(t.intermediate_values == {1: -5.0} for t in pruned)
    s.suggest("a")
    s.on_trial_result("a", {"loss": 0.3, "training_iteration": 1})
    s.on_trial_result("a", {"loss": 0.2, "training_iteration": 3})
    s.on_trial_complete("a", {"loss": 0.2, "training_iteration": 3})  # stopped at rung 3
    last = s._study.get_trials(deepcopy=False)[-1]
    assert last.state == TrialState.PRUNED and last.intermediate_values == {1: 0.3, 3: 0.2}


def test_lie_values() -> None:
    losses = [0.5, 0.1, 0.9]
    assert [lie(losses, liar) for liar in ("worst", "mean", "best", "off")] == [0.9, 0.5, 0.1, None]
    assert lie([], "worst") is None


def test_model_selection_keeps_the_good_set_the_newest_and_thins_the_rest() -> None:
    rng = np.random.default_rng(0)
    losses = rng.uniform(size=10_000)
    assert model_selection(losses[:500], 2000, 6).tolist() == list(range(500))
    n_good = good_count(len(losses), 0.25)
    kept = model_selection(losses, 2000, n_good)
    assert len(kept) == 2000 and np.all(np.diff(kept) > 0)
    assert set(np.argsort(losses)[:n_good]) <= set(kept.tolist())  # TPE's good set is the one of all trials
    assert set(range(10_000 - 500, 10_000)) <= set(kept.tolist())  # the newest quarter
    older = kept[(kept < 9_500)]
    assert np.median(older) == pytest.approx(4_750, rel=0.05)  # the rest thinned evenly


def test_capped_model_has_the_same_good_set() -> None:
    """With 5,000 carried trials TPE fits on a selection of them and calls the same 25 trials good (10 %, at most
    25: ``HyperoptSearcher.good_fraction``)."""
    version = parse_version(f"{HEAD}search: {{startup_trials: 10}}\n{QUADRATIC_PARAMS}")
    rng = np.random.default_rng(1)
    xs, ys, losses = rng.uniform(-1, 1, 5000), rng.integers(-2, 3, 5000), rng.uniform(size=5000)
    prior = [({"x": float(x), "y": int(y)}, float(loss)) for x, y, loss in zip(xs, ys, losses, strict=True)]
    searcher = HyperoptSearcher(version, prior)
    trials, gamma = searcher._model_trials()
    fitted = trials.losses()
    assert len(fitted) == HyperoptSearcher.model_trials
    n_good = good_count(5000, 0.25, HyperoptSearcher.good_fraction)
    assert min(math.ceil(gamma * math.sqrt(len(fitted))), 25) == n_good == 25
    assert sorted(fitted)[:n_good] == sorted(losses.tolist())[:n_good]


def test_every_registered_searcher_is_tested() -> None:
    tested = {"tpe", "random", "optuna_tpe"}
    assert set(searcher_names()) == tested


def test_unknown_algorithm_names_the_known_ones() -> None:
    with pytest.raises(OrchestratorError, match=r"'optuna'; did you mean 'optuna_tpe'\? \(known: tpe, random"):
        searcher_class("optuna")


def hide_optuna(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``optuna`` look not installed to the registry."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real_find_spec(name, *a)
    )


def test_missing_library_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    hide_optuna(monkeypatch)
    expected = "search.algorithm 'optuna_tpe' needs optuna, which is not installed: pip install 'orchestrator[optuna]'"
    for attempt in (check_available, searcher_class):
        with pytest.raises(OrchestratorError) as info:
            attempt("optuna_tpe")
        assert str(info.value) == expected
    check_available("tpe")  # hyperopt is a core dependency


def test_registry_classes_are_the_named_ones() -> None:
    for name, entry in SEARCHERS.items():
        cls = searcher_class(name)
        assert (cls.__module__, cls.__name__) == (entry.module, entry.class_name)


# --------------------------------------------------------------------------- the checks that read the registry


SOURCE = "search_spaces/s/v1.yaml"


def _version_with(algorithm: str) -> StudyVersion:
    return parse_version(f"{HEAD}search: {{algorithm: {algorithm}}}\n{QUADRATIC_PARAMS}", SOURCE)


def test_validation_reports_an_unknown_algorithm_with_the_file() -> None:
    version = _version_with("optuna")
    (problem,) = version_problems(version)
    assert (problem.path, problem.file) == ("search.algorithm", SOURCE)
    assert "did you mean 'optuna_tpe'?" in problem.message
    with pytest.raises(OrchestratorError, match=r"search\.algorithm: unknown search algorithm 'optuna'"):
        check_version(version)
    assert version_problems(_version_with("optuna_tpe")) == []


@pytest.mark.parametrize("liar", ["mean", "best"])
def test_validation_reports_a_liar_the_searcher_cannot_do(liar: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SEARCHERS, "optuna_tpe", dataclasses.replace(SEARCHERS["optuna_tpe"], liars=WORST_OR_OFF))
    version = parse_version(f"{HEAD}search: {{algorithm: optuna_tpe, liar: {liar}}}\n{QUADRATIC_PARAMS}", SOURCE)
    (problem,) = version_problems(version)
    assert (problem.path, problem.file) == ("search.liar", SOURCE)
    assert problem.message == f"optuna_tpe takes worst or off, not '{liar}'"
    with pytest.raises(OrchestratorError, match=rf"search\.liar: optuna_tpe takes worst or off, not '{liar}'"):
        check_version(version)
    tpe = parse_version(f"{HEAD}search: {{algorithm: tpe, liar: {liar}}}\n{QUADRATIC_PARAMS}", SOURCE)
    assert version_problems(tpe) == []


def test_check_version_stops_on_a_missing_searcher_library(monkeypatch: pytest.MonkeyPatch) -> None:
    version = _version_with("optuna_tpe")
    assert check_version(version).name == "analytic"
    hide_optuna(monkeypatch)
    assert version_problems(version) == []  # a file is valid whatever is installed where it is validated
    with pytest.raises(OrchestratorError, match=r"pip install 'orchestrator\[optuna\]'$"):
        check_version(version)


def test_registry_and_checks_import_no_searcher_library() -> None:
    probe = (
        "import sys, orchestrator.engine.checks, orchestrator.engine.searchers as s; s.searcher_names(); "
        "s.check_available('optuna_tpe'); print([m for m in ('ray', 'hyperopt', 'optuna') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_search_liar_and_min_rung_trials_parse_and_enter_the_hash_only_when_set() -> None:
    plain = _version_with("tpe")
    assert (plain.search.liar, plain.search.min_rung_trials) == ("worst", None)
    assert not {"liar", "min_rung_trials"} & set(plain.canonical()["search"])  # older files keep their hash
    text = f"{HEAD}search: {{liar: off, min_rung_trials: 6}}\n{QUADRATIC_PARAMS}"  # YAML reads a bare off as false
    tuned = parse_version(text)
    assert (tuned.search.liar, tuned.search.min_rung_trials) == ("off", 6)
    assert tuned.content_hash != plain.content_hash
    with pytest.raises(SpaceError, match=r"search\.liar: expected one of worst, mean, best, off"):
        parse_version(f"{HEAD}search: {{liar: wrst}}\n{QUADRATIC_PARAMS}", SOURCE)
