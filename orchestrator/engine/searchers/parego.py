"""Several objectives for a single-objective model: ParEGO's random augmented-Chebyshev scalarisation.

hyperopt's TPE models one loss. The ``tpe`` searcher gives it several objectives the way ParEGO does (Knowles 2006,
"ParEGO: a hybrid algorithm with on-line landscape approximation for expensive multiobjective optimization
problems"): at each suggestion a new weight vector ``w`` is drawn uniformly from the simplex (``weights``, fixed by
the suggestion's seed), every observed trial's losses are scaled to [0, 1] over the feasible observations (per
objective: its lowest loss 0, its highest 1) and turned into one loss

    s(x) = max_i w_i f_i(x) + rho * sum_i w_i f_i(x),    rho = 0.05,

the augmented Chebyshev function (the max term reaches every point of the front, convex or not; the small sum breaks
ties towards points that are not weakly dominated). TPE is fitted on these losses as on any other, so each suggestion
aims at another part of the front; the liar, the repeat rule and the budget rules act on ``s`` as on one metric.

Constraints: a trial that breaks one (violation > 0, ``StudyVersion.violation``) gets a loss above every feasible
trial's, ``1 + rho`` at most, ordered by how far it breaks them: ``2 + rho + v / (1 + v)``. So it ranks last, in
TPE's bad set (feasible-last), whatever the weights. With one objective and constraints ``s`` is that objective's
scaled loss, feasible trials first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

RHO = 0.05  # ParEGO's augmentation: small enough that the max term decides, large enough to break its ties


def weights(seed: int, objectives: int) -> np.ndarray:
    """A weight vector drawn uniformly from the simplex (a flat Dirichlet), fixed by ``seed``."""
    if objectives == 1:
        return np.ones(1)
    return np.random.default_rng([seed, 0x9A4E60]).dirichlet(np.ones(objectives))


def scalarize(vectors: Sequence[Sequence[float]], w: np.ndarray, rho: float = RHO) -> list[float]:
    """One loss per vector (``(loss_1, ..., loss_k, violation)``): the augmented Chebyshev function of its losses
    scaled over the feasible vectors (all of them when none is feasible), with weights ``w``; infeasible ones after
    every feasible one, by violation."""
    if not vectors:
        return []
    points = np.asarray([v[:-1] for v in vectors], dtype=float)
    violations = np.asarray([v[-1] for v in vectors], dtype=float)
    feasible = violations <= 0
    reference = points[feasible] if feasible.any() else points
    low, high = reference.min(axis=0), reference.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (points - low) / span
    weighted = scaled * w
    values = weighted.max(axis=1) + rho * weighted.sum(axis=1)
    out = []
    for value, violation in zip(values.tolist(), violations.tolist(), strict=True):
        if violation > 0:
            value = 2.0 + rho + (1.0 if math.isinf(violation) else violation / (1.0 + violation))
        out.append(float(value))
    return out


__all__ = ["RHO", "scalarize", "weights"]
