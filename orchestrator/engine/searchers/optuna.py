"""Optuna's TPE (``search.algorithm: optuna_tpe``) as a Ray Tune searcher, warm-started from scored trials.

The surface is ``HyperoptSearcher``'s. The study lives in memory and holds the trials observed at
the budget the model fits on (``SpaceSearcher.model_budget``): carried and completed ones enter it
as completed trials (``study.add_trial``), new trials go through ask/tell and the space is sampled
define-by-run (``orchestrator.engine.backends.optuna``), so a conditional sub-space is only sampled
when its option is chosen (``group=True`` lets TPE model each sub-space). A running trial is told
its loss once it reaches that budget; one that ASHA stops below it, and a carried or completed trial
that stopped there, is a ``PRUNED`` trial with its losses per rung as intermediate values: Optuna's TPE
ranks pruned trials after every completed one (by the rung reached, then the loss there), as with its
own pruners. A trial that failed leaves the model.
When the fitted budget moves up (a higher rung gathered enough trials), the study is rebuilt on
it, as a resumed search rebuilds it from the carried and completed trials.

Running trials are Optuna's ``RUNNING`` trials: with ``search.liar: worst`` Optuna's own constant
liar (``TPESampler(constant_liar=True)``) models them among the bad trials, as if they had the
worst loss; ``off`` leaves them out. Optuna has no liar with a mean or best value.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from orchestrator.engine.backends.optuna import encode, sample
from orchestrator.errors import OrchestratorError

from . import unsupported_liar
from .base import Budgets, SpaceSearcher, stopped_below

optuna.logging.set_verbosity(optuna.logging.WARNING)


class OptunaSearcher(SpaceSearcher):
    """Optuna TPE over a ``StudyVersion``'s params, warm-started from ``(config, loss)`` pairs."""

    _derived = ("_study", "_trials", "_budget")

    # ------------------------------------------------------------------ optuna state

    def _build(self) -> None:
        search = self.version.search
        liar_problem = unsupported_liar(search.algorithm, search.liar)
        if liar_problem:
            raise OrchestratorError(f"search.liar: {liar_problem}")
        self._budget = self.model_budget()
        # A rebuilt (resumed, unpickled or moved up a rung) study gets a fresh seed so draws do not repeat.
        rebuilt = int(np.random.default_rng([self.seed, self._count, 1]).integers(2**31 - 1))
        seed = self.seed if self._count == 0 else rebuilt
        # On a rung the trials are fewer than at the end: start-up ends once the rung may be fitted on.
        startup = search.startup_trials
        if self._budget != self.full_budget:
            startup = min(startup, self.min_rung_trials)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=startup, multivariate=True, group=True, constant_liar=search.liar != "off"
            )
        self._study = optuna.create_study(direction="minimize", sampler=sampler)
        for config, budgets in self._scored():
            if self._budget in budgets:
                self._add(config, TrialState.COMPLETE, budgets[self._budget])
            elif stopped_below(budgets, self._budget):  # Optuna's TPE ranks it as pruned
                self._add(config, TrialState.PRUNED, rungs=budgets)
        self._trials: dict[str, int] = {}  # running trials of this study: trial id -> optuna trial number
        for trial_id, values in self._live.items():
            loss = self._live_rungs[trial_id].get(self._budget)
            if loss is not None:
                self._add(values, TrialState.COMPLETE, loss)
            else:  # running: Optuna's constant liar sees it
                self._add(values, TrialState.RUNNING)
                self._trials[trial_id] = len(self._study.get_trials(deepcopy=False)) - 1

    def _add(
        self, config: Mapping[str, Any], state: TrialState, loss: float | None = None, rungs: Budgets | None = None
    ) -> None:
        params, dists = encode(self.version.params, config)
        trial = optuna.trial.create_trial(
            params=params, distributions=dists, value=loss, state=state, intermediate_values=rungs
        )
        self._study.add_trial(trial)

    def _tell_stopped(self, trial_id: str, budgets: Budgets) -> None:
        """End a running trial that ASHA stopped below the fitted budget: pruned, its losses at its rungs reported."""
        number = self._trials.pop(trial_id, None)
        if number is None:
            return
        frozen = self._study.get_trials(deepcopy=False)[number]
        trial = optuna.trial.Trial(self._study, frozen._trial_id)  # Optuna reports on a live trial only
        for rung, loss in sorted(budgets.items()):
            trial.report(loss, rung)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            self._study.tell(number, state=TrialState.PRUNED)

    def _tell(self, trial_id: str, loss: float | None) -> None:
        """End a running trial of the study: completed at ``loss``, or failed (left out of the model) with None."""
        number = self._trials.pop(trial_id, None)
        if number is None:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            self._study.tell(number, loss, state=TrialState.COMPLETE if loss is not None else TrialState.FAIL)

    def _follow_budget(self) -> None:
        """Rebuild the study when the budget to fit on has moved (a rung gathered enough trials)."""
        if self.rungs and self.model_budget() != self._budget:
            self._build()

    # ------------------------------------------------------------------ Ray Tune API

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        seed = self._next_seed()
        startup = self.n_scored < self.version.search.startup_trials
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            trial = self._study.ask()
            values = sample(self.version.params, trial)
        self._trials[trial_id] = trial.number
        return self._issue(trial_id, values, "startup" if startup else "optuna_tpe", seed)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        super().on_trial_result(trial_id, result)
        loss = self._live_rungs.get(trial_id, {}).get(self._budget)
        if loss is not None:  # reached the fitted budget while running: an observation there
            self._tell(trial_id, loss)
            self._follow_budget()

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        budgets = self._finish(trial_id, result, error)
        if budgets is not None and stopped_below(budgets, self._budget):
            self._tell_stopped(trial_id, budgets)
        else:
            self._tell(trial_id, None if budgets is None else budgets.get(self._budget))
        self._follow_budget()
