"""Several objectives at once: the one set of rules for fronts, their order, the knee and the hypervolume.

Every function takes points as *losses* (lower is better in every objective: ``Metric.loss`` of each value), so
callers turn a study's values into losses once. Pure Python (no numpy): the searchers' early stopping, the review,
refine and the benchmarks share it, and fronts of a search are hundreds of points, not millions.

* :func:`fronts`: non-dominated sorting (Deb et al. 2002's fast sort): front 0 is the Pareto set, front 1 what is
  left once it is removed, and so on. Infeasible points (a constraint broken) come after every feasible one, in
  fronts of their own ordered by how far they break the constraints (:func:`ranks` with ``violations``).
* :func:`crowding`: NSGA-II's crowding distance within one front (the ends infinite), the tie-break inside a front.
* :func:`order`: every point, by front then by crowding (most spread first), then by input position.
* :func:`knee`: the front's point closest to the ideal point once each objective is scaled to [0, 1] over the front
  (the balanced trade-off), the one a search registers when nothing else says which.
* :func:`hypervolume`: the volume the points dominate up to a reference point (exact; 2 or 3 objectives).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
    """Whether ``a`` is at least as good as ``b`` in every objective and better in one (losses)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def fronts(points: Sequence[Point]) -> list[list[int]]:
    """The indices of ``points`` in non-dominated fronts, best first (each front in input order)."""
    n = len(points)
    dominated_by: list[list[int]] = [[] for _ in range(n)]  # i -> the points i dominates
    count = [0] * n  # how many points dominate i
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j]):
                dominated_by[i].append(j)
                count[j] += 1
            elif dominates(points[j], points[i]):
                dominated_by[j].append(i)
                count[i] += 1
    current = [i for i in range(n) if count[i] == 0]
    out: list[list[int]] = []
    while current:
        out.append(sorted(current))
        following = []
        for i in current:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    following.append(j)
        current = following
    return out


def ranks(points: Sequence[Point], violations: Sequence[float] | None = None) -> list[int]:
    """Each point's front (0: the Pareto set). With ``violations`` (how far each point breaks the constraints, 0
    when feasible), the feasible points' fronts come first and each infeasible point after all of them, the less
    it breaks them the earlier (equal violations share a rank)."""
    violations = list(violations) if violations is not None else [0.0] * len(points)
    feasible = [i for i, v in enumerate(violations) if v <= 0]
    out = [0] * len(points)
    feasible_fronts = fronts([points[i] for i in feasible])
    for rank, front in enumerate(feasible_fronts):
        for k in front:
            out[feasible[k]] = rank
    infeasible = sorted({v for v in violations if v > 0})
    for i, v in enumerate(violations):
        if v > 0:
            out[i] = len(feasible_fronts) + infeasible.index(v)
    return out


def crowding(points: Sequence[Point]) -> list[float]:
    """NSGA-II's crowding distance of each point among ``points`` (one front): per objective, the normalised gap
    between its neighbours, summed; the extremes of each objective get infinity."""
    n = len(points)
    if n <= 2:
        return [math.inf] * n
    distance = [0.0] * n
    for m in range(len(points[0])):
        by = sorted(range(n), key=lambda i: points[i][m])
        low, high = points[by[0]][m], points[by[-1]][m]
        distance[by[0]] = distance[by[-1]] = math.inf
        if high == low:
            continue
        for k in range(1, n - 1):
            distance[by[k]] += (points[by[k + 1]][m] - points[by[k - 1]][m]) / (high - low)
    return distance


def order(points: Sequence[Point], violations: Sequence[float] | None = None) -> list[int]:
    """Every index, best first: by rank (``ranks``), then the most crowded last within a rank, then input order."""
    rank = ranks(points, violations)
    spread = [0.0] * len(points)
    for r in set(rank):
        members = [i for i, x in enumerate(rank) if x == r]
        for i, d in zip(members, crowding([points[i] for i in members]), strict=True):
            spread[i] = d
    return sorted(range(len(points)), key=lambda i: (rank[i], -spread[i], i))


def knee(points: Sequence[Point]) -> int | None:
    """The index of the balanced trade-off of the Pareto set of ``points``: the member closest (Euclidean) to the
    ideal point once every objective is scaled to [0, 1] over the set; None for no points."""
    if not points:
        return None
    members = fronts(points)[0]
    dims = len(points[0])
    low = [min(points[i][m] for i in members) for m in range(dims)]
    high = [max(points[i][m] for i in members) for m in range(dims)]

    def scaled_distance(i: int) -> float:
        return math.sqrt(
            sum(((points[i][m] - low[m]) / (high[m] - low[m]) if high[m] > low[m] else 0.0) ** 2 for m in range(dims))
        )

    return min(members, key=lambda i: (scaled_distance(i), i))


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """The volume dominated by ``points`` and bounded by ``reference`` (every point's losses below it count; others
    add nothing): exact, for 1, 2 or 3 objectives."""
    inside = [tuple(p) for p in points if all(x < r for x, r in zip(p, reference, strict=True))]
    if not inside:
        return 0.0
    dims = len(reference)
    if dims == 1:
        return reference[0] - min(p[0] for p in inside)
    if dims == 2:
        return _hypervolume_2d(inside, reference)
    if dims == 3:
        # slices along the third objective: between consecutive values the dominated area is that of the points
        # at or below the slice
        levels = sorted({p[2] for p in inside})
        volume = 0.0
        for k, z in enumerate(levels):
            top = levels[k + 1] if k + 1 < len(levels) else reference[2]
            volume += _hypervolume_2d([p[:2] for p in inside if p[2] <= z], reference[:2]) * (top - z)
        return volume
    raise ValueError(f"hypervolume of {dims} objectives: 1, 2 or 3 are supported")


def _hypervolume_2d(points: Sequence[Point], reference: Point) -> float:
    area, best_y = 0.0, reference[1]
    for x, y in sorted((p[0], p[1]) for p in points):
        if y < best_y:
            area += (reference[0] - x) * (best_y - y)
            best_y = y
    return area
