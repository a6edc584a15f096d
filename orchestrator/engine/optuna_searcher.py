"""Optuna's TPE as a Ray Tune searcher, warm-started from scored earlier trials.

Chosen with ``search: {algorithm: optuna_tpe}`` in the space file; the surface is the
same as ``WarmStartSearcher``'s. The study lives in memory: carried ``(config, loss)``
pairs enter it as completed trials (``study.add_trial``), new trials go through
ask/tell and the space is sampled define-by-run, so a conditional sub-space is only
sampled when its option is chosen (``group=True`` lets TPE model each sub-space).

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
multiple ``k`` of ``q`` on a log scale. State is saved as JSON (values, never pickles);
a resumed search rebuilds the study from the carried and completed trials.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from orchestrator.spaces.errors import ValueNotInSpace
from orchestrator.spaces.model import (
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
)

from .searcher import SpaceSearcher

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --------------------------------------------------------------------------- space <-> optuna


def distribution(p: Param) -> BaseDistribution:
    """The optuna distribution of one searched parameter (see the module table)."""
    if isinstance(p, Uniform):
        return FloatDistribution(p.low, p.high)
    if isinstance(p, LogUniform):
        return FloatDistribution(p.low, p.high, log=True)
    if isinstance(p, QUniform):
        if p.integer:
            return IntDistribution(round(p.low), round(p.high), step=round(p.q))
        return FloatDistribution(p.low, p.high, step=p.q)
    if isinstance(p, QLogUniform):
        return IntDistribution(round(p.low / p.q), round(p.high / p.q), log=True)
    if isinstance(p, IntRange):
        return IntDistribution(p.low, p.high, log=p.log_scale, step=p.step)
    if isinstance(p, Choice):
        return CategoricalDistribution(list(range(len(p.options))))
    raise TypeError(f"unsupported parameter {p!r}")


def _suggest(trial: optuna.Trial, name: str, d: BaseDistribution) -> Any:
    if isinstance(d, FloatDistribution):
        return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(name, list(d.choices))
    raise TypeError(f"unsupported distribution {d!r}")


def sample(space: SearchSpace, trial: optuna.Trial, prefix: str = "") -> dict[str, Any]:
    """Define-by-run: a configuration of values, sampling only the active parameters."""
    config: dict[str, Any] = {}
    for name, p in space.params.items():
        label = f"{prefix}{name}"
        if isinstance(p, Fixed):
            config[name] = p.value
            continue
        raw = _suggest(trial, label, distribution(p))
        if isinstance(p, Choice):
            opt = p.options[int(raw)]
            config[name] = sample(opt, trial, f"{label}[{int(raw)}].") if isinstance(opt, SearchSpace) else opt
        else:
            config[name] = _value(p, raw)
    return config


def _value(p: Param, raw: Any) -> Any:
    if isinstance(p, Uniform | LogUniform):
        return min(max(float(raw), p.low), p.high)
    if isinstance(p, QUniform):
        if p.integer:
            return int(raw)
        return min(max(clean_float(float(raw)), p.low), p.high)
    if isinstance(p, QLogUniform):
        value = min(max(clean_float(int(raw) * p.q), p.low), p.high)
        return round(value) if p.integer else value
    if isinstance(p, IntRange):
        return int(raw)
    raise TypeError(f"unsupported parameter {p!r}")


def encode(
    space: SearchSpace, config: Mapping[str, Any], prefix: str = "", vpath: str = ""
) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    """A configuration -> optuna ``params`` and ``distributions`` of its active parameters."""
    if not isinstance(config, Mapping):
        raise ValueNotInSpace(vpath.rstrip(".") or "<config>", f"expected a mapping, got {config!r}")
    params: dict[str, Any] = {}
    dists: dict[str, BaseDistribution] = {}
    for key in config:
        if key not in space.params:
            raise ValueNotInSpace(f"{vpath}{key}", "not a parameter of this space")
    for name, p in space.params.items():
        label, path = f"{prefix}{name}", f"{vpath}{name}"
        if name not in config:
            raise ValueNotInSpace(path, "missing")
        value = config[name]
        if isinstance(p, Fixed):
            if not p.contains(value):
                raise ValueNotInSpace(path, f"{value!r} differs from the fixed value {p.value!r}")
            continue
        if isinstance(p, Choice):
            i = p.option_index(value)
            if i is None:
                raise ValueNotInSpace(path, f"{value!r} is not one of {p.describe()}")
            params[label], dists[label] = i, distribution(p)
            opt = p.options[i]
            if isinstance(opt, SearchSpace):
                sub_params, sub_dists = encode(opt, value, f"{label}[{i}].", f"{path}.")
                params.update(sub_params)
                dists.update(sub_dists)
            continue
        if not p.contains(value):
            raise ValueNotInSpace(path, f"{value!r} is outside {p.describe()}")
        if isinstance(p, QLogUniform):
            params[label] = round(value / p.q)
        elif isinstance(p, IntRange) or (isinstance(p, QUniform) and p.integer):
            params[label] = int(value)
        else:
            params[label] = float(value)
        dists[label] = distribution(p)
    return params, dists


# --------------------------------------------------------------------------- searcher


class OptunaWarmStartSearcher(SpaceSearcher):
    """Optuna TPE over a ``StudyVersion``'s params, warm-started from ``(config, loss)`` pairs."""

    _derived = ("_study", "_trials")

    # ------------------------------------------------------------------ optuna state

    def _build(self) -> None:
        # A rebuilt (resumed or unpickled) study gets a fresh seed so start-up draws do not repeat.
        seed = (
            self.seed
            if self._count == 0
            else int(np.random.default_rng([self.seed, self._count, 1]).integers(2**31 - 1))
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=self.version.search.startup_trials,
                multivariate=True,
                group=True,
                constant_liar=True,
            )
        self._study = optuna.create_study(direction="minimize", sampler=sampler)
        self._trials: dict[str, optuna.Trial] = {}  # live trials asked from this study
        for config, loss in self._prior + self._completed:
            self._add(config, loss)

    def _add(self, config: Mapping[str, Any], loss: float | None) -> None:
        params, dists = encode(self.version.params, config)
        state = TrialState.COMPLETE if loss is not None else TrialState.FAIL
        trial = optuna.trial.create_trial(params=params, distributions=dists, value=loss, state=state)
        self._study.add_trial(trial)

    @property
    def n_scored(self) -> int:
        return len(self._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    # ------------------------------------------------------------------ Ray Tune API

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True  # metric and mode come from the space file

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        seed = int(np.random.default_rng([self.seed, self._count]).integers(2**31 - 1))
        startup = self.n_scored < self.version.search.startup_trials
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            trial = self._study.ask()
            values = sample(self.version.params, trial)
        self._trials[trial_id] = trial
        return self._issue(trial_id, values, "startup" if startup else "optuna_tpe", seed)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self._trials.pop(trial_id, None)
        values = self._live.pop(trial_id, None)
        if values is None:
            return
        value = None if result is None else result.get(self.metric)
        ok = not error and isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        loss = self.version.metric.loss(float(value)) if ok else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            if trial is not None:
                if loss is None:
                    self._study.tell(trial, state=TrialState.FAIL)
                else:
                    self._study.tell(trial, loss)
            else:  # pending when the search was resumed: its optuna trial is gone
                self._add(values, loss)
        if loss is not None:
            self._completed.append((values, loss))
