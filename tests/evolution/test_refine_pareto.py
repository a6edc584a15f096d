"""Refine on a study of two objectives (issue 26), on fixed trials: narrow around the Pareto set, widen where Pareto
trials sit at a bound, the notes state the evidence; constraints rank infeasible trials last."""

from __future__ import annotations

import random

import numpy as np
import pytest

from orchestrator.evolution.refining import pareto_ranking, refine_trials
from orchestrator.spaces import parse_version
from orchestrator.spaces.refine import NotEnoughTrials, RefineOptions
from orchestrator.spaces.trials import RecordedTrial

SPACE = """\
study: two
version: 1
trainable: analytic
objectives: [{{name: loss, mode: min}}, {{name: loss2, mode: min}}]
{constraints}fixed: {{function: quadratic}}
params:
  x: {{uniform: [{x_low}, {x_high}]}}
  y: {{uniform: [0.2, 1.0]}}
  z: {{uniform: [0.0, 1.0]}}
"""


def version(constraints: str = "", x_low: float = 0.0, x_high: float = 1.0):  # type: ignore[no-untyped-def]
    return parse_version(SPACE.format(constraints=constraints, x_low=x_low, x_high=x_high), "two/v1.yaml")


def recorded(configs: list[dict[str, float]], objectives) -> list[RecordedTrial]:  # type: ignore[no-untyped-def]
    out = []
    for i, c in enumerate(configs):
        loss, loss2 = objectives(c)
        out.append(RecordedTrial(c, loss, {}, "FINISHED", 1, f"run{i:02d}", values={"loss2": loss2}))
    return out


def curved(c: dict[str, float]) -> tuple[float, float]:
    """The Pareto set is y = 0.2 (the lower bound; lower would be better in both) and x in [0, 1]; z does nothing."""
    return c["x"] + 0.5 * (c["y"] - 0.2), (1 - c["x"]) ** 2 + (c["y"] - 0.2)


def random_configs(n: int = 40, seed: int = 0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{"x": rng.uniform(0, 1), "y": rng.uniform(0.2, 1), "z": rng.uniform(0, 1)} for _ in range(n)]


def test_narrows_around_the_pareto_set_and_widens_where_it_continues_past_a_bound() -> None:
    v = version()
    trials = recorded(random_configs(), curved)
    ranking = pareto_ranking(v, trials, RefineOptions())
    kept = ranking.kept()
    assert len(kept) >= 3 and all(r.front is not None and r.front <= ranking.kept_front for r in kept)
    result = refine_trials(v, trials)
    params = result.version.params.params
    y = params["y"]
    assert y.low < 0.2 and y.high < 1.0  # widened toward the better side, cut back from the worse one
    assert all(y.low <= r.config["y"] <= y.high and params["x"].low <= r.config["x"] <= params["x"].high for r in kept)
    assert (params["z"].low, params["z"].high) == (0.0, 1.0)
    notes = result.version.notes
    assert "ranked by Pareto front over loss (min), loss2 (min) on their final values" in notes
    assert "for the Pareto ranks, a Gaussian process of 40 trials" in notes
    assert "holds a Pareto rank better than the front's" in notes and "z: importance 0.00" in notes
    assert result.version.parent == 1 and result.version.goals == v.goals


def test_a_front_spread_along_a_parameter_widens_both_bounds_on_each_objectives_own_model() -> None:
    # every trial is on the front (loss = x, loss2 = 1 - x): the fronts do not depend on x, each objective does
    v = version(x_low=0.2, x_high=0.8)
    zs = np.random.default_rng(0).permutation(np.linspace(0, 1, 25))  # z does nothing, and varies apart from x
    xs = np.linspace(0.2, 0.8, 25)
    configs = [{"x": float(x), "y": 0.6, "z": float(z)} for x, z in zip(xs, zs, strict=True)]
    trials = recorded(configs, lambda c: (c["x"], 1 - c["x"]))
    result = refine_trials(v, trials)
    x = result.version.params.params["x"]
    assert x.low < 0.2 and x.high > 0.8, result.version.notes
    note = next(c for c in result.changes if c.path == "x").evidence
    assert "Pareto trial(s) at the lower bound and predicted loss falls toward it (its own model: P=" in note
    assert "Pareto trial(s) at the upper bound and predicted loss2 falls toward it" in note
    z = result.version.params.params["z"]
    assert (z.low, z.high) == (0.0, 1.0)  # no objective depends on it


def test_infeasible_trials_rank_after_every_feasible_one_and_are_never_kept() -> None:
    v = version(constraints="constraints: {loss2: {max: 0.5}}\n")
    assert v.constraints
    trials = recorded(random_configs(), curved)
    ranking = pareto_ranking(v, trials, RefineOptions())
    feasible = [r.values["loss2"] <= 0.5 for r in ranking.rows]
    assert feasible == sorted(feasible, reverse=True) and not all(feasible)
    assert all(r.values["loss2"] <= 0.5 for r in ranking.kept())
    assert "under loss2 <= 0.5" in refine_trials(v, trials).version.notes


def test_trials_without_every_objective_do_not_count() -> None:
    v = version()
    trials = recorded(random_configs(8), curved)
    trials[:4] = [RecordedTrial(t.config, t.value, {}, "FINISHED", 1, t.run_id) for t in trials[:4]]  # no loss2
    with pytest.raises(NotEnoughTrials, match=r"4 finished trial\(s\) with a finite value of every objective"):
        refine_trials(v, trials)
