"""The one loss ``tpe`` fits with several objectives (``orchestrator.engine.searchers.parego``), on hand-made points."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.engine.pareto import ranks
from orchestrator.engine.searchers import parego


@pytest.mark.parametrize("objectives", [1, 2, 3])
def test_front_levels_are_the_fronts_of_the_pure_python_sort(objectives: int) -> None:
    rng = np.random.default_rng(objectives)
    for n in (1, 7, 60, 200):
        points = rng.integers(0, 5, size=(n, objectives)).astype(float)  # many ties
        assert parego.front_levels(points).tolist() == ranks([tuple(p) for p in points])


def test_scaled_ranks_share_ties_and_ignore_scale() -> None:
    assert parego.scaled_ranks(np.array([3.0, 1.0, 2.0, 1.0])).tolist() == [1.0, 1 / 6, 2 / 3, 1 / 6]
    column = np.array([0.1, 0.3, 0.2, 5.0])
    assert parego.scaled_ranks(column).tolist() == parego.scaled_ranks(np.exp(column * 100)).tolist()


def test_every_member_of_a_front_is_better_than_every_trial_behind_it_whatever_the_weights() -> None:
    points = [(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (4.0, 1.0), (5.0, 5.0), (2.0, 3.0)]
    level = ranks(points)
    for seed in range(50):
        losses = parego.scalarize([(*p, 0.0) for p in points], parego.weights(seed, 2))
        for i in range(len(points)):
            for j in range(len(points)):
                if level[i] < level[j]:
                    assert losses[i] < losses[j]


def test_the_weights_decide_inside_a_front() -> None:
    front = [(0.0, 3.0, 0.0), (1.0, 2.0, 0.0), (2.0, 1.0, 0.0), (3.0, 0.0, 0.0)]
    first = parego.scalarize(front, np.array([0.95, 0.05]))
    second = parego.scalarize(front, np.array([0.05, 0.95]))
    assert int(np.argmin(first)) == 0 and int(np.argmin(second)) == 3
    assert all(0 <= loss < 1 for loss in first + second)  # all of them in front 0


def test_an_outlier_does_not_squeeze_the_others() -> None:
    """With losses scaled by their minimum and maximum, a diverged trial (loss 1e6) made every other trial's first
    loss near 0, so the second objective alone decided; ranks leave the order among the others as it was."""
    points = [(0.10, 4.0), (0.20, 3.0), (0.30, 1.0), (0.12, 2.0)]
    with_outlier = [*points, (1e6, 0.5)]
    w = np.array([0.7, 0.3])
    base = parego.scalarize([(*p, 0.0) for p in points], w)
    spoilt = parego.scalarize([(*p, 0.0) for p in with_outlier], w)
    assert np.argsort(base).tolist() == np.argsort(spoilt[:-1]).tolist()


def test_one_objective_keeps_its_order_and_constraints_put_breaches_last_by_how_far() -> None:
    losses = parego.scalarize([(3.0, 0.0), (1.0, 0.0), (2.0, 0.0), (1.0, 0.0)], parego.weights(0, 1))
    assert losses[1] == losses[3] < losses[2] < losses[0]
    vectors = [(5.0, 5.0, 0.0), (0.0, 0.0, 2.0), (0.0, 0.0, 0.5), (9.0, 9.0, 0.0), (0.0, 0.0, float("inf"))]
    losses = parego.scalarize(vectors, np.array([0.5, 0.5]))
    assert losses[0] < losses[3] < losses[2] < losses[1] < losses[4]
    assert parego.scalarize([(0.0, 1.0, 3.0), (1.0, 0.0, 1.0)], np.array([0.5, 0.5])) == [1.75, 1.5]
    assert parego.scalarize([], np.ones(2)) == []


def test_past_the_limit_only_the_best_by_the_weights_are_sorted_into_fronts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parego, "FRONT_LIMIT", 3)
    vectors = [(float(i), float(9 - i), 0.0) for i in range(10)]  # one front of ten
    w = np.array([0.5, 0.5])
    losses = parego.scalarize(vectors, w)
    sorted_ = np.argsort(parego.chebyshev(np.asarray(vectors)[:, :2], w), kind="stable")[:3]
    assert sorted(losses)[:3] == sorted(losses[i] for i in sorted_) and max(losses[i] for i in sorted_) < 1
    assert all(1 <= losses[i] < 2 for i in set(range(10)) - set(sorted_.tolist()))
