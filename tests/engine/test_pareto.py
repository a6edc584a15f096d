"""The rules of several objectives (``orchestrator.engine.pareto``) on hand-made points."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from orchestrator.engine.pareto import crowding, dominates, fronts, hypervolume, knee, order, ranks

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
