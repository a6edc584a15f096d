"""A study version: the space with its metric (or objectives and constraints), schedule, resources and search
settings, and its content hash."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

from .space import SearchSpace

# --------------------------------------------------------------------------- study versions


@dataclass(frozen=True)
class Metric:
    name: str
    mode: Literal["min", "max"]

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is better than ``b``."""
        return a < b if self.mode == "min" else a > b

    def loss(self, value: float) -> float:
        """The value as a loss to minimise (what TPE wants)."""
        return value if self.mode == "min" else -value


MAX_OBJECTIVES = 3  # a front of more objectives is too large to read, and hypervolume too slow to compute


@dataclass(frozen=True)
class Constraint:
    """A bound on a reported metric: a trial whose value breaks it is infeasible (ranked after every feasible one,
    never the best). ``max`` and ``min`` are inclusive; at least one is set."""

    name: str
    max: float | None = None
    min: float | None = None

    def __post_init__(self) -> None:
        if self.max is None and self.min is None:
            raise ValueError("a constraint needs max, min or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min <= max must hold, but got (min={self.min}, max={self.max})")

    def violation(self, value: float | None) -> float:
        """How far ``value`` lies outside the bounds (0 when it satisfies them; infinite when it is missing or not
        finite): what Optuna's constraint function and the feasible-last ranking read."""
        if value is None or not math.isfinite(value):
            return math.inf
        over = value - self.max if self.max is not None else 0.0
        under = self.min - value if self.min is not None else 0.0
        return max(over, under, 0.0)

    def scaled_violation(self, value: float | None) -> float:
        """``violation`` in units of the bound it breaks (its absolute value, 1 for a bound of 0), so constraints on
        metrics of different units (parameters, milliseconds) add up to a total (``StudyVersion.violation``)."""
        broken = self.violation(value)
        if broken == 0.0 or math.isinf(broken):
            return broken
        bound = self.max if self.max is not None and value is not None and value > self.max else self.min
        return broken / (abs(bound) if bound else 1.0)

    def spec(self) -> dict[str, float]:
        return {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}

    def describe(self) -> str:
        return " and ".join(f"{self.name} {'<=' if k == 'max' else '>='} {v:g}" for k, v in self.spec().items())


def total_violation(constraints: Sequence[Constraint], values: Mapping[str, float | None]) -> float:
    """``StudyVersion.violation`` for ``constraints``: the sum of each one's ``scaled_violation`` of ``values``."""
    return sum((c.scaled_violation(values.get(c.name)) for c in constraints), 0.0)


@dataclass(frozen=True)
class Schedule:
    """Early stopping. ``asha`` stops weak trials at rungs; ``fifo`` runs every trial to the end.

    ``brackets`` > 1 makes ASHA asynchronous Hyperband (Ray Tune's ``ASHAScheduler(brackets=...)``): bracket
    ``s`` starts stopping at ``grace_period * reduction_factor**s``, so a trial drawn into a later bracket is
    judged only after more epochs, and the last of ``max_brackets()`` brackets never stops a trial early.
    Trials join the brackets in Hyperband's proportions, most of them the first, the most aggressive
    (``engine.brackets``).
    Slow starters that end best then still reach the full budget now and then, which one bracket never allows
    when early ranking misleads (``bench.search_at_scale``)."""

    scheduler: Literal["asha", "fifo"] = "asha"
    max_epochs: int = 10
    grace_period: int = 1
    reduction_factor: float = 3.0
    brackets: int = 1

    # Fields added after content hashes were recorded (see ``SearchSettings``).
    _HASHED_WHEN_SET: ClassVar[tuple[str, ...]] = ("brackets",)

    def asha_milestones(self) -> tuple[float, ...]:
        """Where Ray Tune's ASHA judges trials before ``max_epochs``: ``grace_period * reduction_factor**k``, each
        at a trial's first result at or past it, so only those whose epoch (rounded up) comes before ``max_epochs``."""
        milestones: list[float] = []
        milestone = float(self.grace_period)
        while math.ceil(milestone - 1e-9) < self.max_epochs:
            milestones.append(milestone)
            milestone *= self.reduction_factor
        return tuple(milestones)

    def max_brackets(self) -> int:
        """The most brackets that differ: one per ASHA milestone (``asha_milestones``), plus one that never stops a
        trial early."""
        return len(self.asha_milestones()) + 1

    def canonical(self) -> dict[str, Any]:
        """The settings that enter the content hash."""
        return _without_defaults(self, self._HASHED_WHEN_SET)


@dataclass(frozen=True)
class Resources:
    """Per-trial resources; fractional GPUs below 1 let several trials share a card."""

    cpu: float = 1.0
    gpu: float = 0.0


LIARS = ("worst", "mean", "best", "off")  # what a running trial counts as at a suggestion (``search.liar``)


@dataclass(frozen=True)
class SearchSettings:
    """Searcher and budget defaults; the command line can override trials and concurrency."""

    algorithm: str = "tpe"  # a searcher name; the engine's searcher registry says which exist
    trials: int = 20
    concurrency: int | None = None
    startup_trials: int = 10
    max_failures: int = 1
    # What a running trial counts as while another is suggested (constant liar): the worst, mean or best loss
    # observed, or nothing (off). Only concurrent searches have running trials at a suggestion.
    liar: str = "worst"  # one of LIARS
    # With ASHA the searcher fits on the highest rung with at least this many observations (None: d + 2 for d
    # searched parameters).
    min_rung_trials: int | None = None
    # Whether a suggestion may repeat the values of a scored or running trial. False: the searcher proposes
    # values no trial has (a repeat runs again what is known), until every configuration of a finite space is.
    repeats: bool = False

    # Fields added after content hashes were recorded: hashed only when set to something else than their
    # default, so a file that does not use them keeps the hash its recorded trials ran with.
    _HASHED_WHEN_SET: ClassVar[tuple[str, ...]] = ("liar", "min_rung_trials", "repeats")

    def canonical(self) -> dict[str, Any]:
        """The settings that enter the content hash."""
        return _without_defaults(self, self._HASHED_WHEN_SET)


@dataclass(frozen=True)
class StudyVersion:
    """One version of a study's search space, as written in ``search_spaces/<study>/vN.yaml``."""

    study: str
    version: int
    trainable: str
    metric: Metric
    params: SearchSpace
    parent: int | None = None
    schedule: Schedule = Schedule()
    resources: Resources = Resources()
    search: SearchSettings = SearchSettings()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""
    source: str | None = field(default=None, compare=False)
    # Several objectives (``objectives:`` in the file, 2 or 3) instead of one ``metric:``; ``metric`` is then the
    # first of them, what single-objective code (the stock ASHA scheduler, a leaderboard's sort) reads.
    objectives: tuple[Metric, ...] = ()
    constraints: tuple[Constraint, ...] = ()

    @property
    def goals(self) -> tuple[Metric, ...]:
        """Every objective: the ``objectives``, or the one ``metric``."""
        return self.objectives or (self.metric,)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def reported(self) -> tuple[str, ...]:
        """The metric names a trial must report: every objective's and every constraint's."""
        names = [m.name for m in self.goals] + [c.name for c in self.constraints]
        return tuple(dict.fromkeys(names))

    def violation(self, values: Mapping[str, float | None]) -> float:
        """How far a trial's ``values`` (metric name -> value) break the constraints: the sum of each constraint's
        ``scaled_violation`` (infinite when a constrained value is missing or not finite); 0 when all hold, and
        always 0 without constraints. The one total the searchers, early stopping and the review rank
        infeasible trials by (``engine.pareto.ranks``: the less broken, the earlier)."""
        return total_violation(self.constraints, values)

    def canonical(self) -> dict[str, Any]:
        """Everything that decides which trials run; not version, parent, notes or the file. A file with one
        ``metric`` and no constraints hashes as before objectives existed."""
        goals: dict[str, Any] = (
            {"objectives": [{"name": m.name, "mode": m.mode} for m in self.objectives]}
            if self.objectives
            else {"metric": {"name": self.metric.name, "mode": self.metric.mode}}
        )
        if self.constraints:
            goals["constraints"] = {c.name: _canon_numbers(c.spec()) for c in self.constraints}
        return {
            "study": self.study,
            "trainable": self.trainable,
            **goals,
            "schedule": _canon_numbers(self.schedule.canonical()),
            "resources": _canon_numbers(vars_of(self.resources)),
            "search": _canon_numbers(self.search.canonical()),
            "fixed": dict(self.fixed),
            "params": _canon_numbers(self.params.canonical()),
        }

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical form: stable under key order, formatting and comments."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.content_hash[:12]

    @property
    def label(self) -> str:
        return f"{self.study} v{self.version}"

    def trial_config(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """What a trainable receives: the fixed section plus the sampled parameter values."""
        return {**self.fixed, **values}


def vars_of(obj: Any) -> dict[str, Any]:
    """A dataclass's fields by name (``dataclasses.fields``: class variables are not fields)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _without_defaults(settings: Any, hashed_when_set: tuple[str, ...]) -> dict[str, Any]:
    """A settings dataclass's fields, less those of ``hashed_when_set`` that hold their default: fields added
    after content hashes were recorded, so a file that does not use them keeps the hash its trials ran with."""
    defaults = type(settings)()
    return {k: v for k, v in vars_of(settings).items() if k not in hashed_when_set or v != getattr(defaults, k)}


def _canon_numbers(x: Any) -> Any:
    """Floats that are whole numbers hash like the ints a user might have written instead."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, dict):
        return {k: _canon_numbers(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_canon_numbers(v) for v in x]
    return x
