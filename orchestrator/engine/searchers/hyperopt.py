"""HyperOpt TPE (``search.algorithm: tpe``) or random search (``random``), warm-started from scored trials.

Ray's own ``HyperOptSearch`` cannot take scored prior trials (its ``add_evaluated_point`` is not
implemented and ``points_to_evaluate`` re-runs points). This searcher keeps every trial's encoded
draw (``orchestrator.engine.backends.hyperopt``) and its losses per budget, and hands
``tpe.suggest`` a fresh ``Trials`` of finished documents for each suggestion: the trials observed at
the budget the model fits on (``SpaceSearcher.model_budget``), those ASHA stopped below it with the
worst loss observed there (``_stopped_below``: in TPE's bad set, its good set made of trials that
reached the budget), the running ones with the liar's loss, and past ``model_trials`` observations a
thinned selection of them (``model_selection``), so 10,000 carried trials load in well under a
second, TPE is past its start-up phase from the first suggestion, and a suggestion stays fast
however long the history.

The model (``model``): TPE's good and bad densities are hyperopt's Parzen estimators combined jointly
(``joint_tpe``: one mixture of product kernels per group of labels, one kernel width on a grid, candidates drawn
around one good trial at a time and ranked by the joint ratio), with 10 % of the observations (at most 25) as the
good set (``good_fraction``). ``model = "univariate"`` with ``good_fraction = None`` is hyperopt's own
``tpe.suggest`` (each label on its own, ``ceil(0.25 sqrt(n))`` good trials), the model before, kept for the
benchmarks.

Pending trials: hyperopt's ``tpe.suggest`` gives a document without a loss (a running trial) an
infinite one, so before ``search.liar`` this searcher already lied "worst" about running trials;
``worst`` keeps that ranking with a finite value, ``off`` now leaves them out. ``tpe.suggest`` counts running
trials towards its start-up phase too, and so does this searcher (``SpaceSearcher.in_startup``).

A suggestion that repeats a known trial's values (``SpaceSearcher._avoid_repeat``) is asked again of TPE with
the repeat one more document at the worst loss fitted on (``_tpe_without``); random draws are ``rand.suggest``'s.

Several objectives, or constraints: TPE models one loss, so each suggestion turns the observations' vectors into
one (``parego``: the trial's non-dominated front, then ParEGO's augmented Chebyshev function of its objectives'
ranks with a new random weight vector per suggestion inside the front; every trial that breaks a constraint after
every one that keeps them); the budget it fits on, the liar, the trials stopped below it and the repeat rule then act
on that loss as on one metric.
``random`` draws as with one objective.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from hyperopt import JOB_STATE_DONE, STATUS_OK, Domain, Trials, rand, tpe

from orchestrator.engine.backends.hyperopt import axes, decode, encode, to_hyperopt, trial_misc

from . import joint_tpe, parego
from .base import DRAWN, Budgets, SpaceSearcher, lie, stopped_below

DEFAULT_GAMMA = 0.25  # hyperopt's ``tpe.suggest`` default
GOOD_CAP = 25  # hyperopt's cap on the trials TPE calls good (``ap_split_trials``'s ``gamma_cap``)


def good_count(n: int, gamma: float, fraction: float | None = None) -> int:
    """How many of ``n`` observations TPE models as good, at most 25: hyperopt's ``ceil(gamma * sqrt(n))``, or
    ``ceil(fraction * n)`` when a fraction is given (Optuna's rule, with 0.1)."""
    return min(math.ceil(fraction * n if fraction is not None else gamma * math.sqrt(n)), GOOD_CAP)


def model_selection(losses: np.ndarray, limit: int, n_good: int) -> np.ndarray:
    """The positions (ascending) of at most ``limit`` of ``losses`` (in the order observed) for TPE to fit on.

    All of them up to ``limit``. Past it: the ``n_good`` best (TPE's good set, unchanged), the newest quarter
    of ``limit`` (at full weight under hyperopt's linear forgetting) and an even thinning of the others, so
    the density of the rest keeps its shape with fewer, evenly spread components."""
    n = len(losses)
    if n <= limit:
        return np.arange(n)
    n_good = min(n_good, limit)
    best = np.argpartition(losses, n_good - 1)[:n_good] if n_good else np.empty(0, dtype=int)
    keep = np.zeros(n, dtype=bool)
    keep[best] = True
    keep[n - limit // 4 :] = True
    older = np.flatnonzero(~keep)
    spare = limit - int(keep.sum())
    if spare > 0:
        keep[older[np.linspace(0, len(older) - 1, spare).round().astype(int)]] = True
    return np.flatnonzero(keep)


class HyperoptSearcher(SpaceSearcher):
    """TPE (or random) over a ``StudyVersion``'s params, warm-started from ``(config, loss)`` pairs."""

    _derived = ("_domain", "_axes", "_miscs", "_live_tids")
    # The model TPE fits: "joint" (``joint_tpe``: hyperopt's estimators as one mixture of product kernels per group
    # of labels), or "univariate" (hyperopt's ``tpe.suggest``: each label on its own; the model before).
    model: ClassVar[str] = "joint"
    # The share of observations TPE calls good (at most 25), or None for hyperopt's ``ceil(gamma * sqrt(n))``.
    good_fraction: ClassVar[float | None] = 0.1
    # Extra keyword settings of ``hyperopt.tpe.suggest`` (gamma, n_EI_candidates, prior_weight; the joint model
    # takes the last two, and gamma when ``good_fraction`` is None): a subclass may set them (the search-quality
    # benchmark compares settings this way); the product uses the defaults.
    tpe_settings: ClassVar[Mapping[str, Any]] = {}
    # Observations past which TPE fits on a selection (``model_selection``); None: always on all of them.
    # hyperopt's cost is linear in the trials it fits on (Python loops included): 1,000 keeps a suggestion near
    # 30 ms on 2 cores with 10,000 carried trials, at no cost in quality (``bench.search_at_scale``).
    model_trials: ClassVar[int | None] = 1000
    # One loss per observation's vector with several objectives or constraints, given the suggestion's weights
    # (``parego.scalarize``); a subclass may swap it (``bench.multi_objective`` runs the rule it replaced beside it).
    scalarize: ClassVar[Callable[[Sequence[Sequence[float]], np.ndarray], list[float]]] = staticmethod(parego.scalarize)

    # ------------------------------------------------------------------ hyperopt state

    def _build(self) -> None:
        space = self.version.params
        self._domain = Domain(lambda _: 0.0, to_hyperopt(space))
        self._axes = axes(space)
        # Trial ids in scoring order, then the running trials: TPE's linear forgetting weighs by this order.
        self._miscs = [trial_misc(tid, encode(space, config)) for tid, (config, _) in enumerate(self._scored())]
        self._live_tids: dict[str, int] = {}
        self._next_tid = len(self._miscs)
        for trial_id in self._live:
            self._live_tids[trial_id] = self._take_tid()

    def _take_tid(self) -> int:
        self._next_tid += 1
        return self._next_tid - 1

    def _misc_of(self, trial_id: str) -> dict[str, Any]:
        tid = self._live_tids[trial_id]
        return trial_misc(tid, encode(self.version.params, self._live[trial_id]))

    def _model_trials(self, seed: int | None = None) -> tuple[Trials, float]:
        """The finished documents TPE fits on for the next suggestion, and the ``gamma`` that keeps its good set.
        With several objectives or constraints each observation's vector is turned into one loss first
        (``scalarize``: its front, then Chebyshev weights drawn from ``seed``, the next suggestion's by default)."""
        budget = self.model_budget()
        scored = list(zip(self._miscs, self._scored(), strict=True))
        observed: list[tuple[dict[str, Any], Any]] = [(misc, b[budget]) for misc, (_, b) in scored if budget in b]
        observed += [(self._misc_of(t), rungs[budget]) for t, rungs in self._live_rungs.items() if budget in rungs]
        if self.several:
            w = parego.weights(self._next_seed() if seed is None else seed, len(self.version.goals))
            observed = list(zip([m for m, _ in observed], self.scalarize([v for _, v in observed], w), strict=True))
        lied = lie([loss for _, loss in observed], self.version.search.liar)
        pending = [] if lied is None else [(self._misc_of(t), lied) for t in self.pending_at(budget)]
        modelled = observed + self._stopped_below(scored, budget, observed)
        # In suggestion order: hyperopt's linear forgetting weighs the newest most.
        order = np.argsort([misc["tid"] for misc, _ in modelled], kind="stable")
        losses = np.array([loss for _, loss in modelled])[order]
        gamma = float(self.tpe_settings.get("gamma", DEFAULT_GAMMA))
        n_all = len(modelled) + len(pending)
        n_good = min(good_count(n_all, gamma, self.good_fraction), len(observed))  # trials that reached the budget
        kept = [modelled[i] for i in order[model_selection(losses, self.model_trials or len(losses), n_good)]]
        if len(kept) < len(modelled) or n_good != good_count(n_all, gamma):  # that good set out of fewer trials
            gamma = (n_good - 0.5) / math.sqrt(len(kept) + len(pending))
        trials = Trials()
        trials._dynamic_trials = [
            {"tid": misc["tid"], "misc": misc, "state": JOB_STATE_DONE, "result": {"loss": loss, "status": STATUS_OK}}
            for misc, loss in kept + pending
        ]
        trials.refresh()
        return trials, gamma

    @staticmethod
    def _stopped_below(
        scored: list[tuple[dict[str, Any], tuple[dict[str, Any], Budgets]]],
        budget: int,
        observed: list[tuple[dict[str, Any], float]],
    ) -> list[tuple[dict[str, Any], float]]:
        """The scored trials ASHA stopped below ``budget`` (``base.stopped_below``), each with the worst loss
        observed there: they rank after every trial that reached it (as Optuna's TPE ranks pruned trials), so TPE's
        bad density learns where trials do not get that far, while its good set stays made of trials that did."""
        if not observed:
            return []
        worst = max(loss for _, loss in observed)
        return [(misc, worst) for misc, (_, b) in scored if stopped_below(b, budget)]

    # ------------------------------------------------------------------ Ray Tune API

    def _draw(self, tid: int, seed: int) -> dict[str, Any]:
        """Values drawn at random from the space (hyperopt's ``rand.suggest``)."""
        return decode(self.version.params, rand.suggest([tid], self._domain, Trials(), seed)[0]["misc"]["vals"])

    def _tpe(self, tid: int, trials: Trials, gamma: float, seed: int) -> dict[str, Any]:
        """TPE's values fitted on ``trials``."""
        settings = {**self.tpe_settings, "gamma": gamma}
        if self.model == "joint":
            observations = [
                joint_tpe.Observation(doc["misc"]["vals"], doc["result"]["loss"])
                for doc in sorted(trials._dynamic_trials, key=lambda doc: doc["tid"])
            ]
            vals = joint_tpe.suggest(
                self._axes,
                observations,
                good_count(len(observations), gamma),
                seed,
                n_candidates=int(settings.get("n_EI_candidates", joint_tpe.DEFAULT_CANDIDATES)),
                prior_weight=float(settings.get("prior_weight", joint_tpe.DEFAULT_PRIOR_WEIGHT)),
            )
            return decode(self.version.params, vals)
        # The searcher decides the start-up phase (``in_startup``), so TPE never falls back to random itself.
        docs = tpe.suggest([tid], self._domain, trials, seed, n_startup_jobs=0, **settings)
        return decode(self.version.params, docs[0]["misc"]["vals"])

    def _tpe_without(self, tid: int, trials: Trials, gamma: float, repeat: dict[str, Any], seed: int) -> dict[str, Any]:
        """TPE again with ``repeat`` one more observation in ``trials``, at the worst loss there: the density
        ratio falls at the repeated configuration (``SpaceSearcher._avoid_repeat``)."""
        worst = max(doc["result"]["loss"] for doc in trials._dynamic_trials)
        fake = self._next_tid + len(trials._dynamic_trials)  # a tid no trial has: the newest, at full weight
        misc = trial_misc(fake, encode(self.version.params, repeat))
        result = {"loss": worst, "status": STATUS_OK}
        trials._dynamic_trials.append({"tid": fake, "misc": misc, "state": JOB_STATE_DONE, "result": result})
        trials.refresh()
        return self._tpe(tid, trials, gamma, seed)

    def _suggest(self, trial_id: str) -> dict[str, Any] | None:
        search = self.version.search
        tid = self._take_tid()
        seed = self._next_seed()
        startup = self.in_startup()
        modelled = search.algorithm != "random" and not startup
        ask_again = None
        if modelled:
            trials, gamma = self._model_trials(seed)
            values = self._tpe(tid, trials, gamma, seed)
            if trials._dynamic_trials:
                ask_again = functools.partial(self._tpe_without, tid, trials, gamma)
        else:
            values = self._draw(tid, seed)
        values, drawn = self._avoid_repeat(values, seed, ask_again, lambda draw_seed: self._draw(tid, draw_seed))
        self._live_tids[trial_id] = tid
        suggested_by = DRAWN if search.algorithm == "random" else "startup" if startup else DRAWN if drawn else "tpe"
        return self._issue(trial_id, values, suggested_by, seed)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        tid = self._live_tids.pop(trial_id, None)
        values = self._live.get(trial_id)
        if self._finish(trial_id, result, error) is not None and tid is not None and values is not None:
            self._miscs.append(trial_misc(tid, encode(self.version.params, values)))
