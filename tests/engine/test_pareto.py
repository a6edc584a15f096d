"""The rules of several objectives (``orchestrator.engine.pareto``) on hand-made points."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from orchestrator.engine.pareto import (
    contributions,
    crowding,
    dominates,
    fronts,
    hypervolume,
    knee,
    order,
    ranks,
    unit_scaled,
)

POINTS = [(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (4.0, 1.0), (5.0, 5.0), (2.0, 3.0)]


def test_dominance_and_fronts() -> None:
    assert dominates((1, 2), (1, 3)) and not dominates((1, 2), (1, 2)) and not dominates((1, 3), (2, 2))
    assert fronts(POINTS) == [[0, 1, 3, 5], [2], [4]]
    assert ranks(POINTS) == [0, 0, 1, 0, 2, 0]


def test_infeasible_points_rank_after_every_feasible_one_by_how_far_they_break() -> None:
    # the best point breaks a constraint: it ranks after all feasible ones, the slighter breach first
    assert ranks(POINTS, [0, 0, 0, 2.0, 0, 0.5]) == [0, 0, 1, 4, 2, 3]


def test_crowding_and_order_within_a_front() -> None:
    front = [(1.0, 4.0), (2.0, 2.0), (2.5, 1.8), (4.0, 1.0)]
    distance = crowding(front)
    assert math.isinf(distance[0]) and math.isinf(distance[3]) and distance[1] > distance[2]
    assert order(front) == [0, 3, 1, 2]
    assert order(POINTS)[-2:] == [2, 4]  # dominated points last, by front


def test_contributions_are_the_volume_each_front_member_alone_dominates() -> None:
    assert contributions([(0.0, 1.0), (0.5, 0.5), (1.0, 0.0)], (2.0, 2.0)) == [0.5, 0.25, 0.5]
    assert contributions([(0.5, 0.5), (0.5, 0.5)], (2.0, 2.0)) == [0.0, 0.0]  # each copy covers the other
    assert contributions([(3.0, 0.0)], (2.0, 2.0)) == [0.0]  # beyond the reference
    # three objectives: a alone 2 x 2 x 1, b alone 1 x 1 x 2, both [1, 2]^3
    assert contributions([(0.0, 0.0, 1.0), (1.0, 1.0, 0.0)], (2.0, 2.0, 2.0)) == pytest.approx([3.0, 1.0])
    rng = random.Random(0)
    for _ in range(300):  # the two-objective staircase agrees with the hypervolume without each point
        points = [(rng.choice([0.1, 0.2, 0.5, 0.7, 1.0, 1.2]), rng.choice([0.1, 0.3, 0.8, 1.0, 1.3])) for _ in range(9)]
        front = [points[i] for i in fronts(points)[0]]
        front += front[:1] * rng.randint(0, 1)
        total = hypervolume(front, (1.1, 1.1))
        alone = [total - hypervolume(front[:i] + front[i + 1 :], (1.1, 1.1)) for i in range(len(front))]
        assert contributions(front, (1.1, 1.1)) == pytest.approx(alone, abs=1e-12)


def test_unit_scaling() -> None:
    assert unit_scaled([(1.0, 5.0, 2.0), (3.0, 1.0, 2.0), (2.0, 3.0, 2.0)]) == [(0, 1, 0), (1, 0, 0), (0.5, 0.5, 0)]
    assert unit_scaled([]) == []


def test_knee_is_the_balanced_member() -> None:
    front = [(0.0, 10.0), (1.0, 2.0), (6.0, 1.0), (10.0, 0.0), (8.0, 8.0)]
    assert knee(front) == 1 and knee([]) is None


def test_hypervolume_exact_in_two_and_three_objectives() -> None:
    assert hypervolume([(1.0, 1.0)], (2.0, 2.0)) == pytest.approx(1.0)
    assert hypervolume([(0.0, 1.0), (1.0, 0.0)], (2.0, 2.0)) == pytest.approx(3.0)
    assert hypervolume([(3.0, 3.0)], (2.0, 2.0)) == 0.0
    assert hypervolume([(0.0, 0.0, 0.0)], (1.0, 2.0, 3.0)) == pytest.approx(6.0)
    # two boxes of a unit cube, overlapping in a quarter: 0.5 + 0.5 - 0.25
    assert hypervolume([(0.0, 0.5, 0.0), (0.5, 0.0, 0.0)], (1.0, 1.0, 1.0)) == pytest.approx(0.75)


def test_hypervolume_agrees_with_counting_a_grid() -> None:
    rng = random.Random(0)
    points = [(rng.random(), rng.random(), rng.random()) for _ in range(8)]
    cells, n = 0, 24
    for i, j, k in itertools.product(range(n), repeat=3):
        corner = ((i + 0.5) / n, (j + 0.5) / n, (k + 0.5) / n)
        cells += any(all(p[m] <= corner[m] for m in range(3)) for p in points)
    assert hypervolume(points, (1.0, 1.0, 1.0)) == pytest.approx(cells / n**3, abs=0.03)
