"""Carry trials of earlier versions into a new version, so no finished trial is wasted.

A trial is carried when every value it used can come from the new space: inside the new
bounds, among the new choices, equal to fixed values (or to the form trials record them in:
``***`` for a secret-looking key, ``orchestrator.redaction``; a carried trial keeps that form).
A parameter added since takes its declared ``default`` (no default: the trial is dropped); a
parameter removed since is dropped from the trial's configuration. Each dropped trial is counted by reason.
When the new version schedules with ASHA, a carried trial whose per-epoch history is known brings it along
(as losses by epoch), so the searcher counts a trial stopped early at the rungs it reached, not as final.

A version of several objectives or with constraints carries every objective's and constraint's value too (an
``Outcome``, the fourth element of the carried trial): a trial is carried when its first objective is finite (as
with one metric: ``space diff`` counts alike) and so is every other objective it reported; a value it did not
report at all is dropped for, unless it is ``computable`` (a hardware cost such as ``latency_ms``, which depends on
the configuration only): then it is carried with that value missing (``CarryReport.to_compute``), and the engine
computes it from the configuration, without training, before the search starts (``engine.costs``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.redaction import redacted_value

from .errors import ValueNotInSpace
from .kinds import NO_DEFAULT
from .space import Param, SearchSpace
from .trials import RecordedTrial
from .version import Metric, StudyVersion

OUTSIDE = "outside the new range"
NOT_A_CHOICE = "not among the new choices"
NO_DEFAULT_FOR_NEW = "added without a default"
FIXED_DIFFERS = "differs from the fixed value"


@dataclass(frozen=True)
class Outcome:
    """Every objective's and constraint's value of a carried trial: what a search of several objectives, or one
    with constraints, learns from (the fourth element of a ``CarriedTrial``).

    ``values`` maps each name of ``StudyVersion.reported`` to the trial's final value, None for a cost it did not
    report (to compute from its configuration before the search); ``histories`` maps a name to its values by epoch
    where the run recorded them."""

    values: Mapping[str, float | None]
    histories: Mapping[str, Mapping[int, float]] = field(default_factory=dict)

    @property
    def missing(self) -> tuple[str, ...]:
        """The names whose value is still to be computed."""
        return tuple(name for name, value in self.values.items() if value is None)

    def filled(self, values: Mapping[str, float]) -> Outcome:
        """This outcome with the missing ``values`` filled in (computed costs)."""
        return replace(self, values={**self.values, **{k: v for k, v in values.items() if k in self.values}})

    def vector(self, version: StudyVersion, at: Mapping[str, float | None] | None = None) -> tuple[float, ...]:
        """The trial's losses, one per objective (``Metric.loss``), then how far it breaks the constraints
        (``StudyVersion.violation``, 0 when it keeps them): what the searchers rank. ``at`` overrides values (one
        epoch's); a missing objective raises ``ValueError`` (compute the costs first)."""
        values = {**self.values, **(at or {})}
        losses = []
        for goal in version.goals:
            value = values.get(goal.name)
            if value is None or not math.isfinite(value):
                raise ValueError(f"carried trial without a finite {goal.name}: compute its costs first")
            losses.append(goal.loss(value))
        return (*losses, version.violation(values))

    def vectors_by_epoch(self, version: StudyVersion) -> dict[int, tuple[float, ...]]:
        """``vector`` at every epoch the first objective's history holds; a name without a value at that epoch counts
        with its final one (exact for the hardware costs, which do not change while a trial trains)."""
        first = self.histories.get(version.metric.name, {})
        out = {}
        for epoch, value in first.items():
            if not math.isfinite(value):
                continue
            at = {name: h[epoch] for name, h in self.histories.items() if epoch in h and math.isfinite(h[epoch])}
            out[int(epoch)] = self.vector(version, at)
        return out


# What the searcher is warm-started with: (values, loss), or (values, loss, {epoch: loss}) with a known history, or
# with several objectives or constraints (values, loss, {epoch: loss}, Outcome): every objective's and constraint's.
CarriedTrial = (
    tuple[dict[str, Any], float]
    | tuple[dict[str, Any], float, Mapping[int, float]]
    | tuple[dict[str, Any], float, Mapping[int, float], Outcome]
)


@dataclass
class CarryReport:
    """What happened to each earlier trial: carried (some with defaults) or dropped by reason."""

    carried: list[CarriedTrial] = field(default_factory=list)
    carried_from: Counter[int | None] = field(default_factory=Counter)
    defaulted: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    # costs carried trials did not report, by name: computed from their configurations before the search
    to_compute: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return len(self.carried) + sum(self.dropped.values())

    def summary(self) -> str:
        lines = [f"carried {len(self.carried)} of {self.total} earlier trials, dropped {sum(self.dropped.values())}"]
        if self.carried_from:
            lines.append(
                "  carried from: " + ", ".join(f"v{v}: {n}" for v, n in sorted(self.carried_from.items(), key=str))
            )
        lines += [f"  defaulted {path}: {n}" for path, n in sorted(self.defaulted.items())]
        lines += [f"  ignored removed parameter {path}: {n}" for path, n in sorted(self.removed.items())]
        lines += [f"  dropped, {reason}: {n}" for reason, n in self.dropped.most_common()]
        computed = self.to_compute.items()
        lines += [f"  {name} to compute from the configuration (no training): {n}" for name, n in computed]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "carried": len(self.carried),
            "dropped": sum(self.dropped.values()),
            "total": self.total,
            "dropped_by_reason": dict(self.dropped),
            "defaulted": dict(self.defaulted),
            "removed": dict(self.removed),
            **({"to_compute": dict(self.to_compute)} if self.to_compute else {}),
        }


def fit(space: SearchSpace, config: Mapping[str, Any], report: CarryReport | None = None, prefix: str = "") -> dict:
    """``config`` made to fit ``space`` (defaults added, removed keys dropped) or ``ValueNotInSpace``."""
    if not isinstance(config, Mapping):
        raise ValueNotInSpace(prefix.rstrip(".") or "<config>", f"expected a mapping, got {config!r}", OUTSIDE)
    out: dict[str, Any] = {}
    defaulted: list[str] = []
    for name, p in space.params.items():
        path = f"{prefix}{name}"
        if name in config:
            out[name] = _fit_value(p, config[name], path, report)
        elif p.default_value is NO_DEFAULT:
            raise ValueNotInSpace(path, "missing and no default declared", NO_DEFAULT_FOR_NEW)
        else:
            out[name] = p.default_value
            defaulted.append(path)
    if report is not None:
        report.defaulted.update(defaulted)
        report.removed.update(f"{prefix}{k}" for k in config if k not in space.params)
    return out


def _fit_value(p: Param, value: Any, path: str, report: CarryReport | None) -> Any:
    if p.is_fixed:
        name = path.rpartition(".")[2]
        if not p.agrees(name, value):
            raise ValueNotInSpace(path, p.mismatch(name, value), FIXED_DIFFERS)
        return redacted_value(name, value)  # as trials record it: a secret-looking entry stays ***
    if p.is_choice:
        # The option is the one ``select`` picks; the value then fits that option's sub-space.
        i = p.select(value)
        if i is None:
            raise ValueNotInSpace(path, f"{value!r} is not one of {p.describe()}", NOT_A_CHOICE)
        sub = p.sub_space(i)
        return p.options[i] if sub is None else fit(sub, value, report, f"{path}.")
    if not p.contains(value):
        raise ValueNotInSpace(path, f"{value!r} is outside {p.describe()}", OUTSIDE)
    return value


def carry(trials: Iterable[RecordedTrial], version: StudyVersion, computable: Collection[str] = ()) -> CarryReport:
    """Sort earlier trials into carried (fitted to ``version``) and dropped (by reason). ``computable`` names the
    values a trial may lack that are computed from its configuration before the search (hardware costs)."""
    report = CarryReport()
    metric = version.metric
    with_history = version.schedule.scheduler == "asha"  # FIFO compares trials at the end only
    several = version.multi_objective or bool(version.constraints)
    for trial in trials:
        if trial.status != "FINISHED":
            report.dropped[f"not finished ({trial.status})"] += 1
            continue
        if trial.value is None or not math.isfinite(trial.value):
            report.dropped[f"no finite {metric.name} reported"] += 1
            continue
        outcome = None
        if several:
            outcome, problem = _outcome(trial, version, computable)
            if problem:
                report.dropped[problem] += 1
                continue
        scratch = CarryReport()
        try:
            fitted = fit(version.params, trial.config, scratch)
        except ValueNotInSpace as e:
            report.dropped[f"{e.path} {e.category}"] += 1
            continue
        report.defaulted.update(scratch.defaulted)
        report.removed.update(scratch.removed)
        loss = metric.loss(trial.value)
        history = _losses_by_epoch(trial.history, metric) if with_history else {}
        if outcome is not None:
            report.carried.append((fitted, loss, history, outcome))
            report.to_compute.update(outcome.missing)
        else:
            report.carried.append((fitted, loss, history) if history else (fitted, loss))
        report.carried_from[trial.version] += 1
    return report


def _outcome(trial: RecordedTrial, version: StudyVersion, computable: Collection[str]) -> tuple[Outcome, str]:
    """Every objective's and constraint's value of ``trial`` as an ``Outcome``, or why it is dropped: an objective
    without a finite value that cannot be computed. A constrained value that is missing (and not computable) stays
    missing: the trial then breaks that constraint (``Constraint.violation``), as one that reports a value that is
    not finite does."""
    objectives = {m.name for m in version.goals}
    values: dict[str, float | None] = {}
    for name in version.reported:
        value = trial.value if name == version.metric.name else trial.values.get(name)
        if value is None and name in computable:
            values[name] = None
        elif name in objectives and (value is None or not math.isfinite(value)):
            return Outcome({}), f"no finite {name} reported"
        else:
            values[name] = math.nan if value is None else float(value)
    histories = dict(trial.histories)
    if trial.history:
        histories[version.metric.name] = trial.history
    return Outcome(values, {k: v for k, v in histories.items() if k in values}), ""


def _losses_by_epoch(history: Mapping[int, float] | None, metric: Metric) -> dict[int, float]:
    """A trial's per-epoch values of ``metric`` as losses (the searcher's sense), non-finite ones left out."""
    return {int(epoch): metric.loss(value) for epoch, value in (history or {}).items() if math.isfinite(value)}
