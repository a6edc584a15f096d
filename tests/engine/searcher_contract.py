"""The contract every searcher of ``orchestrator.engine.searchers`` keeps, as a base test class.

In the manner of optuna's ``optuna/testing/pytest_samplers.py``, with one difference: the ``algorithm`` fixture
is parametrized over every name of the searcher table (``SEARCHERS``), so a searcher added to the table runs
every case of the contract without a test module of its own (``tests/engine/test_searchers.py`` collects the
class once). Whether a searcher learns from scored trials is the table's ``learns``. The searchers are driven
through the Ray Tune ``Searcher`` API directly (no cluster): ``suggest`` -> ``on_trial_complete``,
``save``/``restore``, pickling. A searcher's FIFO suggestions for a seed are recorded in
``data/fifo_suggestions.json``; a new searcher records its own there (``fifo_sequences``).
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.engine.pareto import hypervolume
from orchestrator.engine.results import MetricNotReported
from orchestrator.engine.searchers import SEARCHERS, searcher_class, searcher_names
from orchestrator.engine.searchers.base import Prior, SpaceSearcher
from orchestrator.spaces import StudyVersion, parse_version
from orchestrator.spaces.carry import Outcome
from tests.spacefiles import space_doc

HEAD = space_doc("s", params=None, fixed=None)  # the analytic head; each case appends its sections
QUADRATIC_PARAMS = "fixed: {function: quadratic}\nparams:\n  x: {uniform: [-1.0, 1.0]}\n  y: {int: [-2, 2]}\n"
NESTED_PARAMS = """\
params:
  x: {uniform: [-2.0, 3.0]}
  lr: {loguniform: [1.0e-5, 1.0e-1]}
  q: {quniform: [0.1, 0.5, 0.05]}
  qi: {quniform: [2, 10, 2]}
  scale: {qloguniform: [0.5, 8.0, 0.5]}
  width: {qloguniform: [16, 512, 16]}
  depth: {int: [2, 10], step: 2}
  filters: {int: [8, 256], log: true}
  act: {choice: [relu, tanh, 1, true, null]}
  optimizer:
    choice:
      - {name: adam, beta: {uniform: [0.8, 0.999]}}
      - name: sgd
        momentum: {uniform: [0.5, 0.99]}
        schedule:
          choice:
            - constant
            - {kind: step, gamma: {loguniform: [0.01, 0.5]}, every: {int: [1, 5]}}
            - {kind: cosine, warmup: {choice: [0, 1, 2]}}
  tag: fixed-value
"""
NESTED_BASE = {
    "x": 0.5,
    "lr": 1e-3,
    "q": 0.35,
    "qi": 4,
    "scale": 1.5,
    "width": 64,
    "depth": 4,
    "filters": 32,
    "act": None,
    "tag": "fixed-value",
}
NESTED_OPTIMIZERS = [
    ({"name": "adam", "beta": 0.9}, 1.0),
    ({"name": "sgd", "momentum": 0.9, "schedule": "constant"}, 0.5),
    ({"name": "sgd", "momentum": 0.7, "schedule": {"kind": "step", "gamma": 0.1, "every": 3}}, 0.4),
    ({"name": "sgd", "momentum": 0.6, "schedule": {"kind": "cosine", "warmup": 2}}, 0.3),
]
BRANIN_PARAMS = "params:\n  x1: {uniform: [-5.0, 10.0]}\n  x2: {uniform: [0.0, 15.0]}\n"
# 3 x 2 x 2 = 12 configurations; ``grid_loss`` puts its optimum at a = 1, b = x, c = 0
GRID_PARAMS = "params:\n  a: {choice: [1, 2, 3]}\n  b: {choice: [x, y]}\n  c: {int: [0, 1]}\n"
GRID = [{"a": a, "b": b, "c": c} for a in (1, 2, 3) for b in ("x", "y") for c in (0, 1)]
ASHA_9 = "schedule: {scheduler: asha, max_epochs: 9, grace_period: 1, reduction_factor: 3}\n"  # rungs 1 and 3
# Two objectives (a ZDT1 front over x, y: f1 = x, f2 = g (1 - sqrt(x / g)), g = 1 + 9 y; the front at y = 0), the
# second under the name f2; and a constraint on a third reported metric.
TWO_OBJECTIVES = "objectives: [{name: loss, mode: min}, {name: f2, mode: min}]\n"
HEAD_MO = HEAD.replace("metric: {name: loss, mode: min}\n", TWO_OBJECTIVES)
ZDT_PARAMS = "fixed: {function: quadratic}\nparams:\n  x: {uniform: [0.0, 1.0]}\n  y: {uniform: [0.0, 1.0]}\n"
ZDT_REFERENCE = (1.1, 11.0)  # beyond the worst of both objectives on [0, 1]^2
# Suggestions of each searcher on FIFO searches, recorded before the searchers became fidelity- and pending-aware
# (``fifo_sequences`` makes them).
FIFO_RECORDED = Path(__file__).parent / "data" / "fifo_suggestions.json"


def quadratic(c: Mapping[str, Any]) -> float:
    """Optimum at x = 0.3, y = 0 (of the int range -2..2)."""
    return (c["x"] - 0.3) ** 2 + (c["y"] + 0.2) ** 2


def quadratic_prior(n: int = 300) -> Prior:
    rng = np.random.default_rng(0)
    configs = [{"x": float(rng.uniform(-1, 1)), "y": int(rng.integers(-2, 3))} for _ in range(n)]
    return [(c, quadratic(c)) for c in configs]


def branin(c: Mapping[str, Any]) -> float:
    b, k, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (c["x2"] - b * c["x1"] ** 2 + k * c["x1"] - 6) ** 2 + 10 * (1 - t) * math.cos(c["x1"]) + 10


def values_of(version: StudyVersion, config: Mapping[str, Any]) -> dict[str, Any]:
    """The searched values of what a trial receives (without the fixed section and reserved keys)."""
    return {k: config[k] for k in version.params.params}


def fifo_sequences(algorithm: str) -> dict[str, list[dict[str, Any]]]:
    """Sequential FIFO searches of ``algorithm``: a warm-started one reporting every epoch, a conditional one."""
    head = f"{HEAD}schedule: {{scheduler: fifo, max_epochs: 5}}\n"
    search = f"search: {{algorithm: {algorithm}, startup_trials: 5}}\n"
    quadratic_version = parse_version(f"{head}{search}{QUADRATIC_PARAMS}")
    s = searcher_class(algorithm)(quadratic_version, quadratic_prior(40), seed=11)
    warm = []
    for i in range(12):
        values = values_of(quadratic_version, s.suggest(f"t{i}"))
        for epoch in range(1, 6):
            s.on_trial_result(f"t{i}", {"loss": quadratic(values) + 1.0 / epoch, "training_iteration": epoch})
        s.on_trial_complete(f"t{i}", {"loss": quadratic(values), "training_iteration": 5})
        warm.append(values)
    nested_version = parse_version(f"{head}search: {{algorithm: {algorithm}, startup_trials: 4}}\n{NESTED_PARAMS}")
    prior = [({**NESTED_BASE, "optimizer": opt}, loss) for opt, loss in NESTED_OPTIMIZERS]
    s = searcher_class(algorithm)(nested_version, prior, seed=5)
    nested = []
    for i in range(10):
        values = values_of(nested_version, s.suggest(f"n{i}"))
        s.on_trial_complete(f"n{i}", {"loss": (values["x"] - 1) ** 2 + (values["optimizer"]["name"] == "adam")})
        nested.append(values)
    return {"quadratic": warm, "nested": nested}


def zdt1(c: Mapping[str, Any]) -> dict[str, float]:
    """ZDT1 in two parameters as a trial reports it: ``loss`` (f1) and ``f2``; ``cost`` = x + y (constrained)."""
    g = 1.0 + 9.0 * c["y"]
    return {"loss": c["x"], "f2": g * (1.0 - math.sqrt(c["x"] / g)), "cost": c["x"] + c["y"]}


def carried(version: StudyVersion, values: Mapping[str, Any], reported: Mapping[str, float]) -> tuple:
    """A carried trial of a version of several objectives or constraints, as ``spaces.carry`` makes it."""
    outcome = Outcome({name: reported.get(name) for name in version.reported})
    return (dict(values), version.metric.loss(reported[version.metric.name]), {}, outcome)


def grid_loss(c: Mapping[str, Any]) -> float:
    return c["a"] + 2 * (c["b"] == "y") + 0.5 * c["c"]


def keys(values: Sequence[Mapping[str, Any]]) -> list[str]:
    return [json.dumps(v, sort_keys=True) for v in values]


def report_epochs(s: SpaceSearcher, trial_id: str, losses: Sequence[float]) -> dict[str, Any]:
    """Report ``losses`` for epochs 1, 2, ... and return the last result (what ``on_trial_complete`` receives)."""
    result: dict[str, Any] = {}
    for epoch, loss in enumerate(losses, start=1):
        result = {"loss": loss, "training_iteration": epoch}
        s.on_trial_result(trial_id, result)
    return result


def min_distances(points: np.ndarray) -> np.ndarray:
    """Each point's distance to its nearest other point."""
    d = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    d[np.eye(len(points), dtype=bool)] = np.inf
    return d.min(axis=1)


class SearcherContract:
    """Tests every searcher passes; a subclass names its algorithm with the ``algorithm`` fixture."""

    @pytest.fixture(params=searcher_names())
    def algorithm(self, request: pytest.FixtureRequest) -> str:
        """Every ``search.algorithm`` of the table."""
        return str(request.param)

    @pytest.fixture
    def learns(self, algorithm: str) -> bool:
        """Whether scored trials (carried or completed) steer the suggestions."""
        return SEARCHERS[algorithm].learns

    def version(
        self, algorithm: str, params: str, startup: int = 10, schedule: str = "", **search: Any
    ) -> StudyVersion:
        settings = "".join(f", {k}: {v}" for k, v in search.items())
        text = f"{HEAD}{schedule}search: {{algorithm: {algorithm}, startup_trials: {startup}{settings}}}\n{params}"
        return parse_version(text)

    def searcher(
        self, version: StudyVersion, prior: Sequence[tuple[dict[str, Any], float]] = (), seed: int = 0
    ) -> SpaceSearcher:
        return searcher_class(version.search.algorithm)(version, list(prior), seed=seed)

    def run(self, searcher: SpaceSearcher, n: int, objective: Any, start: int = 0) -> list[dict[str, Any]]:
        """``n`` suggestions, each completed with ``objective`` of its values; returns the values."""
        out = []
        for i in range(start, start + n):
            values = values_of(searcher.version, searcher.suggest(f"t{i}"))
            searcher.on_trial_complete(f"t{i}", {"loss": objective(values)})
            out.append(values)
        return out

    # ------------------------------------------------------------------ warm start

    def test_warm_start_from_carried_trials(self, algorithm: str, learns: bool) -> None:
        version = self.version(algorithm, QUADRATIC_PARAMS)
        warm, cold = self.searcher(version, quadratic_prior(), seed=1), self.searcher(version, seed=1)
        assert warm.n_scored == 300 and cold.n_scored == 0
        warm_x = np.array([warm.suggest(f"w{i}")["x"] for i in range(12)])
        cold_x = np.array([cold.suggest(f"c{i}")["x"] for i in range(12)])
        if learns:
            # Past the start-up phase at once, and near the carried optimum (x = 0.3); cold draws spread out.
            assert "startup" not in warm.suggested_by.values() and set(cold.suggested_by.values()) == {"startup"}
            assert np.median(np.abs(warm_x - 0.3)) < 0.3 < np.median(np.abs(cold_x - 0.3))
        else:
            assert warm_x.tolist() == cold_x.tolist()  # accepted, and no influence on the draws

    # ------------------------------------------------------------------ the space

    def test_nested_conditional_space(self, algorithm: str) -> None:
        version = self.version(algorithm, NESTED_PARAMS, startup=5)
        prior = [({**NESTED_BASE, "optimizer": opt}, loss) for opt, loss in NESTED_OPTIMIZERS]
        s = self.searcher(version, prior)
        assert s.n_scored == len(prior)

        def objective(v: Mapping[str, Any]) -> float:
            return (v["x"] - 1) ** 2 + (v["optimizer"]["name"] == "adam")

        suggestions = self.run(s, 30, objective)
        assert s.n_scored == len(prior) + 30
        # Both branches, over three searches: adam is worse by 1 everywhere, and a model may rightly stay with sgd
        # for the 30 suggestions of one seed.
        for seed in (1, 2):
            suggestions += self.run(self.searcher(version, prior, seed=seed), 30, objective)
        for values in suggestions:
            assert version.params.contains(values) is None, values
            assert all(type(values[k]) is int for k in ("depth", "qi", "width", "filters")), values
            assert type(values["scale"]) is float and type(values["q"]) is float and values["width"] % 16 == 0
        assert {v["optimizer"]["name"] for v in suggestions} == {"adam", "sgd"}

    def test_values_never_indices(self, algorithm: str) -> None:
        version = self.version(algorithm, NESTED_PARAMS, startup=5)
        suggestions = self.run(self.searcher(version, seed=2), 40, lambda v: v["x"] ** 2)
        acts = {repr(v["act"]) for v in suggestions}
        assert acts <= {"'relu'", "'tanh'", "1", "True", "None"} and len(acts) >= 3
        for v in suggestions:
            assert isinstance(v["optimizer"], dict) and v["optimizer"]["name"] in ("adam", "sgd")
            schedule = v["optimizer"].get("schedule")
            assert schedule is None or schedule == "constant" or schedule["kind"] in ("step", "cosine")
            assert v["tag"] == "fixed-value"

    # ------------------------------------------------------------------ state

    def test_pending_trials_survive_save_and_restore(self, algorithm: str, tmp_path: Path) -> None:
        version = self.version(algorithm, QUADRATIC_PARAMS)
        prior = [({"x": 0.1, "y": 0}, 0.5)]
        s = self.searcher(version, prior, seed=3)
        configs = [s.suggest(f"p{i}") for i in range(3)]
        assert configs[0]["function"] == "quadratic" and configs[0]["max_epochs"] == version.schedule.max_epochs
        assert all("seed" in c for c in configs)
        s.save(str(tmp_path / "state.json"))
        restored = self.searcher(version, prior, seed=3)
        restored.restore(str(tmp_path / "state.json"))
        assert restored.suggested_by == s.suggested_by
        for i, config in enumerate(configs):
            restored.on_trial_complete(f"p{i}", {"loss": quadratic(config)})
        assert restored.n_scored == 4
        after = values_of(version, restored.suggest("next"))
        assert version.params.contains(after) is None

    def test_pending_trials_survive_pickling(self, algorithm: str) -> None:
        version = self.version(algorithm, QUADRATIC_PARAMS)
        s = self.searcher(version, [({"x": 0.1, "y": 0}, 0.5)], seed=3)
        a, b = s.suggest("a"), s.suggest("b")
        s.on_trial_complete("a", {"loss": quadratic(a)})
        clone = pickle.loads(pickle.dumps(s))
        assert clone.n_scored == 2 and clone.suggested_by == s.suggested_by
        clone.on_trial_complete("b", {"loss": quadratic(b)})
        assert clone.n_scored == 3
        assert version.params.contains(values_of(version, clone.suggest("c"))) is None

    # ------------------------------------------------------------------ results

    def test_nan_and_error_results_are_not_scored(self, algorithm: str) -> None:
        version = self.version(algorithm, QUADRATIC_PARAMS, startup=2)
        s = self.searcher(version, quadratic_prior(5))
        for trial_id in ("nan", "error", "none", "inf", "ok"):
            s.suggest(trial_id)
        s.on_trial_complete("nan", {"loss": float("nan")})
        s.on_trial_complete("error", {"loss": 0.1}, error=True)
        s.on_trial_complete("none", None)
        s.on_trial_complete("inf", {"loss": float("inf")})
        assert s.n_scored == 5
        s.on_trial_complete("ok", {"loss": 0.2})
        assert s.n_scored == 6
        self.run(s, 3, quadratic, start=10)  # the failures do not disturb later suggestions
        assert s.n_scored == 9
        with pytest.raises(MetricNotReported, match=r"'loss'.*it reported: acc$"):
            s.on_trial_result("t10", {"acc": 0.5, "training_iteration": 1})

    # ------------------------------------------------------------------ seeds

    def test_same_seed_same_suggestions(self, algorithm: str) -> None:
        version = self.version(algorithm, NESTED_PARAMS, startup=2)

        def first(seed: int) -> list[dict[str, Any]]:
            return self.run(self.searcher(version, seed=seed), 5, lambda v: v["x"] ** 2)

        assert first(7) == first(7)
        assert first(7) != first(8)

    def test_finds_branin_optimum(self, algorithm: str, learns: bool) -> None:
        """A search-quality floor: TPE's median best on Branin after 50 trials is about 0.45 (optimum 0.398); here
        the median over three seeds after 40 (one seed alone may end near 1.8)."""
        if not learns:
            pytest.skip("random search has no quality floor to keep")
        version = self.version(algorithm, BRANIN_PARAMS)
        bests = [min(map(branin, self.run(self.searcher(version, seed=seed), 40, branin))) for seed in range(3)]
        assert sorted(bests)[1] < 1.0, bests

    # ------------------------------------------------------------------ FIFO: as before budgets and liars

    def test_fifo_suggestions_unchanged_for_a_seed(self, algorithm: str) -> None:
        recorded = json.loads(FIFO_RECORDED.read_text()).get(algorithm)
        assert recorded is not None, f"record {algorithm}'s suggestions in {FIFO_RECORDED} (fifo_sequences)"
        assert fifo_sequences(algorithm) == recorded

    # ------------------------------------------------------------------ budgets (ASHA rungs)

    def test_rungs_are_ashas_and_early_stopped_trials_count_at_their_rung(self, algorithm: str) -> None:
        version = self.version(algorithm, QUADRATIC_PARAMS, startup=2, schedule=ASHA_9, min_rung_trials=2)
        s = self.searcher(version, [({"x": 0.0, "y": 0}, 0.4)])
        assert s.budgets == (1, 3, 9) and s.rungs == (1, 3)
        for i in range(3):
            s.suggest(f"t{i}")
        s.on_trial_complete("t0", report_epochs(s, "t0", [0.9]))  # stopped at rung 1
        s.on_trial_complete("t1", report_epochs(s, "t1", [0.8, 0.7, 0.6, 0.5]))  # stopped at rung 3
        report_epochs(s, "t2", [0.7, 0.5, 0.3])  # running, past rung 3
        assert [s.observed_at(b) for b in s.budgets] == [3, 2, 1]  # the carried trial is final (no history)
        assert s.n_scored == 3 and s.model_budget() == 3  # highest budget with min_rung_trials observations
        s.on_trial_complete("t2", report_epochs(s, "t2", [0.7, 0.5, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2, 0.1]))
        assert [s.observed_at(b) for b in s.budgets] == [3, 2, 2] and s.model_budget() == 9
        assert s.version.params.contains(values_of(version, s.suggest("t3"))) is None

    def test_default_min_rung_trials_is_searched_parameters_plus_two(self, algorithm: str) -> None:
        assert self.searcher(self.version(algorithm, QUADRATIC_PARAMS, schedule=ASHA_9)).min_rung_trials == 4
        nested = self.searcher(self.version(algorithm, NESTED_PARAMS, schedule=ASHA_9))
        assert nested.min_rung_trials == 18  # 16 labels, nested ones included

    def test_carried_history_counts_at_rungs_it_reached(self, algorithm: str) -> None:
        version = self.version(algorithm, QUADRATIC_PARAMS, schedule=ASHA_9)
        prior = [
            ({"x": 0.1, "y": 0}, 0.5, {1: 0.9, 2: 0.7, 3: 0.6}),  # stopped at rung 3 in an earlier search
            ({"x": 0.2, "y": 1}, 0.3, {1: 0.8, 4: 0.5, 9: 0.3}),  # finished; epochs 2-3 not logged
            ({"x": 0.3, "y": 0}, 0.2),
        ]
        s = self.searcher(version, prior)
        assert [s.observed_at(b) for b in s.budgets] == [2, 2, 2] and s.n_scored == 3
        fifo = self.searcher(self.version(algorithm, QUADRATIC_PARAMS, schedule="schedule: {scheduler: fifo}\n"), prior)
        assert fifo.budgets == (10,) and fifo.observed_at(10) == 3  # FIFO: every carried trial is final

    def test_fits_on_the_full_budget_not_on_early_stopped_trials(self, algorithm: str, learns: bool) -> None:
        """Curves that cross: trials stopped at rung 1 look good there (near x = -0.6), finished ones end best
        near x = 0.6. With ASHA the model fits on the finished ones (the stopped ones, uniform in x, rank below
        them), so suggestions leave the early optimum for the side where the finished ones are good; FIFO (every
        trial final) follows the early values, as every searcher did before budgets."""
        if not learns:
            pytest.skip("random search learns from no budget")
        rng = np.random.default_rng(4)
        finished = [{"x": float(x), "y": 0} for x in rng.uniform(-1, 1, 40)]
        stopped = [{"x": float(x), "y": 0} for x in rng.uniform(-1, 1, 200)]
        prior = [(c, (c["x"] - 0.6) ** 2, {1: 1.0, 9: (c["x"] - 0.6) ** 2}) for c in finished]
        prior += [(c, (c["x"] + 0.6) ** 2 - 1.0, {1: (c["x"] + 0.6) ** 2 - 1.0}) for c in stopped]

        def median_x(schedule: str) -> float:
            s = self.searcher(self.version(algorithm, QUADRATIC_PARAMS, schedule=schedule), prior, seed=2)
            return float(np.median(self.run_x(s, 12)))

        assert median_x(ASHA_9) > 0.0 and median_x("schedule: {scheduler: fifo, max_epochs: 9}\n") < -0.2

    def run_x(self, s: SpaceSearcher, n: int) -> list[float]:
        """``x`` of ``n`` suggestions, each completed at the full budget with the quadratic's loss."""
        return [v["x"] for v in self.run(s, n, quadratic)]

    def test_rungs_survive_save_restore_and_pickling(self, algorithm: str, tmp_path: Path) -> None:
        version = self.version(algorithm, QUADRATIC_PARAMS, startup=2, schedule=ASHA_9, min_rung_trials=2)
        prior = [({"x": 0.1, "y": 0}, 0.5, {1: 0.9, 3: 0.7})]
        s = self.searcher(version, prior, seed=3)
        for i in range(3):
            s.suggest(f"p{i}")
        s.on_trial_complete("p0", report_epochs(s, "p0", [0.8, 0.7, 0.6]))
        report_epochs(s, "p1", [0.6, 0.5, 0.4, 0.3])  # running, past rung 3
        counts = [s.observed_at(b) for b in s.budgets]
        assert counts == [3, 3, 0] and s.model_budget() == 3
        s.save(str(tmp_path / "state.json"))
        restored = self.searcher(version, prior, seed=3)
        restored.restore(str(tmp_path / "state.json"))
        clone = pickle.loads(pickle.dumps(s))
        for copy in (restored, clone):
            assert [copy.observed_at(b) for b in copy.budgets] == counts and copy.model_budget() == 3
            copy.on_trial_complete("p1", report_epochs(copy, "p1", [0.6, 0.5, 0.4, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2]))
            copy.on_trial_complete("p2", report_epochs(copy, "p2", [0.9]))  # stopped at rung 1
            assert [copy.observed_at(b) for b in copy.budgets] == [4, 3, 1] and copy.n_scored == 4
            assert version.params.contains(values_of(version, copy.suggest("next"))) is None

    def test_state_saved_before_budgets_restores_as_final(self, algorithm: str, tmp_path: Path) -> None:
        version = self.version(algorithm, QUADRATIC_PARAMS, schedule=ASHA_9)
        state = {
            "completed": [[{"x": 0.2, "y": 0}, 0.3]],
            "live": {"a": {"x": 0.1, "y": 1}},
            "suggested_by": {"a": "startup"},
            "count": 2,
        }
        (tmp_path / "old.json").write_text(json.dumps(state))
        s = self.searcher(version)
        s.restore(str(tmp_path / "old.json"))
        assert s.n_scored == 1 and s.observed_at(9) == 1
        s.on_trial_complete("a", {"loss": 0.4})
        assert s.observed_at(9) == 2

    # ------------------------------------------------------------------ pending trials (constant liar)

    def test_liar_spreads_concurrent_suggestions(self, algorithm: str, learns: bool) -> None:
        """Eight suggestions while none has finished: with the liar they keep apart; without it they gather."""
        if not learns:
            pytest.skip("random search ignores pending trials")
        rng = np.random.default_rng(0)
        configs = ({"x1": float(rng.uniform(-5, 10)), "x2": float(rng.uniform(0, 15))} for _ in range(60))
        prior = [(c, branin(c)) for c in configs]

        def spread(liar: str) -> float:
            version = self.version(algorithm, BRANIN_PARAMS, liar=liar)
            per_seed = []
            for seed in range(4):
                s = self.searcher(version, prior, seed=seed)
                points = np.array([[c["x1"], c["x2"]] for c in (s.suggest(f"p{i}") for i in range(8))])
                per_seed.append(np.median(min_distances(points)))
            return float(np.median(per_seed))

        assert spread("worst") > 2 * spread("off")

    def test_sequential_start_up_phase_is_startup_trials_long(self, algorithm: str, learns: bool) -> None:
        if not learns:
            pytest.skip("random search has no start-up phase")
        s = self.searcher(self.version(algorithm, QUADRATIC_PARAMS, startup=4), seed=5)
        self.run(s, 6, quadratic)
        assert list(s.suggested_by.values()) == ["startup"] * 4 + [algorithm] * 2

    # ------------------------------------------------------------------ repeats

    def test_no_configuration_twice_until_every_one_is_known(self, algorithm: str) -> None:
        s = self.searcher(self.version(algorithm, GRID_PARAMS, startup=3), seed=3)
        suggestions = self.run(s, len(GRID), grid_loss)
        assert sorted(keys(suggestions)) == sorted(keys(GRID))
        again = self.run(s, 1, grid_loss, start=len(GRID))  # every configuration is known: the library's repeat
        own_label = "random" if algorithm == "random" else algorithm
        assert again[0] in GRID and s.suggested_by[f"t{len(GRID)}"] == own_label

    def test_repeats_allowed_when_asked(self, algorithm: str) -> None:
        """``search.repeats: true`` is the searchers' old behaviour: on 12 configurations, 12 suggestions repeat."""
        s = self.searcher(self.version(algorithm, GRID_PARAMS, startup=3, repeats="true"), seed=3)
        assert len(set(keys(self.run(s, len(GRID), grid_loss)))) < len(GRID)
        assert not s.is_repeat(GRID[0])

    def test_carried_and_running_trials_are_not_repeated(self, algorithm: str) -> None:
        version = self.version(algorithm, GRID_PARAMS, startup=3)
        prior = [({**c, "c": float(c["c"])}, grid_loss(c)) for c in GRID[:-3]]  # recorded as 0.0: the same as 0
        s = self.searcher(version, prior, seed=1)
        running = [values_of(version, s.suggest(f"r{i}")) for i in range(3)]  # none finished: all pending
        assert sorted(keys(running)) == sorted(keys(GRID[-3:]))

    def test_a_configuration_that_failed_may_come_back(self, algorithm: str) -> None:
        version = self.version(algorithm, GRID_PARAMS, startup=3)
        s = self.searcher(version, [(c, grid_loss(c)) for c in GRID[1:]], seed=1)
        first = values_of(version, s.suggest("t0"))
        assert first == GRID[0]  # the only configuration not carried
        s.on_trial_complete("t0", error=True)
        assert not s.is_repeat(GRID[0])
        assert values_of(version, s.suggest("t1")) == GRID[0]
        s.on_trial_complete("t1", {"loss": grid_loss(GRID[0])})
        assert s.is_repeat(GRID[0]) and all(s.is_repeat(c) for c in GRID)

    def test_known_configurations_survive_save_restore_and_pickling(self, algorithm: str, tmp_path: Path) -> None:
        version = self.version(algorithm, GRID_PARAMS, startup=3)
        prior = [(c, grid_loss(c)) for c in GRID[:5]]
        s = self.searcher(version, prior, seed=2)
        seen = self.run(s, 5, grid_loss) + [values_of(version, s.suggest("pending"))]
        s.save(str(tmp_path / "state.json"))
        restored = self.searcher(version, prior, seed=2)
        assert sum(restored.known.values()) == 5  # built before the restore: the restore rebuilds it
        restored.restore(str(tmp_path / "state.json"))
        missing = sorted(set(keys(GRID)) - set(keys(GRID[:5] + seen)))
        for clone in (restored, pickle.loads(pickle.dumps(s))):
            assert keys([values_of(version, clone.suggest("next"))]) == missing

    # ------------------------------------------------------------------ several objectives and constraints

    def mo_version(self, algorithm: str, params: str = ZDT_PARAMS, startup: int = 10, extra: str = "", **search: Any):
        settings = "".join(f", {k}: {v}" for k, v in search.items())
        text = f"{HEAD_MO}{extra}search: {{algorithm: {algorithm}, startup_trials: {startup}{settings}}}\n{params}"
        return parse_version(text)

    def run_mo(self, searcher: SpaceSearcher, n: int, start: int = 0) -> list[dict[str, Any]]:
        """``n`` suggestions, each completed with ``zdt1`` of its values; returns the values."""
        out = []
        for i in range(start, start + n):
            values = values_of(searcher.version, searcher.suggest(f"t{i}"))
            searcher.on_trial_complete(f"t{i}", zdt1(values))
            out.append(values)
        return out

    def zdt_prior(self, version: StudyVersion, n: int = 200, seed: int = 0) -> list[tuple]:
        rng = np.random.default_rng(seed)
        configs = [{"x": float(rng.uniform()), "y": float(rng.uniform())} for _ in range(n)]
        return [carried(version, c, zdt1(c)) for c in configs]

    def test_mo_warm_start_from_carried_objectives(self, algorithm: str, learns: bool) -> None:
        """Carried trials bring every objective's value: a learning searcher suggests near the front (y = 0) at once,
        across it (x spread), where cold draws spread over the square."""
        version = self.mo_version(algorithm)
        warm, cold = self.searcher(version, self.zdt_prior(version), seed=1), self.searcher(version, seed=1)
        assert warm.n_scored == 200 and cold.n_scored == 0
        warm_values = [values_of(version, warm.suggest(f"w{i}")) for i in range(16)]
        cold_values = [values_of(version, cold.suggest(f"c{i}")) for i in range(16)]
        warm_y, cold_y = np.median([v["y"] for v in warm_values]), np.median([v["y"] for v in cold_values])
        if learns:
            assert "startup" not in warm.suggested_by.values()
            assert warm_y < 0.2 < cold_y, (warm_y, cold_y)
            assert np.ptp([v["x"] for v in warm_values]) > 0.3  # along the front, not at one point of it
        else:
            assert warm_values == cold_values

    def test_mo_search_approaches_the_front(self, algorithm: str, learns: bool) -> None:
        """Hypervolume of 60 trials (median of three seeds): a learning searcher beats random search's."""
        if not learns:
            pytest.skip("random search is the baseline")
        version, baseline = self.mo_version(algorithm), self.mo_version("random")

        def volume(v: StudyVersion, seed: int) -> float:
            found = self.run_mo(self.searcher(v, seed=seed), 60)
            return hypervolume([(p["loss"], p["f2"]) for p in map(zdt1, found)], ZDT_REFERENCE)

        ours = np.median([volume(version, seed) for seed in range(3)])
        random = np.median([volume(baseline, seed) for seed in range(3)])
        assert ours > random, (ours, random)

    def test_mo_carried_trial_needs_every_objective(self, algorithm: str) -> None:
        version = self.mo_version(algorithm)
        with pytest.raises(ValueError, match="needs every objective's and constraint's value"):
            self.searcher(version, [({"x": 0.5, "y": 0.5}, 0.5)])
        missing = ({"x": 0.5, "y": 0.5}, 0.5, {}, Outcome({"loss": 0.5, "f2": None}))
        with pytest.raises(ValueError, match="without a finite f2: compute its costs first"):
            self.searcher(version, [missing])

    def test_mo_missing_or_not_finite_objective_fails_the_trial(self, algorithm: str) -> None:
        version = self.mo_version(algorithm, startup=2)
        s = self.searcher(version, self.zdt_prior(version, 5))
        with pytest.raises(MetricNotReported, match=r"did not report the metric 'f2'.*it reported: loss$"):
            s.on_trial_result("t0", {"loss": 0.5, "training_iteration": 1})
        for trial_id in ("nan", "inf", "none", "error", "ok"):
            s.suggest(trial_id)
        s.on_trial_complete("nan", {"loss": 0.2, "f2": float("nan")})
        s.on_trial_complete("inf", {"loss": float("inf"), "f2": 1.0})
        s.on_trial_complete("none", {"loss": 0.2})
        s.on_trial_complete("error", {"loss": 0.2, "f2": 1.0}, error=True)
        assert s.n_scored == 5  # none of them is scored: no member of a front
        s.on_trial_complete("ok", {"loss": 0.2, "f2": 1.0})
        assert s.n_scored == 6
        self.run_mo(s, 3, start=10)  # the failures do not disturb later suggestions
        assert s.n_scored == 9

    def test_mo_pending_trials_survive_save_restore_and_pickling(self, algorithm: str, tmp_path: Path) -> None:
        version = self.mo_version(algorithm, startup=3)
        prior = self.zdt_prior(version, 4)
        s = self.searcher(version, prior, seed=3)
        configs = [s.suggest(f"p{i}") for i in range(3)]
        s.on_trial_complete("p0", zdt1(values_of(version, configs[0])))
        s.save(str(tmp_path / "state.json"))
        restored = self.searcher(version, prior, seed=3)
        restored.restore(str(tmp_path / "state.json"))
        for copy in (restored, pickle.loads(pickle.dumps(s))):
            assert copy.n_scored == 5 and copy.suggested_by == s.suggested_by
            for i in (1, 2):
                copy.on_trial_complete(f"p{i}", zdt1(values_of(version, configs[i])))
            assert copy.n_scored == 7
            assert version.params.contains(values_of(version, copy.suggest("next"))) is None

    def test_mo_rungs_and_carried_histories(self, algorithm: str) -> None:
        """With ASHA every objective counts at the rungs a trial reached: its results' vectors as it runs, a carried
        trial's from its histories (a name without one counts with its final value at every epoch)."""
        version = self.mo_version(algorithm, startup=2, extra=ASHA_9, min_rung_trials=2)
        history = {1: 0.9, 2: 0.7, 3: 0.6}
        stopped = Outcome({"loss": 0.6, "f2": 2.0}, {"loss": history})
        s = self.searcher(version, [({"x": 0.6, "y": 0.1}, 0.6, history, stopped)])
        assert s._prior[0][1] == {1: (0.9, 2.0, 0.0), 3: (0.6, 2.0, 0.0)}
        for i in range(3):
            s.suggest(f"t{i}")
        for epoch in (1, 2):
            s.on_trial_result("t0", {"loss": 1.0 / epoch, "f2": 3.0, "training_iteration": epoch})
        s.on_trial_complete("t0", {"loss": 0.5, "f2": 3.0, "training_iteration": 2})  # stopped at rung 1
        for epoch in range(1, 10):
            s.on_trial_result("t1", {"loss": 0.5 / epoch, "f2": 1.0, "training_iteration": epoch})
        s.on_trial_complete("t1", {"loss": 0.05, "f2": 1.0, "training_iteration": 9})
        assert [s.observed_at(b) for b in s.budgets] == [3, 2, 1] and s.model_budget() == 3
        assert version.params.contains(values_of(version, s.suggest("t3"))) is None

    def test_mo_no_configuration_twice_until_every_one_is_known(self, algorithm: str) -> None:
        version = self.mo_version(algorithm, GRID_PARAMS, startup=3)
        s = self.searcher(version, seed=3)
        seen = []
        for i in range(len(GRID)):
            values = values_of(version, s.suggest(f"t{i}"))
            s.on_trial_complete(f"t{i}", {"loss": grid_loss(values), "f2": float(values["a"] == 1)})
            seen.append(values)
        assert sorted(keys(seen)) == sorted(keys(GRID))

    def test_mo_liar_spreads_concurrent_suggestions(self, algorithm: str, learns: bool) -> None:
        if not learns:
            pytest.skip("random search ignores pending trials")

        def spread(liar: str) -> float:
            version = self.mo_version(algorithm, liar=liar)
            per_seed = []
            for seed in range(4):
                s = self.searcher(version, self.zdt_prior(version, 60), seed=seed)
                points = np.array([[c["x"], c["y"]] for c in (s.suggest(f"p{i}") for i in range(8))])
                per_seed.append(np.median(min_distances(points)))
            return float(np.median(per_seed))

        assert spread("worst") > 1.5 * spread("off")

    def test_constraints_are_respected(self, algorithm: str, learns: bool) -> None:
        """``cost <= 0.4`` (x + y) holds for about a fifth of the square; carried trials that break it rank after
        every one that keeps it, so a learning searcher suggests mostly where it holds, with one objective or two."""
        constraint = "constraints: {cost: {max: 0.4}}\n"
        for head in (HEAD, HEAD_MO):
            text = f"{head}{constraint}search: {{algorithm: {algorithm}, startup_trials: 10}}\n{ZDT_PARAMS}"
            version = parse_version(text)
            s = self.searcher(version, self.zdt_prior(version, 150), seed=2)
            feasible = [zdt1(values)["cost"] <= 0.4 for values in self.run_mo(s, 20)]
            share = sum(feasible) / len(feasible)
            assert share >= 0.6 if learns else share <= 0.5, (head, share)

    def test_mo_same_seed_same_suggestions(self, algorithm: str) -> None:
        version = self.mo_version(algorithm, startup=3)

        def first(seed: int) -> list[dict[str, Any]]:
            return self.run_mo(self.searcher(version, self.zdt_prior(version, 5), seed=seed), 6)

        assert first(7) == first(7)
        assert first(7) != first(8)
