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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from hyperopt import JOB_STATE_DONE, STATUS_OK, Trials, hp
from hyperopt.pyll import scope

from .errors import ValueNotInSpace
from .model import (
    Choice,
    Fixed,
    IntRange,
    LogUniform,
    Param,
    QLogUniform,
    QUniform,
    SearchSpace,
    Uniform,
    clean_float,
    same_value,
)


def _label(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def labels(space: SearchSpace) -> list[str]:
    """Every hyperopt label of the space (searched parameters only, nested ones included)."""
    return [path for path, p in space.walk() if not isinstance(p, Fixed)]


# --------------------------------------------------------------------------- space -> expression


def to_hyperopt(space: SearchSpace, prefix: str = "") -> dict[str, Any]:
    """A hyperopt expression whose evaluation (``hyperopt.space_eval``) is a configuration."""
    return {name: _expr(_label(prefix, name), p) for name, p in space.params.items()}


def _expr(label: str, p: Param) -> Any:
    if isinstance(p, Fixed):
        return p.value
    if isinstance(p, Uniform):
        return hp.uniform(label, p.low, p.high)
    if isinstance(p, LogUniform):
        return hp.loguniform(label, math.log(p.low), math.log(p.high))
    # Steps are drawn from continuous distributions and rounded (half up): hyperopt's own
    # quantized distributions cost a Python loop over every earlier trial per suggestion.
    if isinstance(p, QUniform):
        k = scope.int(hp.uniform(label, -0.5, p.steps + 0.5) + 0.5)
        return k * round(p.q) + round(p.low) if p.integer else k * p.q + p.low
    if isinstance(p, QLogUniform):
        k = scope.int(hp.loguniform(label, math.log(p.low), math.log(p.high)) / p.q + 0.5)
        return k * round(p.q) if p.integer else k * p.q
    if isinstance(p, IntRange):
        if p.log_scale:
            return scope.int(hp.loguniform(label, math.log(p.low), math.log(p.high)) + 0.5)
        return scope.int(hp.uniform(label, -0.5, p.steps + 0.5) + 0.5) * p.step + p.low
    if isinstance(p, Choice):
        return hp.choice(
            label,
            [
                to_hyperopt(opt, f"{label}[{i}].") if isinstance(opt, SearchSpace) else opt
                for i, opt in enumerate(p.options)
            ],
        )
    raise TypeError(f"unsupported parameter {p!r}")


# --------------------------------------------------------------------------- vals -> values


def decode(space: SearchSpace, vals: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """hyperopt's ``misc.vals`` (``{label: [v]}`` or ``{label: v}``) -> a configuration of values."""
    config: dict[str, Any] = {}
    for name, p in space.params.items():
        label = _label(prefix, name)
        if isinstance(p, Fixed):
            config[name] = p.value
            continue
        raw = vals.get(label)
        if isinstance(raw, list | tuple):
            raw = raw[0] if raw else None
        if raw is None:
            raise KeyError(f"hyperopt gave no value for active parameter {label!r}")
        if isinstance(p, Choice):
            i = _clamp(int(raw), 0, len(p.options) - 1)
            opt = p.options[i]
            config[name] = decode(opt, vals, f"{label}[{i}].") if isinstance(opt, SearchSpace) else opt
        else:
            config[name] = _decode_number(p, float(raw))
    return config


def _decode_number(p: Param, v: float) -> Any:
    if isinstance(p, Uniform | LogUniform):
        return min(max(v, p.low), p.high)
    if isinstance(p, QUniform):
        k = _clamp(_half_up(v), 0, p.steps)
        value = p.low if k == 0 else p.high if k == p.steps else _within(p, clean_float(p.low + k * p.q))
        return round(value) if p.integer else value
    if isinstance(p, QLogUniform):
        k = _clamp(_half_up(v / p.q), round(p.low / p.q), round(p.high / p.q))
        value = _within(p, clean_float(k * p.q))
        return round(value) if p.integer else value
    if isinstance(p, IntRange):
        if p.log_scale:
            return _clamp(_half_up(v), p.low, p.high)
        return p.low + _clamp(_half_up(v), 0, p.steps) * p.step
    raise TypeError(f"unsupported parameter {p!r}")


def _half_up(x: float) -> int:
    """Round half up, as ``scope.int(x + 0.5)`` does in the expression (``round`` rounds half to even)."""
    return math.floor(x + 0.5)


def _within(p: QUniform | QLogUniform, v: float) -> float:
    """Keep float noise in the bounds from pushing a value outside them."""
    return min(max(v, p.low), p.high)


def _clamp(x: int, lo: int, hi: int) -> int:
    return lo if x < lo else hi if x > hi else x


# --------------------------------------------------------------------------- values -> vals


def encode(space: SearchSpace, config: Mapping[str, Any]) -> dict[str, list[Any]]:
    """A configuration -> ``misc.vals`` with every label (``[]`` for inactive ones).

    Raises ``ValueNotInSpace`` naming the dotted value path (``optimizer.momentum``) and
    why the value cannot come from this space.
    """
    vals: dict[str, list[Any]] = {label: [] for label in labels(space)}
    _encode_into(space, config, "", "", vals)
    return vals


def _encode_into(
    space: SearchSpace, config: Mapping[str, Any], prefix: str, vpath: str, vals: dict[str, list[Any]]
) -> None:
    if not isinstance(config, Mapping):
        raise ValueNotInSpace(vpath.rstrip(".") or "<config>", f"expected a mapping, got {config!r}")
    for key in config:
        if key not in space.params:
            raise ValueNotInSpace(f"{vpath}{key}", "not a parameter of this space")
    for name, p in space.params.items():
        label, path = _label(prefix, name), f"{vpath}{name}"
        if name not in config:
            raise ValueNotInSpace(path, "missing")
        value = config[name]
        if isinstance(p, Fixed):
            if not same_value(value, p.value):
                raise ValueNotInSpace(path, f"{value!r} differs from the fixed value {p.value!r}")
            continue
        if isinstance(p, Choice):
            i = _option_for(p, value, path)
            vals[label] = [i]
            opt = p.options[i]
            if isinstance(opt, SearchSpace):
                _encode_into(opt, value, f"{label}[{i}].", f"{path}.", vals)
            continue
        if not p.contains(value):
            raise ValueNotInSpace(path, f"{value!r} is outside {p.describe()}")
        vals[label] = [_encode_number(p, value)]


def _option_for(p: Choice, value: Any, path: str) -> int:
    for i, opt in enumerate(p.options):
        if isinstance(opt, SearchSpace):
            if isinstance(value, Mapping) and _fixed_match(opt, value):
                return i
        elif same_value(opt, value):
            return i
    raise ValueNotInSpace(path, f"{value!r} is not one of {p.describe()}")


def _fixed_match(opt: SearchSpace, value: Mapping[str, Any]) -> bool:
    """Whether ``value`` picks this option: same keys and the option's fixed entries agree."""
    if value.keys() != opt.params.keys():
        return False
    return all(same_value(value[k], q.value) for k, q in opt.params.items() if isinstance(q, Fixed))


def _encode_number(p: Param, value: Any) -> float:
    if isinstance(p, QUniform):
        return float(round((value - p.low) / p.q))
    if isinstance(p, IntRange) and not p.log_scale:
        return float((int(value) - p.low) // p.step)
    return float(value)


# --------------------------------------------------------------------------- scored trials


def scored_trials(space: SearchSpace, scored: Iterable[tuple[Mapping[str, Any], float]]) -> Trials:
    """A hyperopt ``Trials`` holding finished, scored trials, built directly as documents.

    ``scored`` yields ``(config, loss)`` pairs (loss: lower is better). Every config must
    fit the space (carry it first); this is O(n), unlike replaying points through ``fmin``.
    """
    trials = Trials()
    label_list = labels(space)
    tids, results, miscs = [], [], []
    for tid, (config, loss) in enumerate(scored):
        vals = encode(space, config)
        tids.append(tid)
        results.append({"loss": float(loss), "status": STATUS_OK})
        miscs.append(
            {
                "tid": tid,
                "cmd": ("domain_attachment", "FMinIter_Domain"),
                "workdir": None,
                "idxs": {label: [tid] if vals[label] else [] for label in label_list},
                "vals": vals,
            }
        )
    if tids:
        docs = trials.new_trial_docs(tids, [None] * len(tids), results, miscs)
        for doc in docs:
            doc["state"] = JOB_STATE_DONE
        trials.insert_trial_docs(docs)
    trials.refresh()
    return trials
