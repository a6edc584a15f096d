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
* :func:`contributions`: the volume each point of a front alone dominates (SMS-EMOA's tie-break; MO-ASHA's).
* :func:`unit_scaled`: each objective scaled to [0, 1] over the points, so that objectives in different units weigh
  alike in a volume.
"""

from __future__ import annotations

import math
from collections import Counter
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
    scaled = dict(zip(members, unit_scaled([points[i] for i in members]), strict=True))
    return min(members, key=lambda i: (math.sqrt(sum(x * x for x in scaled[i])), i))


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


def contributions(front: Sequence[Point], reference: Point) -> list[float]:
    """Each point's exclusive hypervolume contribution within ``front`` (points none of which dominates another): the
    volume that it dominates and no other point does (the hypervolume of all of them less that of the others; 0 for
    a repeated point). The tie-break of SMS-EMOA (Beume, Naujoks and Emmerich 2007) within a front: unlike crowding,
    which keeps the two ends of each objective first, it keeps the point whose loss would shrink the dominated volume
    most, often the knee."""
    if len(reference) == 2:
        return _contributions_2d(front, reference)
    total = hypervolume(front, reference)
    return [total - hypervolume([q for j, q in enumerate(front) if j != i], reference) for i in range(len(front))]


def _contributions_2d(points: Sequence[Point], reference: Point) -> list[float]:
    """``contributions`` in two objectives, from the front's staircase: point k's own rectangle reaches its right
    neighbour's first loss and its left neighbour's second (the reference at the ends)."""
    out = [0.0] * len(points)
    seen = Counter((p[0], p[1]) for p in points)
    stairs: list[int] = []
    best = reference[1]
    for i in sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1])):
        if points[i][0] < reference[0] and points[i][1] < best:
            stairs.append(i)
            best = points[i][1]
    for k, i in enumerate(stairs):
        if seen[(points[i][0], points[i][1])] > 1:  # a repeated point: the other copy covers its volume
            continue
        right = points[stairs[k + 1]][0] if k + 1 < len(stairs) else reference[0]
        up = points[stairs[k - 1]][1] if k else reference[1]
        out[i] = (right - points[i][0]) * (up - points[i][1])
    return out


def unit_scaled(points: Sequence[Point]) -> list[tuple[float, ...]]:
    """``points`` with each objective scaled to [0, 1] over them (its lowest 0, its highest 1; a constant one 0)."""
    if not points:
        return []
    dims = range(len(points[0]))
    low = [min(p[m] for p in points) for m in dims]
    high = [max(p[m] for p in points) for m in dims]
    return [tuple((p[m] - low[m]) / (high[m] - low[m]) if high[m] > low[m] else 0.0 for m in dims) for p in points]


def _hypervolume_2d(points: Sequence[Point], reference: Point) -> float:
    area, best_y = 0.0, reference[1]
    for x, y in sorted((p[0], p[1]) for p in points):
        if y < best_y:
            area += (reference[0] - x) * (best_y - y)
            best_y = y
    return area
