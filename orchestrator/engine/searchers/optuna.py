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

Running trials are Optuna's ``RUNNING`` trials. With ``search.liar`` worst, mean or best the sampler
sees each of them as a completed trial with the liar's loss (``PendingAwareTPESampler``): among the
good or bad trials as that loss ranks, and towards the start-up phase, as ``tpe`` counts them
(``SpaceSearcher.in_startup``); ``off`` leaves them out. Sequentially nothing runs at a suggestion and
the sampler is Optuna's ``TPESampler``, draw for draw.

A trial asked whose values repeat a known trial's (``SpaceSearcher._avoid_repeat``) stays running while the
sampler is asked again, seen with the worst completed loss, and a random draw is Optuna's ``RandomSampler``'s;
the repeated trials then end as failed, out of the model.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Container, Iterator, Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from orchestrator.engine.backends.optuna import encode, sample
from orchestrator.errors import OrchestratorError

from . import unsupported_liar
from .base import DRAWN, Budgets, Loss, SpaceSearcher, Vector, lie, lie_vector, stopped_below

optuna.logging.set_verbosity(optuna.logging.WARNING)

Lie = float | tuple[float, ...]  # a running trial's loss, or its loss per objective
VIOLATION = "violation"  # the one constraint value an Optuna trial gets: ``StudyVersion.violation`` (<= 0 feasible)


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Optuna's experimental features used here (multivariate and group TPE, ``tell``) without their warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


class _StudyWithLies:
    """A study as a sampler reads it, with some running trials completed at a lie: ``lies`` maps their numbers
    to the loss each counts with. Everything else is the study's own.

    Read from Optuna 5.0.0: ``TPESampler`` (its start-up count, its group search space and its Parzen
    estimators) reads a study's trials through the private ``Study._get_trials`` only, which is the one hook
    here; the other attributes it reads (directions, study id) are delegated.
    """

    def __init__(self, study: optuna.Study, lies: Mapping[int, Lie]):
        self._study = study
        self._lies = lies
        self._lied: dict[int, FrozenTrial] = {}  # completed copies, made once per suggestion

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _lied_copy(self, trial: FrozenTrial) -> FrozenTrial:
        if trial.number not in self._lied:
            loss = self._lies[trial.number]
            losses = {"values": list(loss)} if isinstance(loss, tuple) else {"value": loss}
            lied = optuna.trial.create_trial(params=trial.params, distributions=trial.distributions, **losses)
            lied.number = trial.number  # Optuna's TPE weighs and orders trials by number
            self._lied[trial.number] = lied
        return self._lied[trial.number]

    def _get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        read = None if states is None else (*states, TrialState.RUNNING)
        trials = self._study._get_trials(deepcopy=deepcopy, states=read, use_cache=use_cache)
        wanted = (lambda _: True) if states is None else states.__contains__
        return [
            self._lied_copy(t) if t.number in self._lies and wanted(TrialState.COMPLETE) else t
            for t in trials
            if t.number in self._lies or wanted(t.state)
        ]


class PendingAwareTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE that sees the running trials numbered in ``lies`` as completed with those losses (set before
    each ``ask``): among the good or bad trials as each loss ranks, and towards the start-up phase. With no lies
    it is ``TPESampler`` itself. Optuna's own ``constant_liar`` stays off: it ranks a running trial after every
    completed one whatever the liar, and leaves it out of the start-up count."""

    def __init__(self, **settings: Any):
        super().__init__(constant_liar=False, **settings)
        self.lies: dict[int, Lie] = {}

    def _view(self, study: optuna.Study) -> optuna.Study:
        return _StudyWithLies(study, self.lies) if self.lies else study  # type: ignore[return-value]

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return super().infer_relative_search_space(self._view(study), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return super().sample_relative(self._view(study), trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return super().sample_independent(self._view(study), trial, param_name, param_distribution)


class OptunaSearcher(SpaceSearcher):
    """Optuna TPE over a ``StudyVersion``'s params, warm-started from ``(config, loss)`` pairs."""

    _derived = ("_study", "_sampler", "_trials", "_budget")

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
        with _quiet_experimental():
            self._sampler = PendingAwareTPESampler(seed=seed, n_startup_trials=startup, multivariate=True, group=True)
        directions = ["minimize"] * len(self.version.goals)
        self._study = optuna.create_study(directions=directions, sampler=self._sampler)
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
            else:  # running: the sampler sees it with the liar's loss
                self._add(values, TrialState.RUNNING)
                self._trials[trial_id] = len(self._study.get_trials(deepcopy=False)) - 1

    def _add(
        self, config: Mapping[str, Any], state: TrialState, loss: Loss | None = None, rungs: Budgets | None = None
    ) -> None:
        params, dists = encode(self.version.params, config)
        values, violation = self._split(loss)
        trial = optuna.trial.create_trial(
            params=params, distributions=dists, values=values, state=state, intermediate_values=self._reports(rungs)
        )
        if violation is None and rungs and self.version.constraints:  # stopped early: its last rung's violation
            violation = self._split(rungs[max(rungs)])[1]
        if violation is not None and self.version.constraints:
            trial.set_constraint(VIOLATION, violation)
        self._study.add_trial(trial)

    def _split(self, loss: Loss | None) -> tuple[list[float] | None, float | None]:
        """A loss as Optuna takes it: the values to minimise and, with constraints, the violation (a constraint
        value: <= 0 is feasible, as ``StudyVersion.violation`` is 0 then)."""
        if loss is None:
            return None, None
        if isinstance(loss, tuple):
            return list(loss[:-1]), loss[-1]
        return [loss], None

    def _reports(self, rungs: Budgets | None) -> dict[int, float] | None:
        """A stopped trial's losses at its rungs as Optuna's intermediate values (its TPE ranks pruned trials by the
        rung reached, then the loss there). Optuna keeps none for several objectives: its pruned trials then rank
        after every completed one, in no order among themselves."""
        if not rungs or self.version.multi_objective:
            return None
        return {rung: loss[0] if isinstance(loss, tuple) else loss for rung, loss in rungs.items()}

    def _tell_stopped(self, trial_id: str, budgets: Budgets) -> None:
        """End a running trial that ASHA stopped below the fitted budget: pruned, its losses at its rungs reported."""
        number = self._trials.pop(trial_id, None)
        if number is None:
            return
        trial = self._live_trial(number)  # Optuna reports on a live trial only
        for rung, loss in sorted((self._reports(budgets) or {}).items()):
            trial.report(loss, rung)
        violation = self._split(budgets[max(budgets)])[1] if budgets else None
        if violation is not None and self.version.constraints:
            trial.set_constraint(VIOLATION, violation)
        with _quiet_experimental():
            self._study.tell(number, state=TrialState.PRUNED)

    def _live_trial(self, number: int) -> optuna.Trial:
        return optuna.trial.Trial(self._study, self._study.get_trials(deepcopy=False)[number]._trial_id)

    def _tell(self, trial_id: str, loss: Loss | None) -> None:
        """End a running trial of the study: completed at ``loss``, or failed (left out of the model) with None."""
        number = self._trials.pop(trial_id, None)
        if number is None:
            return
        values, violation = self._split(loss)
        if violation is not None and self.version.constraints:
            self._live_trial(number).set_constraint(VIOLATION, violation)
        with _quiet_experimental():
            self._study.tell(number, values, state=TrialState.COMPLETE if loss is not None else TrialState.FAIL)

    def _completed_losses(self) -> list[Any]:
        """The losses of the study's completed trials (at the fitted budget): numbers, or with several objectives
        or constraints vectors (the losses, then a violation of 0: what a lie is made of)."""
        trials = self._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not self.several:
            return [t.value for t in trials if t.value is not None]
        return [(*t.values, 0.0) for t in trials if t.values is not None]

    def _lie(self, losses: list[Any], liar: str) -> Lie | None:
        """``search.liar``'s loss for ``losses`` (``_completed_losses``): a number, or with several objectives one per
        objective (``lie_vector``), what Optuna's trials take as ``values``."""
        if not self.several:
            return lie(losses, liar)
        lied: Vector | None = lie_vector(losses, liar)
        if lied is None:
            return None
        return lied[:-1] if self.version.multi_objective else lied[0]

    def _lies(self, losses: list[Any] | None = None) -> dict[int, Lie]:
        """The loss each running trial of the study counts with at the next suggestion (``search.liar``): the
        worst, mean or best loss completed at the fitted budget (``losses``, when read already); none with ``off``
        or before any loss."""
        lied = self._lie(self._completed_losses() if losses is None else losses, self.version.search.liar)
        return {} if lied is None else dict.fromkeys(self._trials.values(), lied)

    def _ask(self, sampler: optuna.samplers.BaseSampler | None = None) -> tuple[optuna.Trial, dict[str, Any]]:
        """A new trial of the study and its values, drawn by the study's sampler or by ``sampler``."""
        own = self._study.sampler
        self._study.sampler = sampler or own
        try:
            with _quiet_experimental():
                trial = self._study.ask()
                return trial, sample(self.version.params, trial)
        finally:
            self._study.sampler = own

    def _follow_budget(self) -> None:
        """Rebuild the study when the budget to fit on has moved (a rung gathered enough trials)."""
        if self.rungs and self.model_budget() != self._budget:
            self._build()

    # ------------------------------------------------------------------ Ray Tune API

    def _suggest(self, trial_id: str) -> dict[str, Any] | None:
        seed = self._next_seed()
        losses = self._completed_losses()
        self._sampler.lies = self._lies(losses)
        # As the sampler counts: scored trials, and running ones that count with a lie.
        startup = self.n_scored + len(self._sampler.lies) < self.version.search.startup_trials
        repeated: list[int] = []  # trials asked whose values repeat a known trial's: they end as failed
        worst = self._lie(losses, "worst")

        def ask_again(_repeat: dict[str, Any], _seed: int) -> dict[str, Any]:
            """The sampler again (its own generator moves on), the repeat counted as running at the worst loss."""
            nonlocal trial
            repeated.append(trial.number)
            if worst is not None:
                self._sampler.lies = {**self._sampler.lies, trial.number: worst}
            trial, again = self._ask()
            return again

        def draw(draw_seed: int) -> dict[str, Any]:
            nonlocal trial
            repeated.append(trial.number)
            trial, drawn = self._ask(optuna.samplers.RandomSampler(seed=draw_seed))
            return drawn

        try:
            trial, values = self._ask()
            values, drawn = self._avoid_repeat(values, seed, ask_again, draw)
        finally:
            self._sampler.lies = {}
        with _quiet_experimental():
            for number in repeated:
                self._study.tell(number, state=TrialState.FAIL)
        self._trials[trial_id] = trial.number
        return self._issue(trial_id, values, "startup" if startup else DRAWN if drawn else "optuna_tpe", seed)

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
