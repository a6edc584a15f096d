"""The rule ``tpe`` used for several objectives before 2026-12-07, kept as ``bench.multi_objective``'s baseline.

ParEGO's augmented Chebyshev function (Knowles 2006) of each observation's losses scaled to [0, 1] by their minimum
and maximum over the feasible observations, with the suggestion's weights; infeasible ones after every feasible
one, by violation. The product's rule (``orchestrator.engine.searchers.parego``) ranks by front first and scales by
rank instead; this file is the old one as it was at 645f517, so the benchmark can run both in one go.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

RHO = 0.05  # ParEGO's augmentation: small enough that the max term decides, large enough to break its ties


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


__all__ = ["scalarize"]
