"""Asynchronous Hyperband with Hyperband's bracket sizes: which bracket a new trial joins.

Ray Tune's ``ASHAScheduler(brackets=...)`` draws a new trial's bracket at random with weight ``e**(its rungs)``:
with 4 brackets the one that never stops a trial gets ~3% of them, the most aggressive one ~64%. Hyperband
(Li et al. 2018, and Optuna's ``HyperbandPruner``) gives every bracket the same budget in epochs instead, so a
bracket that stops trials after ``s`` rungs holds ``n_s = ceil(B * eta**s / (s + 1))`` trials, ``B`` being the
number of brackets and ``eta`` the reduction factor: 27, 12, 6 and 4 of every 49 trials with 4 brackets and
``eta`` 3 (55%, 24%, 12%, 8%), so slow starters reach the full budget more often when early ranking misleads.

``HyperbandAsha`` is Ray's scheduler with that allocation, made deterministic: trials join the brackets in a
fixed cycle of ``sum(n_s)`` places, each bracket ``n_s`` times, evenly spread (``weighted_cycle``): with 4
brackets the never-stopping one gets its first trial 7th and then one in every 12 or 13. The same search meets
the same brackets, and the state is a counter that Ray Tune's save/restore (a pickle of the scheduler) keeps.
Everything else (rungs, cut-offs, stopping) is Ray's. ``plan.asha_scheduler`` uses it with more than one bracket
(``schedule.brackets``); one bracket is Ray's stock ``ASHAScheduler``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from ray.tune.schedulers import ASHAScheduler

from orchestrator.spaces.version import Schedule


def bracket_sizes(schedule: Schedule) -> tuple[int, ...]:
    """Hyperband's trials per bracket in one cycle, for Ray's bracket order (the most aggressive first): bracket
    ``b`` stops trials at ``s = len(asha_milestones()) - b`` rungs before ``max_epochs`` and holds
    ``ceil(brackets * reduction_factor**s / (s + 1))`` trials."""
    rungs = len(schedule.asha_milestones())
    stopping_rungs = (max(rungs - b, 0) for b in range(schedule.brackets))
    return tuple(math.ceil(schedule.brackets * schedule.reduction_factor**s / (s + 1)) for s in stopping_rungs)


def weighted_cycle(sizes: tuple[int, ...]) -> tuple[int, ...]:
    """Bracket indices for one cycle of ``sum(sizes)`` trials, index ``b`` appearing ``sizes[b]`` times, evenly
    spread: the ``j``-th place of bracket ``b`` is at ``(j + 1/2) / sizes[b]`` of the cycle, and the places are
    taken in that order (ties by bracket index), so the trials between two of a bracket's are within one of
    ``sum(sizes) / sizes[b]``."""
    places = sorted((Fraction(2 * j + 1, 2 * size), b) for b, size in enumerate(sizes) for j in range(size))
    return tuple(b for _, b in places)


class HyperbandAsha(ASHAScheduler):
    """Ray Tune's ``ASHAScheduler`` whose new trials join brackets in Hyperband's proportions, in a fixed cycle
    (``bracket_sizes``, ``weighted_cycle``) rather than Ray's random draw weighted ``e**(rungs)``."""

    def __init__(self, schedule: Schedule, **kwargs: Any):
        super().__init__(brackets=schedule.brackets, **kwargs)
        self._cycle = weighted_cycle(bracket_sizes(schedule))
        self._added = 0  # trials added so far: the next one's place in the cycle

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if not self._metric or not self._metric_op:
            raise ValueError(f"{type(self).__name__} needs a metric and a mode (the tuner's or its own)")
        self._trial_info[trial.trial_id] = self._brackets[self._cycle[self._added % len(self._cycle)]]
        self._added += 1
