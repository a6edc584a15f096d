"""What every searcher over a ``StudyVersion`` shares, whatever library proposes the values.

A searcher is a Ray Tune ``Searcher`` built from ``(version, prior, seed)``: ``prior`` holds
scored earlier trials as ``(config, loss)`` pairs (values, lower is better), or
``(config, loss, history)`` where ``history`` maps each epoch to the loss the trial reported
then, that the library learns from before its first suggestion. Its state is saved as JSON
(values, never pickles), so a resumed search rebuilds the library's state from the prior and
the completed trials, and pending trials survive a save/restore or a pickle round trip.

**Budgets.** Each scored trial holds its loss per *budget*: an ASHA rung epoch (``grace_period *
reduction_factor**k`` below ``max_epochs``, where ASHA compares trials) or ``max_epochs`` itself
(the full budget). A trial's loss at a rung is the one of its first result at or past that epoch, as
ASHA records it. With ASHA the library fits on the highest budget with at least
``search.min_rung_trials`` observations (default d + 2 for d searched parameters, the rule of BOHB,
Falkner et al. 2018), so an early-stopped trial counts at the rungs it reached, never as a final
result; at that budget, a trial ASHA stopped below it ranks after every trial that reached it (as
Optuna's TPE ranks pruned trials: each library's searcher says how), so the model still learns where
trials do not get that far. With ``schedule.brackets`` > 1 (asynchronous Hyperband) some trials are
judged later or never stopped, and the full budget gathers observations sooner. A prior without
history counts at the full budget only, as a finished trial. With FIFO there is one budget,
``max_epochs``, and every scored trial is final.

**Pending trials.** Trials that run while a suggestion is made (only with concurrency > 1) are
treated as observed with a lie (constant liar, ``search.liar``): the worst, mean or best loss
observed at the fitted budget, or left out (``off``). Whether they count towards the start-up phase
is the library's own rule: hyperopt's ``tpe.suggest`` counts running trials, and so does
``in_startup`` (the hyperopt searcher's), so the first ``search.startup_trials`` suggestions are random
whatever the concurrency; Optuna's ``TPESampler`` counts completed trials only, and the Optuna searcher's
sampler sees a running trial as completed with the lie, so it counts them too (but not with ``off``).

**Repeats.** A trial's values are a configuration; with ``search.repeats`` false (the default) a suggestion
avoids the configuration of every carried, completed and running trial (``is_repeat``): on a space of
choices and integers a TPE converges on the best configuration it knows and proposes it again, which
trains what is known once more. The library is asked again with the repeat counted as a poor result
(``REPEAT_RETRIES`` times), then values are drawn at random (``REPEAT_DRAWS`` times); once every
configuration of a finite space is known (``SearchSpace.size``), or every draw repeats, the repeat is
suggested. Configurations are told apart as the space sees them (``SearchSpace.configuration_key``). A
trial that ended without a score (failed, or stopped before its first rung) may be suggested again.
Continuous values practically never repeat, so the rule changes nothing there.

**Peers.** Another live search of the same study (a teammate's, started at the same time) runs trials this
searcher would otherwise repeat. ``watch_peers`` gives it a source of their trials as the tracking store has them
(``engine.peers.StudyPeers``, read in the background): at each suggestion their running trials count as this
searcher's own running ones (the liar, start-up, repeats; keys ``PEER`` + the values as JSON) and their newly
finished ones as carried trials; each suggestion is a claim (``PeerSource.claim``): a configuration another
search claimed at the same moment is given up. What a peer snapshot holds is never saved: a resumed search reads
the store again.

**Replays.** ``replay_first`` queues trials to suggest again, as they ran (values and seed), before any
new suggestion: ``orchestrator resume`` continues the trials a dead driver left running this way. A
replayed trial is the searcher's own suggestion from then on (running, then scored as it ends).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Protocol

import numpy as np
from ray.tune.search import Searcher

from orchestrator.engine.results import check_reported, metric_value, outcome_value
from orchestrator.spaces import StudyVersion
from orchestrator.spaces.carry import CarriedTrial, Outcome
from orchestrator.spaces.version import Schedule


class PeerSource(Protocol):
    """Where a searcher reads other live searches' trials (``engine.peers.StudyPeers``)."""

    def snapshot(self) -> Any:
        """The latest ``PeerTrials`` (``running``: values as JSON -> values; ``finished``: run id -> carried trial),
        a new object whenever they changed; None before the first read."""

    def claim(self, values: dict[str, Any], pending: list[dict[str, Any]]) -> bool:
        """Publish ``pending`` (``values`` the newest); False when another live search claimed ``values`` too."""


# Scored earlier trials as warm start carries them (``spaces.carry``): (config, loss) or (config, loss, history), or
# with several objectives or constraints (config, loss, history, Outcome).
Prior = Sequence[CarriedTrial]
# A trial's loss at a budget: one number, or with several objectives or constraints a vector (``Vector``).
Loss = float | tuple[float, ...]
Vector = tuple[float, ...]  # one loss per objective (``Metric.loss``), then the violation (``StudyVersion.violation``)
Budgets = dict[int, Loss]  # budget (a rung epoch, or max_epochs for the full budget) -> the loss there
EPOCH_KEY = "training_iteration"  # what Ray Tune's ASHA counts its rungs in (``plan.build_tuner``)
REPLAYED = "resume"  # ``suggested_by`` of a replayed trial
DRAWN = "random"  # ``suggested_by`` of values drawn at random (random search, or in place of a repeat)
REPEAT_RETRIES = 8  # times the library is asked again, the repeat counted as a poor result, before random draws
REPEAT_DRAWS = 100  # random draws for values no trial has, before a repeat is suggested after all
PEER = "peer:"  # the key prefix of another live search's running trial among ``_live``
CLAIM_RETRIES = 4  # suggestions given up to other live searches that chose alike at the same moment


@dataclass(frozen=True)
class Replay:
    """A trial to suggest again: its values and seed as they ran, and keys to add to its config as they are."""

    values: dict[str, Any]
    seed: int
    extra: Mapping[str, Any] = field(default_factory=dict)


def budgets_of(schedule: Schedule) -> tuple[int, ...]:
    """The epochs where the searcher keeps a trial's loss, ascending: ASHA's rungs below ``max_epochs``, then
    ``max_epochs`` (the full budget). FIFO compares trials at the end only: ``(max_epochs,)``.

    The rungs are Ray Tune's ``ASHAScheduler`` milestones (``Schedule.asha_milestones``); a trial is judged at its
    first result at or past a milestone, so a fractional milestone is rounded up."""
    if schedule.scheduler != "asha":
        return (schedule.max_epochs,)
    rungs = dict.fromkeys(math.ceil(milestone - 1e-9) for milestone in schedule.asha_milestones())
    return (*rungs, schedule.max_epochs)


def stopped_below(budgets: Budgets, budget: int) -> bool:
    """Whether a scored trial's losses per budget say ASHA stopped it below ``budget``: it has losses, none at
    ``budget``, and none past it (the searchers rank such a trial after every trial that reached ``budget``)."""
    return bool(budgets) and budget not in budgets and max(budgets) < budget


def record_rungs(budgets: Budgets, rungs: Iterable[int], epoch: int, loss: float) -> None:
    """Keep ``loss`` (reported at ``epoch``) as the loss at each rung up to ``epoch`` that has none yet."""
    for rung in rungs:
        if rung > epoch:
            break
        budgets.setdefault(rung, loss)


def derived_seed(seed: int, attempt: int) -> int:
    """The seed of a suggestion's ``attempt``-th retry, fixed by the suggestion's seed."""
    return int(np.random.default_rng([seed, attempt]).integers(2**31 - 1))


def lie(losses: Sequence[float] | np.ndarray, liar: str) -> float | None:
    """The loss a pending trial counts with (``search.liar``): worst, mean or best of ``losses``; None when off."""
    if liar == "off" or len(losses) == 0:
        return None
    return float({"worst": np.max, "best": np.min, "mean": np.mean}[liar](losses))


def lie_vector(vectors: Sequence[Sequence[float]], liar: str) -> Vector | None:
    """With several objectives, the losses a pending trial counts with: ``lie`` of each objective on its own (the
    worst, mean or best of each column of ``vectors``' objective losses), feasible; None when off or none."""
    if liar == "off" or len(vectors) == 0:
        return None
    columns = np.asarray([v[:-1] for v in vectors], dtype=float)
    pick = {"worst": np.max, "best": np.min, "mean": np.mean}[liar]
    return (*(float(pick(columns[:, j])) for j in range(columns.shape[1])), 0.0)


def as_loss(saved: float | Sequence[float]) -> Loss:
    """A loss as JSON holds it: a number, or a vector (a list)."""
    return float(saved) if isinstance(saved, int | float) else tuple(float(x) for x in saved)


class SpaceSearcher(Searcher, ABC):
    """The prior, the bookkeeping of suggested trials and their losses per budget, the config a trial
    receives, the metric check, the budget a model fits on, JSON save/restore and pickling that rebuilds
    the derived state.

    A subclass lists the attributes it can rebuild in ``_derived``, rebuilds them in ``_build()`` (from
    ``_scored()``, then the pending ``_live`` trials), and implements ``_suggest`` and ``on_trial_complete``
    (recording the outcome with ``_finish``).
    """

    _derived: tuple[str, ...] = ()
    # Whether ASHA's rungs are budgets; False treats every scored trial as final, as searchers did before
    # budgets (the multi-fidelity benchmark compares both this way).
    fidelity_aware: ClassVar[bool] = True

    def __init__(self, version: StudyVersion, prior: Prior, seed: int = 0):
        super().__init__(metric=version.metric.name, mode=version.metric.mode)
        self.version = version
        self.seed = seed
        # Several objectives or constraints: every loss is a vector (``Vector``), which each library models its way.
        self.several = version.multi_objective or bool(version.constraints)
        self.budgets = budgets_of(version.schedule) if self.fidelity_aware else (version.schedule.max_epochs,)
        self._prior: list[tuple[dict[str, Any], Budgets]] = [self._prior_budgets(*trial) for trial in prior]
        self._prior_counts = {b: sum(b in budgets for _, budgets in self._prior) for b in self.budgets}
        self._completed: list[tuple[dict[str, Any], Budgets]] = []
        self._live: dict[str, dict[str, Any]] = {}
        self._live_rungs: dict[str, Budgets] = {}  # rungs a running trial has reached
        self.suggested_by: dict[str, str] = {}
        self._count = 0
        self._replays: list[Replay] = []
        # The configuration_key of each carried, completed and running trial (``known``), built on first use.
        self._known: Counter[tuple[tuple[str, Any], ...]] | None = None
        self._peers: PeerSource | None = None
        self._peer_snapshot: Any = None  # the last snapshot applied (the source hands out a new object per change)
        self._peers_done: set[str] = set()  # run ids of peers' finished trials already among the prior
        self._build()

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The config of the next trial: a queued replay first (``replay_first``), else the library's suggestion
        (``_suggest``), which sees the peers' trials as they are now. Ray Tune calls this; subclasses implement
        ``_suggest`` (the template method of Optuna's ``BaseSampler``: what every searcher shares stays here)."""
        if self._replays:
            return self._replay(trial_id)
        self._apply_peers()
        config = self._suggest(trial_id)
        for _ in range(CLAIM_RETRIES):
            if self._peers is None or config is None or trial_id not in self._live:
                break
            values = self._live[trial_id]
            if self._peers.claim(values, [self._live[t] for t in self._own_live()]):
                break
            # another live search of the study chose the same configuration at the same moment: it runs it
            self._retract(trial_id)
            self._live[PEER + self._json(values)] = dict(values)
            self._live_rungs[PEER + self._json(values)] = {}
            if self._known is not None:
                self._known[self._key(values)] += 1
            self._build()
            config = self._suggest(trial_id)
        return config

    def _retract(self, trial_id: str) -> None:
        """Take back the suggestion ``trial_id`` (its configuration is given up before the trial starts)."""
        values = self._live.pop(trial_id)
        self._live_rungs.pop(trial_id, None)
        self.suggested_by.pop(trial_id, None)
        self._forget(values)

    @staticmethod
    def _json(values: Mapping[str, Any]) -> str:
        return json.dumps(values, sort_keys=True, default=str)

    # ------------------------------------------------------------------ peers

    def watch_peers(self, peers: PeerSource | None) -> None:
        """Take other live searches' trials from ``peers`` at each suggestion (None: stop)."""
        self._peers = peers

    def _apply_peers(self) -> None:
        """Bring the peers' trials up to their source's latest snapshot: running ones as running (``PEER`` keys),
        newly finished ones (fitted into this version) as carried; the library's state is rebuilt when they change."""
        snapshot = self._peers.snapshot() if self._peers is not None else None
        if snapshot is None or snapshot is self._peer_snapshot:
            return
        self._peer_snapshot = snapshot
        for key in [k for k in self._live if k.startswith(PEER) and k[len(PEER) :] not in snapshot.running]:
            self._live_rungs.pop(key, None)
            self._forget(self._live.pop(key))
        for key, values in snapshot.running.items():
            if PEER + key not in self._live:
                self._live[PEER + key] = dict(values)
                self._live_rungs[PEER + key] = {}
                if self._known is not None:
                    self._known[self._key(values)] += 1
        for run_id, trial in snapshot.finished.items():
            if run_id in self._peers_done:
                continue
            self._peers_done.add(run_id)
            values, budgets = self._prior_budgets(*trial)
            self._prior.append((values, budgets))
            for budget in budgets:
                self._prior_counts[budget] = self._prior_counts.get(budget, 0) + 1
            if self._known is not None:
                self._known[self._key(values)] += 1
        self._build()

    @abstractmethod
    def _suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The library's suggestion for ``trial_id`` (its config, as ``_config`` builds it), or None when done."""

    @abstractmethod
    def _build(self) -> None:
        """Rebuild the attributes named in ``_derived`` from the saved state."""

    # ------------------------------------------------------------------ budgets

    @property
    def full_budget(self) -> int:
        return self.budgets[-1]

    @property
    def rungs(self) -> tuple[int, ...]:
        """The budgets below the full one (ASHA's rungs; none with FIFO)."""
        return self.budgets[:-1]

    @cached_property  # constant for a searcher, and read at every suggestion
    def min_rung_trials(self) -> int:
        """Observations a budget needs before a model fits on it: ``search.min_rung_trials``, else d + 2."""
        searched = sum(1 for _, p in self.version.params.walk() if not p.is_fixed)
        return self.version.search.min_rung_trials or searched + 2

    def _prior_budgets(
        self,
        config: Mapping[str, Any],
        loss: float,
        history: Mapping[int, float] | None = None,
        outcome: Outcome | None = None,
    ) -> tuple[dict[str, Any], Budgets]:
        """A carried trial's losses per budget: without a history it is final (full budget), as a finished
        trial; with one it counts at the budgets its history reached, each with its first loss at or past it
        (a trial of a version with more epochs counts at this version's full budget with its loss then).
        With several objectives or constraints the losses are vectors, from its ``outcome`` (``Outcome.vector``;
        by epoch, ``Outcome.vectors_by_epoch``)."""
        budgets: Budgets = {}
        per_epoch: list[tuple[int, Loss]]
        if self.several:
            if outcome is None:
                raise ValueError(
                    f"a carried trial of {self.version.label} (several objectives or constraints) needs every "
                    "objective's and constraint's value (an Outcome), not one loss"
                )
            per_epoch = sorted(outcome.vectors_by_epoch(self.version).items()) if history else []
            final: Loss = outcome.vector(self.version)
        else:
            per_epoch = sorted((int(epoch), float(value)) for epoch, value in (history or {}).items())
            final = float(loss)
        if self.rungs and per_epoch:
            for epoch, value in per_epoch:
                record_rungs(budgets, self.budgets, epoch, value)
            return dict(config), budgets
        budgets[self.full_budget] = final
        return dict(config), budgets

    def _scored(self) -> list[tuple[dict[str, Any], Budgets]]:
        """Every scored trial, carried then completed, in the order they were scored."""
        return self._prior + self._completed

    def observed_at(self, budget: int) -> int:
        """How many trials (scored or running) have a loss at ``budget``."""
        own = sum(budget in b for _, b in self._completed) + sum(budget in b for b in self._live_rungs.values())
        return self._prior_counts[budget] + own

    def model_budget(self) -> int:
        """The budget a model fits on: the highest one with at least ``min_rung_trials`` observations, else the
        one with the most (the highest of those tied). With FIFO, the full budget."""
        if not self.rungs:
            return self.full_budget
        counts = {b: self.observed_at(b) for b in self.budgets}
        enough = [b for b in self.budgets if counts[b] >= self.min_rung_trials]
        return enough[-1] if enough else max(reversed(self.budgets), key=counts.__getitem__)

    @property
    def n_scored(self) -> int:
        """Trials with a score that the library learns from (prior and completed)."""
        return len(self._prior) + len(self._completed)

    def in_startup(self) -> bool:
        """Whether the next suggestion is a start-up (random) one: fewer than ``search.startup_trials`` trials are
        scored or running, running ones counting once one is scored (before that there is nothing to model).
        Sequentially nothing runs at a suggestion and this is ``n_scored < startup_trials``; with k trials at a
        time the first ``startup_trials`` suggestions are random, not ``startup_trials + k - 1``."""
        scored = self.n_scored
        return scored + (len(self._live) if scored else 0) < self.version.search.startup_trials

    # ------------------------------------------------------------------ repeats

    def _key(self, values: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        return self.version.params.configuration_key(values)

    @property
    def known(self) -> Counter[tuple[tuple[str, Any], ...]]:
        """How many carried, completed and running trials have each configuration (by the space's
        ``configuration_key``, so a carried ``2.0`` is the ``2`` a library suggests), only those some trial has;
        built on first use, then kept up as trials are suggested and end."""
        if self._known is None:
            scored = (values for values, _ in self._scored())
            self._known = Counter(map(self._key, [*scored, *self._live.values()]))
        return self._known

    @cached_property  # the space is the searcher's for good
    def space_size(self) -> int | None:
        """How many configurations the space holds (``SearchSpace.size``); None when it is continuous."""
        return self.version.params.size()

    def is_repeat(self, values: Mapping[str, Any]) -> bool:
        """Whether ``values`` are the configuration of a carried, completed or running trial, and
        ``search.repeats`` says a suggestion must not repeat one."""
        return not self.version.search.repeats and self._key(values) in self.known

    def _avoid_repeat(
        self,
        values: dict[str, Any],
        seed: int,
        ask_again: Callable[[dict[str, Any], int], dict[str, Any]] | None,
        draw: Callable[[int], dict[str, Any]],
    ) -> tuple[dict[str, Any], bool]:
        """``values``, or in place of a repeat (``is_repeat``) the first new values that ``ask_again(repeat,
        seed)`` gives (the library asked again with ``repeat`` counted as a poor result; None: it has no model
        yet), then ``draw(seed)`` (a random draw); each try gets its own seed (``derived_seed``). Returns the
        values of the last try (the library's state is that try's) and whether they were drawn at random: a
        repeat only when every try repeated."""
        if not self.is_repeat(values):
            return values, False
        if self.space_size is not None and len(self.known) >= self.space_size:
            return values, False  # every configuration is known: nothing new to find
        for attempt in range(REPEAT_RETRIES if ask_again is not None else 0):
            values = ask_again(values, derived_seed(seed, attempt + 1))
            if not self.is_repeat(values):
                return values, False
        for attempt in range(REPEAT_DRAWS):
            values = draw(derived_seed(seed, REPEAT_RETRIES + attempt + 1))
            if not self.is_repeat(values):
                break
        return values, True

    def _forget(self, values: Mapping[str, Any]) -> None:
        """A running trial ended without a score: its configuration may be suggested again."""
        if self._known is not None:
            key = self._key(values)
            self._known[key] -= 1
            if self._known[key] <= 0:  # only configurations some trial has stay counted
                del self._known[key]

    # ------------------------------------------------------------------ suggestions and results

    def _next_seed(self) -> int:
        """The seed of the next suggestion: fixed by the searcher's seed and how many came before."""
        return derived_seed(self.seed, self._count)

    def _issue(self, trial_id: str, values: dict[str, Any], suggested_by: str, seed: int) -> dict[str, Any]:
        """Record a suggestion and return what the trainable receives: fixed + values + reserved keys."""
        self._live[trial_id] = values
        if self._known is not None:
            self._known[self._key(values)] += 1
        self._live_rungs[trial_id] = {}
        self.suggested_by[trial_id] = suggested_by
        self._count += 1
        config = self.version.trial_config(values)
        config.update(max_epochs=self.version.schedule.max_epochs, seed=seed % 100_000)
        return config

    def replay_first(self, trials: Iterable[Replay]) -> None:
        """Suggest ``trials``, in order, before any new suggestion."""
        self._replays.extend(trials)

    def _replay(self, trial_id: str) -> dict[str, Any]:
        """The next queued replay, issued as this searcher's suggestion ``trial_id``."""
        replay = self._replays.pop(0)
        config = self._issue(trial_id, dict(replay.values), REPLAYED, replay.seed)
        self._build()  # the library sees it running; a resume replays at most the trials a driver ran at once
        config.update(replay.extra)
        return config

    def _loss(self, result: Mapping[str, Any] | None, error: bool) -> Loss | None:
        """The loss of a result, or ``None`` when it errored or its metric is missing or not finite. With several
        objectives or constraints a vector (``results.outcome_value``), None when any objective is missing or not
        finite: such a trial failed."""
        if self.several:
            return None if error else outcome_value(result, self.version)
        value = None if error else metric_value(result, self.version.metric.name)
        return None if value is None else self.version.metric.loss(value)

    def _record_result(self, trial_id: str, result: Mapping[str, Any] | None) -> tuple[int, Loss] | None:
        """Keep a running trial's loss at the rungs its result reached; returns (epoch, loss) when it counts."""
        budgets = self._live_rungs.get(trial_id)
        loss = self._loss(result, error=False)
        epoch = None if result is None else result.get(EPOCH_KEY)
        if budgets is None or loss is None or not isinstance(epoch, int | float):
            return None
        record_rungs(budgets, self.rungs, int(epoch), loss)
        return int(epoch), loss

    def _finish(self, trial_id: str, result: Mapping[str, Any] | None, error: bool) -> Budgets | None:
        """Record how a trial ended and return its losses per budget (None when it failed or is unknown).

        A result at or past the full budget, or one without an epoch, is final (as a finished trial); one
        that stopped early (ASHA) counts at the rungs it reached only."""
        values = self._live.pop(trial_id, None)
        loss = self._loss(result, error)
        if values is None or loss is None:
            self._live_rungs.pop(trial_id, None)
            if values is not None:
                self._forget(values)
            return None
        at = self._record_result(trial_id, result)
        budgets = self._live_rungs.pop(trial_id)
        if at is None or at[0] >= self.full_budget or not self.rungs:
            budgets[self.full_budget] = loss
        if not budgets:  # stopped before its first rung: nothing comparable to learn from
            self._forget(values)
            return None
        self._completed.append((values, budgets))
        return budgets

    def pending_at(self, budget: int) -> list[str]:
        """The running trials without a loss at ``budget`` yet, in the order they were suggested."""
        return [t for t in self._live if budget not in self._live_rungs.get(t, {})]

    # ------------------------------------------------------------------ Ray Tune API

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # metric and mode come from the space file

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        check_reported(result, self.version.reported, self.version.trainable)
        if self.rungs:
            self._record_result(trial_id, result)

    def _own_live(self) -> list[str]:
        """The running trials of this search (not its peers')."""
        return [t for t in self._live if not t.startswith(PEER)]

    def save(self, checkpoint_path: str) -> None:
        own = self._own_live()
        state = {
            "completed": self._completed,
            "live": {t: self._live[t] for t in own},
            "live_rungs": {t: self._live_rungs.get(t, {}) for t in own},
            "suggested_by": self.suggested_by,
            "count": self._count,
            "replays": [[r.values, r.seed, dict(r.extra)] for r in self._replays],
        }
        with open(checkpoint_path, "w") as f:
            json.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            state = json.load(f)
        self._completed = [(c, self._budgets_from_json(b)) for c, b in state["completed"]]
        self._live = state["live"]
        live_rungs = state.get("live_rungs", {})
        self._live_rungs = {t: self._budgets_from_json(live_rungs.get(t, {})) for t in self._live}
        self.suggested_by = state["suggested_by"]
        self._count = state["count"]
        self._replays = [Replay(values, seed, extra) for values, seed, extra in state.get("replays", [])]
        self._known = None
        self._peer_snapshot = None  # the peers' running trials come back at the next suggestion
        self._build()

    def _budgets_from_json(self, saved: Mapping[str, Any] | float) -> Budgets:
        """Budgets as JSON holds them (string keys, vectors as lists); a bare loss (a state saved before budgets) is
        final."""
        if isinstance(saved, int | float):
            return {self.full_budget: float(saved)}
        return {int(b): as_loss(loss) for b, loss in saved.items()}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in self._derived:
            state.pop(key, None)
        state["_peers"] = state["_peer_snapshot"] = None  # a thread of this driver, and what it last read
        state["_known"] = None
        own = self._own_live()
        state["_live"] = {t: self._live[t] for t in own}
        state["_live_rungs"] = {t: self._live_rungs[t] for t in own if t in self._live_rungs}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build()
