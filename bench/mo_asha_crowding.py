"""The cut MO-ASHA made before 2026-12-07, kept as ``bench.multi_objective``'s baseline.

Within a front, NSGA-II's crowding distance (``engine.pareto.order``: the ends of each objective first, then the
emptiest parts of the front), where the product's rule (``engine.pareto_asha.rung_order``) puts the larger
hypervolume contribution first. The rest (feasibility, fronts, arrival, ``ceil(n / reduction_factor)`` kept) is the
product's, so the benchmark runs both in one go.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from orchestrator.engine.pareto import order
from orchestrator.engine.pareto_asha import ParetoAsha, ParetoBracket


def promoted(recorded: Mapping[str, tuple[float, ...]], trial_id: str, reduction_factor: float) -> bool:
    """Whether ``trial_id`` is within the first ``ceil(n / reduction_factor)`` of ``pareto.order`` at its rung."""
    ids = list(recorded)
    ranked = order([recorded[i][:-1] for i in ids], [recorded[i][-1] for i in ids])
    return ranked.index(ids.index(trial_id)) < math.ceil(len(ids) / reduction_factor)


class CrowdingBracket(ParetoBracket):
    promote = staticmethod(promoted)


class CrowdingAsha(ParetoAsha):
    """MO-ASHA with crowding as the tie-break within a front."""

    bracket_class = CrowdingBracket
