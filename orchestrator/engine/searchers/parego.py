"""Several objectives for a single-objective model: the front first, then ParEGO's random Chebyshev weights.

hyperopt's TPE models one loss, ranked: its good set is the best few losses, its bad set the rest. The ``tpe``
searcher gives it several objectives with one loss per observed trial, built afresh at each suggestion:

    s(x) = front(x) + 0.5 * c_w(x) / (1 + rho)

* ``front(x)``: the trial's non-dominated front among the feasible observations (0 for the Pareto set, 1 once it
  is removed, ...; NSGA-II's sort, as ``engine.pareto.ranks``). TPE's good set is therefore made of the first fronts,
  as Optuna's multi-objective TPE splits its trials (Ozaki et al. 2020, "Multiobjective tree-structured Parzen
  estimator for computationally expensive optimization problems").
* ``c_w(x)``: ParEGO's augmented Chebyshev function (Knowles 2006, "ParEGO: a hybrid algorithm with on-line
  landscape approximation for expensive multiobjective optimization problems") of the trial's objectives with a
  weight vector ``w`` drawn uniformly from the simplex for each suggestion (``weights``, fixed by the suggestion's
  seed): ``max_i w_i r_i(x) + rho * sum_i w_i r_i(x)``, ``rho = 0.05``, where ``r_i`` is the objective's rank among
  the feasible observations scaled to [0, 1] (ties share their mean rank). Inside a front, and where the good set
  cuts one, it decides which members count as best, so each suggestion aims at another part of the front. In
  [0, 1 + rho], it adds at most 0.5: it never reorders fronts.

Why ranks and fronts rather than ParEGO's losses scaled to [0, 1] by their minimum and maximum: one bad trial (a
diverged run, a network ten times the size of the others) squeezes every other trial's scaled loss towards 0, so
the max term follows the other objective alone; ranks do not care how far the worst trial is. And a front member
that the weights of the moment rank low still sits in the good set. Measured by ``bench.multi_objective`` (the
hypervolume ratio, median of 50 seeds, against Optuna's multi-objective TPE): ZDT1 0.668 with scaled losses, 0.756
now; the conditional problem 0.893 -> 0.917; the ConvNet table 0.819 -> 0.833.

Constraints: a trial that breaks one (violation > 0, ``StudyVersion.violation``) gets a loss above every feasible
trial's, ordered by how far it breaks them: ``F + 1 + v / (1 + v)`` with ``F`` the number of feasible fronts. So it
ranks last, in TPE's bad set (feasible-last), whatever the weights. With one objective the fronts are the
objective's distinct values in order, so ``s`` orders trials as the objective does, feasible ones first.

Cost: the sort compares every pair of feasible observations (numpy, about 10 ms for 1,000 of them); past
``FRONT_LIMIT`` feasible observations only the ``FRONT_LIMIT`` best by ``c_w`` are sorted into fronts, the others
placed after them by ``c_w`` (the searcher fits on at most 1,000 observations anyway, its good set 25 at most).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RHO = 0.05  # ParEGO's augmentation: small enough that the max term decides, large enough to break its ties
FRONT_LIMIT = 1000  # feasible observations sorted into fronts exactly; past it the best this many by ``c_w``


def weights(seed: int, objectives: int) -> np.ndarray:
    """A weight vector drawn uniformly from the simplex (a flat Dirichlet), fixed by ``seed``."""
    if objectives == 1:
        return np.ones(1)
    return np.random.default_rng([seed, 0x9A4E60]).dirichlet(np.ones(objectives))


def scaled_ranks(column: np.ndarray) -> np.ndarray:
    """Each value's rank in ``column`` scaled to [0, 1] (the lowest 0, the highest 1; ties share their mean rank)."""
    _, inverse, counts = np.unique(column, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - counts + (counts - 1) / 2
    return mean_rank[inverse.reshape(-1)] / max(len(column) - 1, 1)


def front_levels(points: np.ndarray) -> np.ndarray:
    """Each point's non-dominated front (0: the Pareto set), for an ``(n, k)`` array of losses: the sort of
    ``engine.pareto.fronts``, vectorised for a searcher that sorts at every suggestion."""
    n = len(points)
    dominates = np.ones((n, n), dtype=bool)  # [i, j]: i dominates j (no worse in every objective, better in one)
    strictly = np.zeros((n, n), dtype=bool)
    for column in points.T:
        dominates &= column[:, None] <= column[None, :]
        strictly |= column[:, None] < column[None, :]
    dominates &= strictly
    dominated_by = dominates.sum(axis=0)
    level = np.full(n, -1)
    current = np.flatnonzero(dominated_by == 0)
    front = 0
    while current.size:
        level[current] = front
        dominated_by = dominated_by - dominates[current].sum(axis=0)
        current = np.flatnonzero((dominated_by == 0) & (level < 0))
        front += 1
    return level


def chebyshev(points: np.ndarray, w: np.ndarray, rho: float = RHO) -> np.ndarray:
    """ParEGO's augmented Chebyshev function of each point's objectives ranked among ``points`` (``scaled_ranks``)."""
    ranked = np.column_stack([scaled_ranks(points[:, j]) for j in range(points.shape[1])]) * w
    return ranked.max(axis=1) + rho * ranked.sum(axis=1)


def scalarize(vectors: Sequence[Sequence[float]], w: np.ndarray, rho: float = RHO) -> list[float]:
    """One loss per vector (``(loss_1, ..., loss_k, violation)``): its front among the feasible vectors plus half
    its scaled Chebyshev value with weights ``w``; vectors that break a constraint after every feasible one, by
    violation."""
    if not vectors:
        return []
    points = np.asarray([v[:-1] for v in vectors], dtype=float)
    violations = np.asarray([v[-1] for v in vectors], dtype=float)
    feasible = np.flatnonzero(violations <= 0)
    out = np.zeros(len(vectors))
    fronts = 0  # the feasible observations' fronts: the infeasible ones come after them
    if feasible.size:
        value = chebyshev(points[feasible], w, rho)
        level = np.full(feasible.size, -1.0)
        sorted_ = np.argsort(value, kind="stable")[:FRONT_LIMIT]
        level[sorted_] = front_levels(points[feasible[sorted_]])
        level[level < 0] = level.max() + 1  # past FRONT_LIMIT: one front after the sorted ones
        out[feasible] = level + 0.5 * value / (1 + rho)
        fronts = int(level.max()) + 1
    breaks = violations > 0
    broken = violations[breaks]
    share = np.ones(broken.size)  # how far each breaks the constraints, in [0, 1]: v / (1 + v), 1 for infinity
    finite = np.isfinite(broken)
    share[finite] = broken[finite] / (1 + broken[finite])
    out[breaks] = fronts + 1 + share
    return out.tolist()


__all__ = ["FRONT_LIMIT", "RHO", "chebyshev", "front_levels", "scalarize", "scaled_ranks", "weights"]
