"""Propose the next version of a space from a model of its trials: widen, narrow, prune, or leave as is.

Three steps, each a function: ``rank(version, trials)`` picks the usable trials and the budget they are
compared on; ``orchestrator.analysis.evidence.gather_evidence`` fits a model of them and returns the
``Evidence`` per parameter (plain numbers and probabilities: numpy and scikit-learn live there, not here);
``refine(version, ranking, evidence, options)`` applies the rules below and returns a new ``StudyVersion``
(``version + 1``, ``parent`` the refined version) whose ``notes`` give every change with its evidence, the
``Change`` list, and one evidence line per searched parameter, changed or not (``Refinement.assessed``,
what ``space refine --dry-run`` prints). This module stays pure (PyYAML and the standard library).
``orchestrator.evolution.refining.refine_trials`` runs the three steps; nothing is written here
(``orchestrator space refine`` writes the file).

**The evidence the rules need** (``orchestrator.analysis.evidence`` explains the model: a Gaussian process
of every usable trial, an option's sub-space judged by the trials that took it), per searched parameter,
with probabilities counted over the model's sample functions (``Evidence.samples``, 256):

* a number (``NumberEvidence``): its ``importance`` (its share of the variance of the model's partial
  dependence over the parameters of its scope: the importance the review artifacts log); per bound
  (``Side``) ``toward``, the probability that the predicted loss is lowest at that bound, with the other
  parameters at the values of the best ``top`` trials (default ``top_fraction`` 0.25 of them, at least
  ``min_top`` 3); and ``cuts``: for cutting the range back to each point of a grid, the probability that
  the region cut off holds a value better than the best seen (the best trial of the scope, as the model
  predicts it);
* a choice (``ChoiceEvidence``): its ``importance`` and per option how often it was tried and the
  probability that it holds a value better than the best seen.

**The rules** (fields of ``RefineOptions``, defaults in brackets):

* **Which trials.** Finished trials with a finite metric whose configuration fits the refined version
  (the carry rule of ``spaces.carry``: defaults fill added parameters). Fewer than ``min_trials`` (5) of
  them: ``NotEnoughTrials`` and no version; nothing to change: ``RefineError`` and no version, the message
  giving each parameter's evidence.
* **Which budget.** With per-epoch histories (ASHA), trials are compared on the highest epoch that at
  least ``min_trials`` trials reached, by their value at that epoch; a trial ASHA stopped before it
  counts as the worst value there (as the ``tpe`` searcher counts it), so a trial stopped early never
  competes with its value from a shorter training. Without histories, on the final value.
* **Barely matters.** A parameter whose importance is below ``min_importance`` (0.05) is left as is, and
  the notes say so.
* **Widen.** A bound widens when the probability that the predicted loss is lowest there is at least
  ``widen_p`` (0.8), by a step that grows with that probability: ``widen_min`` (0.25) of the range's width
  at ``widen_p``, linearly up to ``widen_max`` (1.0) at certainty, in log space for log scales.
  ``limits`` are never crossed; when they stop a widening the note says so.
* **Narrow.** A side not widened is cut back to the furthest grid point for which the region cut off has
  a probability of at most ``narrow_p`` (0.05) of holding a value better than the best seen; never up to
  the best trial's value, and only when the cut is at least ``min_narrow`` (0.05) of the width.
* **Steps.** Quantized and integer ranges snap outwards onto their own lattice (the old
  ``low + k * q``), so every earlier value stays a value of the new range; continuous bounds are
  rounded outwards to a readable precision. A ``default`` the new range no longer contains is
  removed (noted: trials lacking the parameter are then not carried).
* **Prune.** A choice option is removed when it was tried at least ``prune_min_trials`` (5) times and
  the probability that it holds a value better than the best seen is at most ``prune_p`` (0.05). The
  option of the best trial, and so the last option, is never removed; ``prune`` (True) turns pruning off.
* **Conditional sub-spaces.** Each option's sub-space is refined by the same rules from the trials that
  took that option (in the model: their posterior, so few trials mean wide uncertainty), against the best
  of those trials; an option taken by fewer than ``min_trials`` of them keeps its sub-space (noted).
* **Determinism.** The same trials give the same version: the trials are ordered before the model is
  fitted, and its random draws are seeded with ``seed`` (0).

**Several objectives** (``objectives:``, and ``constraints:``): refine narrows around the Pareto set instead of
the best of one metric. ``orchestrator.evolution.refining.pareto_ranking`` ranks the usable trials (every
objective finite) by front on their final values (``engine.pareto``: feasible trials first, front 0 the Pareto
set; the per-epoch histories hold the first objective only, so no common budget), and the model's loss is a
trial's front: the rules above then read the model of the fronts, and "the best seen" is the front.

* **Keep the Pareto set.** The *kept* trials are those of the first fronts, as many fronts as it takes to hold
  ``min_top`` (3) trials (``Ranking.kept``): no cut reaches a kept trial's value (the best trial's value with
  one metric), and no option a kept trial took is pruned.
* **Widen where Pareto points sit at a bound.** Besides the widening above (the model of the fronts falls
  toward a bound), a bound widens when a kept trial sits at it (within ``pareto_edge`` (0.05) of the width;
  the bound itself on a stepped range) and some objective's own model (``Evidence.objectives``: the same model
  of that objective alone) predicts that objective lowest at the bound with a probability of at least
  ``widen_p``, at an importance of at least ``min_importance`` for that objective: the front continues past
  the bound. The step is the widening step of that probability. A parameter along which the front spreads
  (each objective pulls its own way, so the fronts barely depend on it) is still widened so; it is not
  narrowed unless the model of the fronts gives it an importance of at least ``min_importance``.
* **Notes.** The head names the objectives, the constraints and the fronts kept; each change names the model
  it rests on (the fronts', or an objective's own).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .carry import fit
from .errors import ValueNotInSpace
from .kinds import NO_DEFAULT, IntRange, LogUniform, QLogUniform, QUniform, Uniform, clean_float
from .space import Choice, Param, SearchSpace
from .trials import RecordedTrial
from .version import Constraint, Metric, StudyVersion

Numeric = Uniform | LogUniform | QUniform | QLogUniform | IntRange
ChangeKind = Literal["narrowed", "widened", "pruned", "default-removed", "kept"]


class RefineError(ValueError):
    """No version is proposed: the message says why."""


class NotEnoughTrials(RefineError):
    """Too few finished trials to refine from."""


@dataclass(frozen=True)
class RefineOptions:
    """The documented knobs of :func:`refine` and of the evidence it reads (see the module docstring)."""

    top: int | None = None
    top_fraction: float = 0.25
    min_top: int = 3
    min_trials: int = 5
    min_importance: float = 0.05
    widen_p: float = 0.8
    widen_min: float = 0.25
    widen_max: float = 1.0
    narrow_p: float = 0.05
    min_narrow: float = 0.05
    prune: bool = True
    prune_min_trials: int = 5
    prune_p: float = 0.05
    seed: int = 0
    pareto_edge: float = 0.05  # several objectives: a kept trial within this share of the width sits at a bound

    def __post_init__(self) -> None:
        for name in ("top_fraction", "widen_p", "narrow_p", "prune_p", "pareto_edge"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in (0, 1], got {getattr(self, name)}")
        for name in ("min_importance", "widen_min", "widen_max", "min_narrow"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.widen_max < self.widen_min:
            raise ValueError(f"widen_max ({self.widen_max}) must be at least widen_min ({self.widen_min})")
        for name in ("min_top", "min_trials", "prune_min_trials"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.top is not None and self.top < 1:
            raise ValueError(f"top must be at least 1, got {self.top}")

    def reference(self, trials: int) -> int:
        """How many of ``trials`` (best first) the partial dependence averages the other parameters over."""
        k = self.top if self.top is not None else max(self.min_top, math.ceil(self.top_fraction * trials))
        return min(k, trials)

    def widen_step(self, toward: float) -> float:
        """The widening step, as a share of the width, for a probability ``toward`` of at least ``widen_p``."""
        if self.widen_p >= 1:
            return self.widen_max
        grown = (toward - self.widen_p) / (1 - self.widen_p)
        return self.widen_min + (self.widen_max - self.widen_min) * min(max(grown, 0.0), 1.0)


# --------------------------------------------------------------------------- evidence (computed elsewhere)


@dataclass(frozen=True)
class Cut:
    """Cutting a side back to ``bound``: ``chance`` that the region cut off holds a value better than the best seen."""

    bound: float
    chance: float


@dataclass(frozen=True)
class Side:
    """One bound of a numeric parameter: ``toward`` is the probability that the predicted loss is lowest at
    it; ``cuts`` the possible cuts from that side, from the smallest region to the largest."""

    toward: float
    cuts: tuple[Cut, ...] = ()


@dataclass(frozen=True)
class NumberEvidence:
    """A numeric parameter's evidence: its importance, where the predicted loss is lowest, each side's."""

    importance: float
    trials: int
    best_at: float
    lower: Side
    upper: Side


@dataclass(frozen=True)
class OptionEvidence:
    """One option of a choice: how often it was tried, and the chance it holds a value better than the best seen."""

    tried: int
    chance: float


@dataclass(frozen=True)
class ChoiceEvidence:
    """A choice's evidence: its importance and, per option (in order), ``OptionEvidence``."""

    importance: float
    trials: int
    options: tuple[OptionEvidence, ...]


@dataclass(frozen=True)
class Evidence:
    """What a model of the trials says per parameter path (``lr``, ``optimizer[sgd].momentum``: ``param_path``).

    ``model`` describes the model in one line; ``samples`` is how many joint samples the probabilities are
    counted over. A parameter without an entry has no evidence (its scope had too few trials)."""

    model: str
    samples: int
    params: Mapping[str, NumberEvidence | ChoiceEvidence]
    # Several objectives: each objective's own evidence (the same model of that objective alone), what the
    # widening where Pareto points sit at a bound reads.
    objectives: Mapping[str, Evidence] = field(default_factory=dict)


def param_path(prefix: str, name: str) -> str:
    """A parameter's path in ``Evidence.params`` and in the notes: ``lr``, ``optimizer[sgd].momentum``."""
    return f"{prefix}{name}"


def option_prefix(path: str, choice: Choice, i: int) -> str:
    """The prefix of the paths of option ``i``'s sub-space parameters: ``optimizer[sgd].``."""
    return f"{path}[{choice.option_label(i)}]."


# --------------------------------------------------------------------------- which trials, which budget


@dataclass(frozen=True)
class ModelRow:
    """A usable trial as the model and the rules read it: its fitted configuration and its loss (lower is
    better) on the ranking budget; ``value`` is the metric's value there, ``None`` for a trial ASHA stopped
    before the budget (its ``loss`` is then the worst loss of those that reached it)."""

    config: Mapping[str, Any]
    loss: float
    value: float | None
    run_id: str = ""
    # Several objectives: its front (``loss`` and ``value`` are the front too) and every objective's value.
    front: int | None = None
    values: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Ranking:
    """The usable trials, best first (those that reached the budget, then those stopped before it; several
    objectives: by front, then crowding)."""

    rows: tuple[ModelRow, ...]
    budget: int | None
    used: int
    ranked: int
    # Several objectives: what the rows were ranked by, and the last front kept (``Ranking.kept``).
    objectives: tuple[Metric, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    kept_front: int = 0

    @property
    def stopped(self) -> int:
        return len(self.rows) - self.ranked

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def kept(self, rows: Sequence[ModelRow] | None = None) -> list[ModelRow]:
        """The rows (of ``rows``, default all) that refine keeps inside the ranges: the best one, or with several
        objectives those of the first ``kept_front + 1`` fronts."""
        rows = self.rows if rows is None else rows
        if not self.multi_objective:
            return list(rows[:1])
        return [r for r in rows if r.front is not None and r.front <= self.kept_front]


def rank(version: StudyVersion, trials: Sequence[RecordedTrial], min_trials: int = 5) -> Ranking:
    """The usable trials of ``version`` compared on one budget (the module docstring's first two rules).

    Raises ``NotEnoughTrials`` when fewer than ``min_trials`` usable trials exist."""
    usable = usable_trials(version, trials)
    if len(usable) < min_trials:
        raise NotEnoughTrials(
            f"{version.label}: {len(usable)} finished trial(s) with a finite {version.metric.name} fit this "
            f"version; refine needs at least {min_trials} (run more trials or lower --min-trials)"
        )
    budget = ranking_budget([t for _, t in usable], min_trials)
    reached, stopped = [], []
    for config, t in usable:
        key = (t.run_id, json.dumps(config, sort_keys=True, default=str))
        value = t.value if budget is None else t.history.get(budget)
        if value is not None and math.isfinite(value):
            loss = version.metric.loss(value)
            reached.append(((loss, *key), ModelRow(config, loss, value, t.run_id)))
        elif budget is not None and _stopped_before(t.history, budget):
            stopped.append((key, config, t.run_id))
    reached.sort(key=lambda r: r[0])
    stopped.sort(key=lambda r: r[0])
    worst = reached[-1][1].loss
    rows = [row for _, row in reached]
    rows += [ModelRow(config, worst, None, run_id) for _, config, run_id in stopped]
    return Ranking(tuple(rows), budget, len(usable), len(reached))


def _stopped_before(history: Mapping[int, float], budget: int) -> bool:
    """Whether a trial's history ends with finite values before ``budget`` (ASHA stopped it there)."""
    epochs = [int(e) for e, v in history.items() if v is not None and math.isfinite(v)]
    return bool(epochs) and max(epochs) < budget


def usable_trials(version: StudyVersion, trials: Sequence[RecordedTrial]) -> list[tuple[dict[str, Any], RecordedTrial]]:
    """Finished trials with a finite value, fitted to ``version`` (those that do not fit are left out)."""
    out = []
    for t in trials:
        if t.status != "FINISHED" or t.value is None or not math.isfinite(t.value):
            continue
        try:
            out.append((fit(version.params, t.config), t))
        except ValueNotInSpace:
            continue
    return out


def ranking_budget(trials: Sequence[RecordedTrial], min_trials: int) -> int | None:
    """The highest epoch at least ``min_trials`` trials reported a finite value at; ``None`` without histories."""
    reached: dict[int, int] = {}
    for t in trials:
        for epoch, value in t.history.items():
            if value is not None and math.isfinite(value):
                reached[int(epoch)] = reached.get(int(epoch), 0) + 1
    enough = [epoch for epoch, n in reached.items() if n >= min_trials]
    return max(enough) if enough else None


# --------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class Change:
    """One change refine made (or deliberately did not make), with the evidence for it."""

    kind: ChangeKind
    path: str
    old: str
    new: str
    evidence: str

    @property
    def note(self) -> str:
        return f"{self.path}: {self.evidence} -> {self.new}"


@dataclass(frozen=True)
class Refinement:
    """The proposed version, what changed and on which evidence.

    ``changes`` are the notes' lines (changes, and decisions not to change that the notes explain);
    ``assessed`` has one line per searched parameter with its evidence, changed or not (``--dry-run``)."""

    version: StudyVersion
    changes: tuple[Change, ...]
    assessed: tuple[Change, ...]
    budget: int | None
    used: int
    ranked: int
    model: str


@dataclass
class _Rules:
    """What every rule reads, and where it writes its lines."""

    opts: RefineOptions
    evidence: Evidence
    metric: Metric
    ranking: Ranking | None = None
    changes: list[Change] = field(default_factory=list)
    assessed: list[Change] = field(default_factory=list)

    def record(self, change: Change, noted: bool, assessed: Change | None = None) -> None:
        """``change`` into the notes when ``noted``; into the evidence lines as ``assessed`` (default the same)."""
        self.assessed.append(assessed or change)
        if noted:
            self.changes.append(change)


def refine(
    version: StudyVersion,
    ranking: Ranking,
    evidence: Evidence,
    options: RefineOptions | None = None,
    number: int | None = None,
) -> Refinement:
    """The next version of ``version`` (numbered ``number``, default ``version + 1``) from ``ranking`` and the
    model's ``evidence`` about it. Raises ``RefineError`` when the evidence gives no reason to change anything.
    """
    opts = options or RefineOptions()
    several = ranking.multi_objective
    rules = _Rules(opts, evidence, PARETO_RANK if several else version.metric, ranking)
    params = _refine_space(version.params, "", ranking.rows, FRONT_SEEN if several else "the best seen", rules)
    if params == version.params:
        why = f"the model of {len(ranking.rows)} trials gives no reason to change the space"
        raise RefineError(f"{version.label}: {why}; " + "; ".join(c.note for c in rules.assessed))
    head = _pareto_head(version, ranking, evidence) if several else _head(version, ranking, evidence, opts)
    notes = "\n".join([head, *(c.note for c in rules.changes)])
    new = dataclasses.replace(
        version,
        version=number if number is not None else version.version + 1,
        parent=version.version,
        params=params,
        notes=notes,
        source=None,
    )
    return Refinement(
        new, tuple(rules.changes), tuple(rules.assessed), ranking.budget, ranking.used, ranking.ranked, evidence.model
    )


PARETO_RANK = Metric("Pareto rank", "min")  # what the model of several objectives predicts: a trial's front
FRONT_SEEN = "the front's"  # what a region is compared with, several objectives ("a Pareto rank better than ...")


def _pareto_head(version: StudyVersion, ranking: Ranking, evidence: Evidence) -> str:
    goals = ", ".join(f"{m.name} ({m.mode})" for m in ranking.objectives)
    under = f" under {' and '.join(c.describe() for c in ranking.constraints)}" if ranking.constraints else ""
    front = sum(1 for r in ranking.rows if r.front == 0)
    kept = len(ranking.kept())
    kept_text = (
        f"front 0 holds {front} trials, kept inside the ranges"
        if ranking.kept_front == 0
        else f"front 0 holds {front} trials; the first {ranking.kept_front + 1} fronts ({kept} trials) are kept "
        "inside the ranges"
    )
    return (
        f"Refined from v{version.version} by `orchestrator space refine`: {ranking.used} finished trials with every "
        f"objective fit v{version.version}; ranked by Pareto front over {goals}{under} on their final values: "
        f"{kept_text}. Evidence: {evidence.model}."
    )


def _head(version: StudyVersion, ranking: Ranking, evidence: Evidence, opts: RefineOptions) -> str:
    on = (
        f"epoch {ranking.budget} (the highest epoch at least {opts.min_trials} trials reached)"
        if ranking.budget is not None
        else "their final value"
    )
    stopped = (
        f"; {ranking.stopped} stopped before epoch {ranking.budget} count as its worst value" if ranking.stopped else ""
    )
    return (
        f"Refined from v{version.version} by `orchestrator space refine`: {ranking.used} finished trials fit "
        f"v{version.version}; {ranking.ranked} ranked on {on} by {version.metric.name} ({version.metric.mode})"
        f"{stopped}. Evidence: {evidence.model}."
    )


def _refine_space(space: SearchSpace, prefix: str, rows: Sequence[ModelRow], seen: str, rules: _Rules) -> SearchSpace:
    """Each parameter of ``space`` refined from its evidence; ``rows`` are the scope's trials, best first, and
    ``seen`` names the best they are compared with in the notes."""
    params: dict[str, Param] = {}
    best = rows[0] if rows and rows[0].value is not None else None
    several = rules.ranking is not None and rules.ranking.multi_objective
    best_seen = seen if best is None or several else f"{seen} {_fmt(best.value)}"
    kept = [] if best is None else rules.ranking.kept(rows) if rules.ranking is not None else [best]
    for name, p in space.params.items():
        path = param_path(prefix, name)
        if p.is_fixed:
            params[name] = p
        elif isinstance(p, Choice):
            params[name] = _refine_choice(p, path, name, rows, best_seen, rules)
        else:
            params[name] = _refine_number(p, path, [r.config[name] for r in kept], best_seen, rules)
    return SearchSpace(params)


def _refine_choice(p: Choice, path: str, name: str, rows: Sequence[ModelRow], best_seen: str, rules: _Rules) -> Choice:
    """Prune options the model gives little chance, then refine each kept option's sub-space from its trials."""
    opts, metric = rules.opts, rules.metric.name
    took: dict[int, list[ModelRow]] = {i: [] for i in range(len(p.options))}
    for r in rows:
        i = p.select(r.config[name])
        if i is not None:
            took[i].append(r)
    kept = rules.ranking.kept(rows) if rules.ranking is not None else list(rows[:1])
    kept_options = {p.select(r.config[name]) for r in kept}  # the best trial's option; several: the kept trials'
    best_option = p.select(rows[0].config[name]) if rows else None
    e = rules.evidence.params.get(path)
    keep: list[int] = []
    said: list[str] = []
    pruned: list[str] = []
    for i in range(len(p.options)):
        label = p.option_label(i)
        o = e.options[i] if isinstance(e, ChoiceEvidence) else None
        if o is None:
            keep.append(i)
            continue
        said.append(f"option {label} tried {o.tried} times, P={o.chance:.2f}")
        strong = o.tried >= opts.prune_min_trials and o.chance <= opts.prune_p
        if opts.prune and strong and e.importance >= opts.min_importance and i != best_option and i not in kept_options:
            pruned.append(label)
            rules.record(
                Change(
                    "pruned",
                    path,
                    p.describe(),
                    f"option {label} removed",
                    f"option {label} tried {o.tried} times; P={o.chance:.3f} over the model's {rules.evidence.samples} "
                    f"samples that it holds a {metric} better than {best_seen}, importance {e.importance:.2f}",
                ),
                noted=True,
            )
        else:
            keep.append(i)
    if isinstance(e, ChoiceEvidence):
        chances = f"importance {e.importance:.2f}; chance of a {metric} better than {best_seen}: " + ", ".join(said)
        if e.importance < opts.min_importance:
            why = f"importance {e.importance:.2f} (below {opts.min_importance:g}): barely matters, no option pruned"
            rules.record(Change("kept", path, p.describe(), "kept", why), noted=True)
        elif not pruned:
            rules.record(Change("kept", path, p.describe(), "kept", chances), noted=False)
    else:
        rules.record(Change("kept", path, p.describe(), "kept", "no evidence (too few trials)"), noted=False)
    options: list[Any] = []
    for i in keep:
        sub_space = p.sub_space(i)
        if sub_space is None or all(q.is_fixed for q in sub_space.params.values()):
            options.append(p.options[i])
            continue
        prefix = option_prefix(path, p, i)
        sub = [dataclasses.replace(r, config=r.config[name]) for r in took[i]]
        if len(sub) < opts.min_trials:
            rules.record(
                Change(
                    "kept",
                    prefix.rstrip("."),
                    "sub-space",
                    "sub-space kept",
                    f"only {len(sub)} ranked trial(s) took this option (need {opts.min_trials})",
                ),
                noted=True,
            )
            options.append(sub_space)
            continue
        seen = "the best seen" if rules.ranking is None or not rules.ranking.multi_objective else FRONT_SEEN
        options.append(_refine_space(sub_space, prefix, sub, f"{seen} with {p.option_label(i)}", rules))
    refined = dataclasses.replace(p, options=tuple(options), default=NO_DEFAULT)
    if p.default is not NO_DEFAULT:
        if p.select(p.default) not in keep:
            why = "the default's option was pruned"
        elif not refined.contains(p.default):
            why = f"the default {_show(p.default)} is outside its refined option"
        else:
            why = ""
        if why:
            rules.record(
                Change(
                    "default-removed",
                    path,
                    f"default {_show(p.default)}",
                    "default removed",
                    f"{why}, so trials without this parameter are not carried",
                ),
                noted=True,
            )
        else:
            refined = dataclasses.replace(refined, default=p.default)
    return refined


def _refine_number(p: Numeric, path: str, kept: Sequence[float], best_seen: str, rules: _Rules) -> Any:
    """Widen a side the loss is predicted to fall toward (several objectives: or where Pareto points sit and an
    objective improves), cut back a side unlikely to hold a better value (never past a ``kept`` value: the best
    trial's, or the Pareto set's), within ``limits``, on ``p``'s lattice; leave a parameter that barely matters."""
    opts, metric, samples = rules.opts, rules.metric, rules.evidence.samples
    old_range = _fmt_list([p.low, p.high])
    e = rules.evidence.params.get(path)
    if not isinstance(e, NumberEvidence):
        rules.record(Change("kept", path, old_range, f"kept {old_range}", "no evidence (too few trials)"), False)
        return p
    several = rules.ranking is not None and rules.ranking.multi_objective
    importance = f"importance {e.importance:.2f}" + (" for the fronts" if several else "")
    pareto = _pareto_widening(p, path, kept, rules)
    matters = e.importance >= opts.min_importance
    if not matters and not pareto:
        why = f"{importance} (below {opts.min_importance:g}): barely matters, left as is"
        rules.record(Change("kept", path, old_range, f"kept {old_range}", why), noted=True)
        return p
    scale, unscale = (math.log, math.exp) if p.is_log else (float, float)
    lo, hi = scale(p.low), scale(p.high)
    width = hi - lo
    falls = "falls" if metric.mode == "min" else "rises"
    target = {"lower": p.low, "upper": p.high}
    widen = {"lower": False, "upper": False}
    acted: dict[str, str] = {}  # what a side's change rests on (the notes)
    quiet: dict[str, str] = {}  # what the evidence says about a side left as is (the dry-run lines)
    for side, s in (("lower", e.lower), ("upper", e.upper)):
        if side in pareto and not (matters and s.toward >= opts.widen_p):
            step, acted[side] = pareto[side]
            target[side] = unscale(lo - step * width) if side == "lower" else unscale(hi + step * width)
            widen[side] = True
            continue
        if not matters:  # several objectives: the fronts barely depend on it; only Pareto points widen it
            quiet[side] = f"{side} bound: {importance} (below {opts.min_importance:g}) for the fronts, left as is"
            continue
        if s.toward >= opts.widen_p:
            step = opts.widen_step(s.toward)
            target[side] = unscale(lo - step * width) if side == "lower" else unscale(hi + step * width)
            widen[side] = True
            over = f"P={s.toward:.2f} over the model's {samples} samples"
            acted[side] = (
                f"predicted {metric.name} {falls} toward the {side} bound ({over}): widened by {step:.0%} of the width"
            )
            continue
        quiet[side] = _quiet(p, s, side, best_seen, metric.name)
        cut = _cut(s, side, kept, scale, lo, hi, opts)
        if cut is not None:
            target[side] = cut.bound
            region = _region(p, side, cut.bound)
            acted[side] = f"P={cut.chance:.2f} that {region} holds a {metric.name} better than {best_seen}"
    if not target["lower"] < target["upper"]:  # cannot happen with cuts that keep the best trial; be safe
        target = {"lower": p.low, "upper": p.high}
    low, high = _outward(p, target["lower"], target["upper"])
    low = min(low, p.low) if widen["lower"] else max(low, p.low)
    high = max(high, p.high) if widen["upper"] else min(high, p.high)
    if not widen["lower"] and scale(low) - lo < opts.min_narrow * width:  # not worth a new bound
        low = p.low
    if not widen["upper"] and hi - scale(high) < opts.min_narrow * width:
        high = p.high
    stopped = {"lower": False, "upper": False}
    if p.limits is not None:
        floor_, ceiling = _inside(p, p.limits[0], up=True), _inside(p, p.limits[1], up=False)
        stopped = {"lower": low < floor_, "upper": high > ceiling}
        low, high = max(low, floor_), min(high, ceiling)
    if not low < high:  # a lattice too coarse to narrow on
        low, high = p.low, p.high
    for side, old, new in (("lower", p.low, low), ("upper", p.high, high)):
        if widen[side] and new == old:
            acted[side] = f"{acted[side].partition(': widened')[0]}, but {_fmt(old)} is its limit: not widened"
        elif widen[side] and stopped[side]:
            acted[side] += f", stopped by limits {_fmt_list(p.limits or ())}"
        elif not widen[side] and new == old and side in acted:  # a cut that rounding left below min_narrow
            quiet[side] += ", a cut too small to make"
            del acted[side]
    sides = ("lower", "upper")
    evidence = f"{importance}; " + "; ".join(acted[side] for side in sides if side in acted)
    lowest = f"predicted {metric.name} lowest near {_fmt(e.best_at)}"
    assessed = f"{importance}; {lowest}; " + "; ".join(acted.get(side) or quiet[side] for side in sides)
    if (low, high) == (p.low, p.high):
        noted = any(widen.values())  # a widening the limits stopped: the notes say so
        rules.record(Change("kept", path, old_range, f"kept {old_range}", evidence if noted else assessed), noted)
        return p
    new_param = dataclasses.replace(p, low=low, high=high, default=NO_DEFAULT)
    if p.default is not NO_DEFAULT:
        if new_param.contains(p.default):
            new_param = dataclasses.replace(new_param, default=p.default)
        else:
            rules.record(
                Change(
                    "default-removed",
                    path,
                    f"default {_show(p.default)}",
                    "default removed",
                    f"the default {_show(p.default)} is outside the new range, so trials "
                    "without this parameter are not carried",
                ),
                noted=True,
            )
    kind: ChangeKind = "narrowed" if p.low <= low and high <= p.high else "widened"
    new_range = f"{kind} to {_fmt_list([low, high])}"
    rules.record(
        Change(kind, path, old_range, new_range, evidence), True, Change(kind, path, old_range, new_range, assessed)
    )
    return new_param


def _cut(
    s: Side, side: str, kept: Sequence[float], scale: Any, lo: float, hi: float, opts: RefineOptions
) -> Cut | None:
    """The largest cut from ``side`` with a chance of at most ``narrow_p``, keeping every ``kept`` value (the
    best trial's; several objectives: the Pareto set's); ``None`` when there is none or it is smaller than
    ``min_narrow`` of the width."""
    chosen = None
    for cut in s.cuts:
        if cut.chance > opts.narrow_p:
            break
        if kept and (cut.bound >= min(kept) if side == "lower" else cut.bound <= max(kept)):
            break  # the kept trials' values stay inside, with room on both sides
        chosen = cut
    if chosen is None:
        return None
    size = scale(chosen.bound) - lo if side == "lower" else hi - scale(chosen.bound)
    return chosen if size >= opts.min_narrow * (hi - lo) else None


def _pareto_widening(p: Numeric, path: str, kept: Sequence[float], rules: _Rules) -> dict[str, tuple[float, str]]:
    """Several objectives: the sides to widen because a kept (Pareto) trial sits at the bound and an objective's
    own model predicts it lowest there (side -> the step and the note's words); empty with one metric."""
    opts = rules.opts
    if rules.ranking is None or not rules.ranking.multi_objective or not kept:
        return {}
    scale = math.log if p.is_log else float
    lo, hi = scale(p.low), scale(p.high)
    edge = opts.pareto_edge * (hi - lo)
    at = {
        "lower": [v for v in kept if (v == p.low if p.is_stepped else scale(v) - lo <= edge)],
        "upper": [v for v in kept if (v == p.high if p.is_stepped else hi - scale(v) <= edge)],
    }
    out: dict[str, tuple[float, str]] = {}
    for side, sitting in at.items():
        if not sitting:
            continue
        best: tuple[float, str, float] | None = None  # (P, objective, its importance)
        for name, evidence in rules.evidence.objectives.items():
            own = evidence.params.get(path)
            if not isinstance(own, NumberEvidence) or own.importance < opts.min_importance:
                continue
            toward = (own.lower if side == "lower" else own.upper).toward
            if toward >= opts.widen_p and (best is None or toward > best[0]):
                best = (toward, name, own.importance)
        if best is None:
            continue
        toward, name, share = best
        step = opts.widen_step(toward)
        goal = next(m for m in rules.ranking.objectives if m.name == name)
        falls = "falls" if goal.mode == "min" else "rises"
        out[side] = (
            step,
            f"{len(sitting)} Pareto trial(s) at the {side} bound and predicted {name} {falls} toward it (its own "
            f"model: P={toward:.2f} over {rules.evidence.samples} samples, importance {share:.2f} for {name}): "
            f"widened by {step:.0%} of the width",
        )
    return out


def _quiet(p: Numeric, s: Side, side: str, best_seen: str, metric: str) -> str:
    """A side's evidence when it is not widened: how likely the loss is lowest there, the chance of the
    smallest cut."""
    lowest = f"{side} bound: P={s.toward:.2f} that the predicted {metric} is lowest there"
    if not s.cuts:
        return lowest
    first = s.cuts[0]
    return f"{lowest}, P={first.chance:.2f} that {_region(p, side, first.bound)} holds a better one than {best_seen}"


def _region(p: Numeric, side: str, bound: float) -> str:
    """The region a cut from ``side`` back to ``bound`` removes, as an interval."""
    return f"[{_fmt(p.low)}, {_fmt(bound)})" if side == "lower" else f"({_fmt(bound)}, {_fmt(p.high)}]"


def _outward(p: Numeric, low: float, high: float) -> tuple[Any, Any]:
    """Bounds moved outwards onto ``p``'s lattice (stepped ranges) or a readable precision (continuous)."""
    if p.is_stepped:
        return _lattice(p, low, up=False), _lattice(p, high, up=True)
    if p.is_log:
        return _round_sig(low, up=False), _round_sig(high, up=True)
    quantum = 10.0 ** (math.floor(math.log10(high - low)) - 2)
    return _round_to(low, quantum, up=False), _round_to(high, quantum, up=True)


def _inside(p: Numeric, limit: float, up: bool) -> Any:
    """The value of ``p`` nearest to ``limit`` on the inner side (``up`` for the lower limit)."""
    return _lattice(p, limit, up=up) if p.is_stepped else limit


def _lattice(p: Numeric, x: float, up: bool) -> Any:
    """The point of ``p``'s lattice (``low + k * step``, extended past the bounds) at or beyond ``x``."""
    step = p.unit
    k = (x - p.low) / step
    k = math.ceil(k - 1e-9) if up else math.floor(k + 1e-9)
    if p.is_log:  # a log scale stays positive
        k = max(k, math.floor(-p.low / step + 1e-9) + 1)
    value = p.low + k * step
    if type(p.value_at(0)) is int:  # an integer grid: int ranges, and quantized ranges written in whole numbers
        return round(value)
    return clean_float(value)


def _round_sig(x: float, up: bool, digits: int = 2) -> float:
    return _round_to(x, 10.0 ** (math.floor(math.log10(abs(x))) - (digits - 1)), up)


def _round_to(x: float, quantum: float, up: bool) -> float:
    k = x / quantum
    return clean_float((math.ceil(k - 1e-9) if up else math.floor(k + 1e-9)) * quantum)


# --------------------------------------------------------------------------- text


def _fmt(x: float) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _fmt_list(xs: Sequence[float]) -> str:
    return "[" + ", ".join(_fmt(x) for x in xs) + "]"


def _show(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=str)
