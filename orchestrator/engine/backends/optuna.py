"""The one place that speaks optuna: a space's parameters as optuna distributions, both ways.

Parameter names are the structural paths hyperopt uses as labels
(``optimizer[1].momentum``), so two options may both have a ``momentum``. What optuna
stores per kind (its "internal" value; the trainable only ever sees values):

==============  ============================================  ======================
kind            optuna distribution                           stored -> value
==============  ============================================  ======================
uniform         ``FloatDistribution(low, high)``              value itself
loguniform      ``FloatDistribution(low, high, log=True)``    value itself
quniform        ``FloatDistribution(low, high, step=q)``      value (noise cleaned)
quniform, int   ``IntDistribution(low, high, step=q)``        value itself
qloguniform     ``IntDistribution(low/q, high/q, log=True)``  ``k * q``
int             ``IntDistribution(low, high, step)``          value itself
int, log        ``IntDistribution(low, high, log=True)``      value itself
choice          ``CategoricalDistribution(0..n-1)``           ``options[k]``
==============  ============================================  ======================

optuna has no log scale with a step for floats, so ``qloguniform`` samples the
multiple ``k`` of ``q`` on a log scale. Stored values become values through the space
model's ``snap`` (nearest value of the range), so float noise never leaves the range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from orchestrator.spaces.space import Param, SearchSpace

if TYPE_CHECKING:
    from orchestrator.spaces.space import ActiveParam


@dataclass(frozen=True)
class _Stored:
    """How optuna holds one searched parameter: its distribution and the value of one stored unit."""

    distribution: BaseDistribution
    unit: float = 1.0  # value = stored * unit (qloguniform stores the multiple of q)

    def encode(self, a: ActiveParam) -> Any:
        stored = a.value / self.unit
        return round(stored) if isinstance(self.distribution, IntDistribution) else float(stored)

    def decode(self, p: Param, raw: Any) -> Any:
        """A stored value -> the parameter's value."""
        return p.snap(raw * self.unit)


class _StoredOption(_Stored):
    """A choice: optuna holds the option index (``SearchSpace.build`` picks the option from it)."""

    def encode(self, a: ActiveParam) -> int:
        return a.option

    def decode(self, p: Param, raw: Any) -> int:
        return int(raw)


def _stored(p: Param) -> _Stored:
    """The one dispatch over parameter kinds (the module table)."""
    if p.is_choice:
        return _StoredOption(CategoricalDistribution(list(range(len(p.options)))))
    if not p.is_stepped:
        return _Stored(FloatDistribution(p.low, p.high, log=p.is_log))
    if p.is_log:  # optuna has no stepped log scale: the multiple of the step, on a log scale
        return _Stored(IntDistribution(round(p.low / p.unit), round(p.high / p.unit), log=True), unit=p.unit)
    if type(p.value_at(0)) is int:  # an integer grid (int, or quniform written with whole numbers)
        return _Stored(IntDistribution(round(p.low), round(p.high), step=round(p.unit)))
    return _Stored(FloatDistribution(p.low, p.high, step=p.unit))


def _suggest(trial: optuna.Trial, name: str, d: BaseDistribution) -> Any:
    if isinstance(d, FloatDistribution):
        return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(name, list(d.choices))
    raise TypeError(f"unsupported distribution {d!r}")


def sample(space: SearchSpace, trial: optuna.Trial) -> dict[str, Any]:
    """Define-by-run: a configuration of values, sampling only the active parameters."""

    def draw(label: str, p: Param) -> Any:
        stored = _stored(p)
        return stored.decode(p, _suggest(trial, label, stored.distribution))

    return space.build(draw)


def encode(space: SearchSpace, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    """A configuration -> optuna ``params`` and ``distributions`` of its active parameters.

    Raises ``ValueNotInSpace`` when ``config`` cannot come from ``space``.
    """
    params: dict[str, Any] = {}
    dists: dict[str, BaseDistribution] = {}
    for a in space.active(config):
        if a.param.is_fixed:
            continue
        stored = _stored(a.param)
        params[a.label], dists[a.label] = stored.encode(a), stored.distribution
    return params, dists
