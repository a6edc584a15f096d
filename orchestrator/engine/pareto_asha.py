"""Early stopping on several objectives: ASHA whose rungs promote by non-dominated sorting (MO-ASHA).

Schmucker et al. 2021 ("Multi-objective Asynchronous Successive Halving") keep ASHA's rungs and asynchrony and
replace its one-metric cut with a multi-objective ranking. Here, as in Ray Tune's ASHA, a trial is judged when it
first reports at or past a rung: among every trial recorded at that rung (itself included, ``n`` of them) it
continues when its place is within the first ``ceil(n / reduction_factor)``, else it stops. The places are
(``rung_order``):

* feasible trials first (a broken constraint puts a trial after every feasible one, the less broken the earlier:
  ``StudyVersion.violation``), then
* the non-dominated front (NSGA-II's fast non-dominated sort of the objectives' losses),
* within a front the larger hypervolume contribution first (``pareto.contributions``, SMS-EMOA's tie-break: the
  volume only that trial dominates, with each objective scaled to [0, 1] over the trials at the rung and the
  reference point 1.1 in each, ``CONTRIBUTION_REFERENCE``),
* then the order in which the trials reached the rung (and so among infeasible trials that break the constraints
  equally).

Why not NSGA-II's crowding distance (one of the two orders Schmucker et al. compare, the other an epsilon-net):
crowding puts the two ends of each objective first. With a cost fixed by the configuration (``params``,
``latency_ms``) one end is the cheapest trial whatever its accuracy, and the cut, a few places while a rung fills,
then falls on the middle of the front: the knee, where most of the hypervolume a search is judged by lies. On the
ConvNet-digits table (``python -m bench.multi_objective --seeds 200``: half the epochs of a 30-trial FIFO search,
``tpe``) MO-ASHA reached a median hypervolume ratio of 0.776 with contributions against 0.740 with crowding (means
0.689 and 0.650; 50 seeds: 0.803 and 0.637); it did not reach FIFO's with all the epochs (0.830, mean 0.814). The
volumes cost little in two objectives (a staircase); in three each member's is a hypervolume of the others, so only
the front the cut falls in is measured (``bench.multi_objective`` times one judgement at a rung of one front: in
three objectives about 0.02 s for 50 trials, 0.16 s for 100, 1.1-1.4 s for 200; in two 0.03 s for 200).

With one objective and no constraint this keeps the top ``1 / reduction_factor`` as ASHA does (ASHA interpolates a
percentile of the trials before it, so a borderline trial may go the other way; ties go to the trial that arrived
first). A result whose objectives are not all finite stops the trial at its rung and is not recorded: it is a failed
trial, no member of a front. Brackets are as with one objective (``engine.brackets``: Hyperband's proportions, in a
fixed cycle); the milestones are Ray's (``grace_period * reduction_factor**(k + s)`` in bracket ``s``).
``plan.asha_scheduler`` uses it when a space has several objectives or constraints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ray.tune.schedulers import TrialScheduler

from orchestrator.spaces.version import Constraint, Metric, Schedule

from .brackets import HyperbandAsha
from .pareto import contributions, ranks, unit_scaled
from .results import outcome_of

Vector = tuple[float, ...]  # one loss per objective, then the violation (``results.outcome_of``)


CONTRIBUTION_REFERENCE = 1.1  # per objective, scaled to [0, 1] over the rung: the extremes count a little


def rung_order(points: Sequence[Vector], cut: int | None = None) -> list[int]:
    """Every index of ``points`` (losses, then the violation, in the order they reached the rung), best first:
    feasibility and front (``pareto.ranks``), then within a feasible front the larger hypervolume contribution
    (``pareto.contributions`` over the rung's points scaled to [0, 1]), then arrival. With ``cut``, only the front
    that the first ``cut`` places end inside is ordered by contribution (the others by arrival): the first ``cut``
    are the same, and a rung of many trials on three objectives pays for one front's volumes, not all of them."""
    losses = [p[:-1] for p in points]
    rank = ranks(losses, [p[-1] for p in points])
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(rank):
        groups.setdefault(r, []).append(i)
    scaled = unit_scaled(losses)
    share = [0.0] * len(points)
    before = 0
    for r in sorted(groups):
        members = groups[r]
        straddles = cut is None or before < cut < before + len(members)
        before += len(members)
        if not straddles or len(members) < 2 or points[members[0]][-1] > 0:  # infeasible: broken alike, by arrival
            continue
        reference = (CONTRIBUTION_REFERENCE,) * len(scaled[0])
        for i, c in zip(members, contributions([scaled[i] for i in members], reference), strict=True):
            share[i] = c
    return sorted(range(len(points)), key=lambda i: (rank[i], -share[i], i))


def promoted(recorded: Mapping[str, Vector], trial_id: str, reduction_factor: float) -> bool:
    """Whether ``trial_id`` continues past a rung where ``recorded`` holds every trial judged there (itself included),
    in the order they arrived: within the first ``ceil(n / reduction_factor)`` of ``rung_order``."""
    ids = list(recorded)
    keep = math.ceil(len(ids) / reduction_factor)
    return rung_order([recorded[i] for i in ids], keep).index(ids.index(trial_id)) < keep


class ParetoBracket:
    """One bracket of MO-ASHA: Ray Tune's ASHA bracket (its milestones and its rule for when a trial is judged) whose
    cut is ``promoted``."""

    promote = staticmethod(promoted)  # the cut: (recorded, trial_id, reduction_factor) -> whether it continues

    def __init__(self, min_t: float, max_t: float, reduction_factor: float, s: int, stop_last_trials: bool = True):
        self.rf = reduction_factor
        rungs = int(np.log(max_t / min_t) / np.log(self.rf) - s + 1)
        self._rungs: list[tuple[float, dict[str, Vector]]] = [
            (min_t * self.rf ** (k + s), {}) for k in reversed(range(rungs))
        ]
        self._stop_last_trials = stop_last_trials

    def on_result(self, trial: Any, cur_iter: float, point: Vector | None) -> str:
        """CONTINUE or STOP for ``trial``'s result at ``cur_iter`` with losses and violation ``point`` (None: an
        objective not finite)."""
        for milestone, recorded in self._rungs:
            if cur_iter >= milestone and trial.trial_id in recorded and not self._stop_last_trials:
                break
            if cur_iter < milestone or trial.trial_id in recorded:
                continue
            if point is None:
                return TrialScheduler.STOP
            recorded[trial.trial_id] = point
            return TrialScheduler.CONTINUE if self.promote(recorded, trial.trial_id, self.rf) else TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def debug_str(self) -> str:
        rungs = (f"Iter {milestone:.3f}: {len(recorded)} trials" for milestone, recorded in self._rungs)
        return "Bracket: " + " | ".join(rungs)


class ParetoAsha(HyperbandAsha):
    """MO-ASHA as a Ray Tune scheduler: ``HyperbandAsha`` (its brackets and their proportions) whose brackets promote
    by ``rung_order`` of the objectives ``goals``, infeasible trials (``constraints``) last."""

    bracket_class = ParetoBracket

    def __init__(self, schedule: Schedule, goals: Sequence[Metric], constraints: Sequence[Constraint], **kwargs: Any):
        super().__init__(schedule, **kwargs)
        self._goals = tuple(goals)
        self._constraints = tuple(constraints)
        self._brackets = [
            self.bracket_class(schedule.grace_period, schedule.max_epochs, schedule.reduction_factor, s, True)
            for s in range(schedule.brackets)
        ]

    def _judged(self, result: Mapping[str, Any]) -> bool:
        return self._time_attr in result and all(goal.name in result for goal in self._goals)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if not self._judged(result):
            return TrialScheduler.CONTINUE
        if result[self._time_attr] >= self._max_t and self._stop_last_trials:
            action = TrialScheduler.STOP
        else:
            point = outcome_of(result, self._goals, self._constraints)
            action = self._trial_info[trial.trial_id].on_result(trial, result[self._time_attr], point)
        if action == TrialScheduler.STOP:
            self._num_stopped += 1
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if not self._judged(result):
            return
        bracket = self._trial_info[trial.trial_id]
        bracket.on_result(trial, result[self._time_attr], outcome_of(result, self._goals, self._constraints))
        del self._trial_info[trial.trial_id]

    def debug_string(self) -> str:
        return f"Using MO-ASHA: num_stopped={self._num_stopped}\n" + "\n".join(b.debug_str() for b in self._brackets)


__all__ = ["CONTRIBUTION_REFERENCE", "ParetoAsha", "ParetoBracket", "promoted", "rung_order"]
