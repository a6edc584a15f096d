"""The one place that speaks hyperopt: space -> expression, and internal encoding <-> values.

hyperopt stores each trial's draw in ``misc.vals`` as ``{label: [v]}`` (``[]`` when the
label is inactive under a conditional choice). Its encoding differs from the values a
trainable sees: choices are stored as option *indices*, quantized ranges here as step
indices. ``encode`` and ``decode`` translate both ways; nothing outside this module
sees an index. Labels are structural paths (``optimizer[1].momentum``) so that two
options may both have a ``momentum`` without clashing.

Encoding per parameter kind (``val`` is what ``misc.vals`` holds):

==============  ===========================================  ===========================
kind            hyperopt primitive                           val -> value
==============  ===========================================  ===========================
uniform         ``uniform(low, high)``                       value itself
loguniform      ``loguniform(log low, log high)``            value itself
quniform        ``uniform(-0.5, n + 0.5)``                   ``low + round(k) * q``
qloguniform     ``loguniform(log low, log high)``            ``round(v / q) * q``
int             ``uniform(-0.5, n + 0.5)``                   ``low + round(k) * step``
int, log        ``loguniform(log low, log high)``            ``round(v)``
choice          ``choice([...])``                            ``options[k]``
==============  ===========================================  ===========================

Drawing continuously and rounding to the nearest step (rather than ``randint`` or
hyperopt's ``q*`` distributions) keeps integer ranges ordered for TPE, keeps suggestions
fast with many prior trials, and bounds stay inclusive (``n`` is the number of steps).
Rounding is the space model's (``value_at``, ``snap``: half up, clamped), and the expression
calls the same functions, so ``hyperopt.space_eval`` and ``decode`` agree by construction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from hyperopt import JOB_STATE_DONE, STATUS_OK, Trials, hp
from hyperopt.pyll import scope

from orchestrator.spaces.space import Choice, Param, SearchSpace

if TYPE_CHECKING:
    from orchestrator.spaces.space import ActiveParam


def _half_up(x: float) -> int:
    """Round half up (``round`` rounds half to even)."""
    return math.floor(x + 0.5)


def _clamp(x: int, lo: int, hi: int) -> int:
    return lo if x < lo else hi if x > hi else x


@scope.define
def orchestrator_value_at_step(p: Any, k: float) -> Any:
    """The value of step ``round(k)`` of a stepped range (a draw over ``[-0.5, n + 0.5]``)."""
    return p.value_at(_clamp(_half_up(k), 0, p.steps))


@scope.define
def orchestrator_snap(p: Any, x: float) -> Any:
    """The value of the range nearest to the draw ``x``."""
    return p.snap(x)


# --------------------------------------------------------------------------- the one dispatch over kinds


@dataclass(frozen=True)
class _Codec:
    """How one kind of searched parameter is drawn and stored (a row of the module table)."""

    expr: Callable[[str, Any], Any]  # (label, param) -> a hyperopt expression whose value is the value
    encode: Callable[[ActiveParam], Any]  # an active parameter -> its val
    decode: Callable[[Any, float], Any]  # (param, val) -> the value (for a choice: the option index)
    draw: Callable[[Any, np.random.Generator], float]  # (param, rng) -> a val, drawn as the hyperopt primitive draws


def _value_expr(label: str, p: Any) -> Any:
    draw = hp.loguniform(label, math.log(p.low), math.log(p.high)) if p.is_log else hp.uniform(label, p.low, p.high)
    return scope.orchestrator_snap(p, draw)


def _value_draw(p: Any, rng: np.random.Generator) -> float:
    if p.is_log:
        return math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
    return rng.uniform(p.low, p.high)


def _choice_expr(label: str, p: Choice) -> Any:
    options = [
        opt if (sub := p.sub_space(i)) is None else to_hyperopt(sub, f"{label}[{i}].")
        for i, opt in enumerate(p.options)
    ]
    return hp.choice(label, options)


# Numeric ranges drawn over their own scale (linear or log); val is the value.
_VALUES = _Codec(_value_expr, lambda a: float(a.value), orchestrator_snap, _value_draw)
# Linear stepped ranges drawn over step indices (uniform(-0.5, n + 0.5)); val is the index.
_STEPS = _Codec(
    lambda label, p: scope.orchestrator_value_at_step(p, hp.uniform(label, -0.5, p.steps + 0.5)),
    lambda a: float(a.param.index_of(a.value)),
    orchestrator_value_at_step,
    lambda p, rng: rng.uniform(-0.5, p.steps + 0.5),
)
# Choices; val is the option index (``SearchSpace.build`` picks the option from it).
_OPTIONS = _Codec(
    _choice_expr,
    lambda a: a.option,
    lambda p, raw: _clamp(int(raw), 0, len(p.options) - 1),
    lambda p, rng: rng.integers(len(p.options)),
)


def _codec(p: Param) -> _Codec:
    """How a searched parameter is drawn and stored (the module table)."""
    if p.is_choice:
        return _OPTIONS
    if p.is_stepped and not p.is_log:
        return _STEPS
    return _VALUES


@dataclass(frozen=True)
class Axis:
    """One label as TPE models it: the range of its hyperopt draw (``low``, ``high``, on a log scale when ``log``)
    or, for a choice, its number of ``options`` (its val is the option index). ``group`` names the labels drawn
    together: ``""`` for the top level, ``"optimizer[1]."`` for the sub-space of option 1 of ``optimizer``.
    ``grid``: a linear stepped range, drawn over its positions (``-0.5`` to ``steps + 0.5``, rounded)."""

    label: str
    group: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    options: int = 0
    grid: bool = False


def axes(space: SearchSpace) -> list[Axis]:
    """Every label of the space (``labels``) as TPE's model sees its draw (the module table)."""
    out = []
    for label, p in space.walk():
        if p.is_fixed:
            continue
        group = label[: label.rfind("].") + 2] if "]." in label else ""
        codec = _codec(p)
        if codec is _OPTIONS:
            out.append(Axis(label, group, options=len(p.options)))
        elif codec is _STEPS:
            out.append(Axis(label, group, -0.5, p.steps + 0.5, grid=True))
        elif p.is_log:
            out.append(Axis(label, group, math.log(p.low), math.log(p.high), log=True))
        else:
            out.append(Axis(label, group, float(p.low), float(p.high)))
    return out


# --------------------------------------------------------------------------- space -> expression, vals <-> values


def labels(space: SearchSpace) -> list[str]:
    """Every hyperopt label of the space (searched parameters only, nested ones included)."""
    return [path for path, p in space.walk() if not p.is_fixed]


def to_hyperopt(space: SearchSpace, prefix: str = "") -> dict[str, Any]:
    """A hyperopt expression whose evaluation (``hyperopt.space_eval``) is a configuration."""
    return {name: p.value if p.is_fixed else _codec(p).expr(f"{prefix}{name}", p) for name, p in space.params.items()}


def decode(space: SearchSpace, vals: Mapping[str, Any]) -> dict[str, Any]:
    """hyperopt's ``misc.vals`` (``{label: [v]}`` or ``{label: v}``) -> a configuration of values."""

    def draw(label: str, p: Param) -> Any:
        raw = vals.get(label)
        if isinstance(raw, list | tuple):
            raw = raw[0] if raw else None
        if raw is None:
            raise KeyError(f"hyperopt gave no value for active parameter {label!r}")
        return _codec(p).decode(p, float(raw))

    return space.build(draw)


def encode(space: SearchSpace, config: Mapping[str, Any]) -> dict[str, list[Any]]:
    """A configuration -> ``misc.vals`` with every label (``[]`` for inactive ones).

    Raises ``ValueNotInSpace`` naming the dotted value path (``optimizer.momentum``) and
    why the value cannot come from this space.
    """
    vals: dict[str, list[Any]] = {label: [] for label in labels(space)}
    vals.update({a.label: [_codec(a.param).encode(a)] for a in space.active(config) if not a.param.is_fixed})
    return vals


def sample(space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    """A random configuration of values, drawn from the primitives the expression uses (as hyperopt's random
    search draws: uniform over steps and options, log-uniform on log scales), without hyperopt's overhead."""

    def draw(label: str, p: Param) -> Any:
        codec = _codec(p)
        return codec.decode(p, codec.draw(p, rng))

    return space.build(draw)


# --------------------------------------------------------------------------- scored trials


def trial_misc(tid: int, vals: Mapping[str, list[Any]]) -> dict[str, Any]:
    """The ``misc`` part of a trial document holding ``vals``."""
    return {
        "tid": tid,
        "cmd": ("domain_attachment", "FMinIter_Domain"),
        "workdir": None,
        "idxs": {label: [tid] if v else [] for label, v in vals.items()},
        "vals": dict(vals),
    }


def scored_trials(space: SearchSpace, scored: Iterable[tuple[Mapping[str, Any], float]]) -> Trials:
    """A hyperopt ``Trials`` holding finished, scored trials, built directly as documents.

    ``scored`` yields ``(config, loss)`` pairs (loss: lower is better). Every config must
    fit the space (carry it first); this is O(n), unlike replaying points through ``fmin``.
    """
    trials = Trials()
    tids, results, miscs = [], [], []
    for tid, (config, loss) in enumerate(scored):
        tids.append(tid)
        results.append({"loss": float(loss), "status": STATUS_OK})
        miscs.append(trial_misc(tid, encode(space, config)))
    if tids:
        docs = trials.new_trial_docs(tids, [None] * len(tids), results, miscs)
        for doc in docs:
            doc["state"] = JOB_STATE_DONE
        trials.insert_trial_docs(docs)
    trials.refresh()
    return trials
