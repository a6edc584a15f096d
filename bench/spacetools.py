"""Search-space helpers the benchmarks share: sampling, Optuna's define-by-run view, narrowing, YAML.

Everything works on the orchestrator's own ``SearchSpace`` / ``StudyVersion`` types, so one space
definition drives the orchestrator's searcher, random search and Optuna alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import yaml

from orchestrator.spaces import (
    NO_DEFAULT,
    Choice,
    Fixed,
    IntRange,
    LogUniform,
    Param,
    QLogUniform,
    QUniform,
    SearchSpace,
    StudyVersion,
    Uniform,
    parse_version,
)
from orchestrator.spaces.model import clean_float

# --------------------------------------------------------------------------- building versions


def version_text(
    study: str,
    params: Mapping[str, Any],
    *,
    version: int = 1,
    parent: int | None = None,
    trainable: str = "analytic",
    metric: tuple[str, str] = ("loss", "min"),
    search: Mapping[str, Any] | None = None,
    schedule: Mapping[str, Any] | None = None,
    resources: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
    notes: str = "",
) -> str:
    """A space file (YAML text) with the given sections; ``params`` in the file's own syntax."""
    doc: dict[str, Any] = {"study": study, "version": version}
    if parent is not None:
        doc["parent"] = parent
    doc |= {"trainable": trainable, "metric": {"name": metric[0], "mode": metric[1]}}
    for key, section in (("schedule", schedule), ("resources", resources), ("search", search), ("fixed", fixed)):
        if section:
            doc[key] = dict(section)
    doc["params"] = dict(params)
    if notes:
        doc["notes"] = notes
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)


def make_version(study: str, params: Mapping[str, Any], **kw: Any) -> StudyVersion:
    """A validated ``StudyVersion`` (through the project's own parser) from plain sections."""
    return parse_version(version_text(study, params, **kw), f"<bench {study}>")


# --------------------------------------------------------------------------- sampling


def sample_config(space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    """A uniformly random configuration of ``space`` (log-uniform on log scales): values, never indices."""
    out: dict[str, Any] = {}
    for name, p in space.params.items():
        if isinstance(p, Choice):
            opt = p.options[int(rng.integers(len(p.options)))]
            out[name] = sample_config(opt, rng) if isinstance(opt, SearchSpace) else opt
        else:
            out[name] = _sample_number(p, rng)
    return out


def _sample_number(p: Param, rng: np.random.Generator) -> Any:
    if isinstance(p, Fixed):
        return p.value
    if isinstance(p, Uniform):
        return float(rng.uniform(p.low, p.high))
    if isinstance(p, LogUniform):
        return float(min(max(math.exp(rng.uniform(math.log(p.low), math.log(p.high))), p.low), p.high))
    if isinstance(p, QUniform):
        return clean_float(p.low + int(rng.integers(p.steps + 1)) * p.q)
    if isinstance(p, QLogUniform):
        v = math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
        return clean_float(min(max(round(v / p.q) * p.q, p.low), p.high))
    if isinstance(p, IntRange):
        if p.log_scale:
            return int(min(max(round(math.exp(rng.uniform(math.log(p.low), math.log(p.high)))), p.low), p.high))
        return p.low + int(rng.integers(p.steps + 1)) * p.step
    raise TypeError(f"unsupported parameter {p!r}")


# --------------------------------------------------------------------------- Optuna


def optuna_config(trial: Any, space: SearchSpace, prefix: str = "") -> dict[str, Any]:
    """Ask an ``optuna.Trial`` for a configuration of ``space`` (define-by-run; conditional options nest)."""
    out: dict[str, Any] = {}
    for name, p in space.params.items():
        path = f"{prefix}{name}"
        if isinstance(p, Fixed):
            out[name] = p.value
        elif isinstance(p, Choice):
            labels = [p.option_label(i) for i in range(len(p.options))]
            i = labels.index(trial.suggest_categorical(path, labels))
            opt = p.options[i]
            out[name] = optuna_config(trial, opt, f"{path}[{i}].") if isinstance(opt, SearchSpace) else opt
        else:
            out[name] = _optuna_number(trial, path, p)
    return out


def _optuna_number(trial: Any, path: str, p: Param) -> Any:
    if isinstance(p, Uniform):
        return trial.suggest_float(path, p.low, p.high)
    if isinstance(p, LogUniform):
        return trial.suggest_float(path, p.low, p.high, log=True)
    if isinstance(p, QUniform):
        return clean_float(p.low + trial.suggest_int(path, 0, p.steps) * p.q)
    if isinstance(p, QLogUniform):  # Optuna has no step on a log scale: round the draw
        v = trial.suggest_float(path, p.low, p.high, log=True)
        return clean_float(min(max(round(v / p.q) * p.q, p.low), p.high))
    if isinstance(p, IntRange):
        if p.log_scale:
            return trial.suggest_int(path, int(p.low), int(p.high), log=True)
        return trial.suggest_int(path, int(p.low), int(p.high), step=p.step)
    raise TypeError(f"unsupported parameter {p!r}")


# --------------------------------------------------------------------------- back to file syntax


def file_spec(p: Param | SearchSpace) -> Any:
    """A parameter (or sub-space) written back in the space file's syntax (``{uniform: [low, high]}`` ...)."""
    if isinstance(p, SearchSpace):
        return {name: file_spec(q) for name, q in p.params.items()}
    if isinstance(p, Fixed):
        return {"fixed": p.value}
    if isinstance(p, Choice):
        spec: dict[str, Any] = {"choice": [file_spec(o) if isinstance(o, SearchSpace) else o for o in p.options]}
    elif isinstance(p, IntRange):
        spec = {"int": [int(p.low), int(p.high)]}
        if p.step != 1:
            spec["step"] = p.step
        if p.log_scale:
            spec["log"] = True
    else:
        whole = getattr(p, "integer", False)  # q-ranges written with whole numbers yield ints
        spec = {p.kind: [int(b) if whole and float(b).is_integer() else b for b in p.bounds()]}
    default = getattr(p, "default", NO_DEFAULT)
    if default is not NO_DEFAULT:
        spec["default"] = default
    if getattr(p, "limits", None) is not None:
        spec["limits"] = list(p.limits)  # type: ignore[union-attr]
    return spec


# --------------------------------------------------------------------------- narrowing (v1 -> v2)


def narrow_params(space: SearchSpace, best: Sequence[Mapping[str, Any]], pad: float = 0.1) -> dict[str, Any]:
    """The ``params`` section of a narrowed space: each numeric range shrunk to the min/max of ``best``,
    padded by ``pad`` of the old range on each side (on the log scale for log ranges), clipped to the
    old range. Choices are kept whole; nested option ranges narrow from the best configs that use them."""
    out: dict[str, Any] = {}
    for name, p in space.params.items():
        values = [c[name] for c in best if name in c]
        if isinstance(p, Choice):
            out[name] = {"choice": [_narrow_option(p, i, values, pad) for i in range(len(p.options))]}
        elif isinstance(p, Fixed) or not values:
            out[name] = file_spec(p)
        else:
            out[name] = _narrow_number(p, values, pad)
    return out


def _narrow_option(p: Choice, i: int, values: Sequence[Any], pad: float) -> Any:
    opt = p.options[i]
    if not isinstance(opt, SearchSpace):
        return opt
    mine = [v for v in values if p.option_index(v) == i]
    return narrow_params(opt, mine, pad) if mine else file_spec(opt)


def _narrow_number(p: Param, values: Sequence[float], pad: float) -> dict[str, Any]:
    assert isinstance(p, Uniform | LogUniform | QUniform | QLogUniform | IntRange)
    log = p.is_log
    to = math.log if log else float
    back = math.exp if log else float
    lo_all, hi_all = to(p.low), to(p.high)
    margin = pad * (hi_all - lo_all)
    lo = max(lo_all, to(min(values)) - margin)
    hi = min(hi_all, to(max(values)) + margin)
    low, high = back(lo), back(hi)
    spec = file_spec(p)
    kind = p.kind
    if isinstance(p, Uniform | LogUniform):
        low, high = max(p.low, low), min(p.high, high)
        if not low < high:
            return spec
        spec[kind] = [low, high]
    elif isinstance(p, QUniform):
        k_lo, k_hi = math.floor((low - p.low) / p.q), math.ceil((high - p.low) / p.q)
        if k_hi <= k_lo:
            return spec
        spec[kind] = [clean_float(p.low + k_lo * p.q), clean_float(p.low + k_hi * p.q), p.q]
    elif isinstance(p, QLogUniform):
        k_lo, k_hi = max(1, math.floor(low / p.q)), math.ceil(high / p.q)
        if k_hi <= k_lo:
            return spec
        spec[kind] = [clean_float(k_lo * p.q), clean_float(k_hi * p.q), p.q]
    else:  # IntRange
        k_lo = math.floor((low - p.low) / p.step)
        k_hi = math.ceil((high - p.low) / p.step)
        if k_hi <= k_lo:
            return spec
        spec[kind] = [int(p.low + k_lo * p.step), int(p.low + k_hi * p.step)]
    spec.pop("default", None)  # a default outside the new range would not validate
    if getattr(p, "integer", False):
        spec[kind] = [int(b) if float(b).is_integer() else b for b in spec[kind]]
    return spec


def derive_text(parent: StudyVersion, params: Mapping[str, Any], *, version: int, notes: str = "") -> str:
    """A child version's file: ``parent``'s sections (study, trainable, metric, schedule, resources, search,
    fixed) with new ``params``, ``version`` and ``parent`` set."""
    doc = parent.canonical()
    for key in ("schedule", "resources", "search"):
        doc[key] = {k: v for k, v in doc[key].items() if v is not None}
    if not doc["fixed"]:
        del doc["fixed"]
    search = doc.pop("search")
    return version_text(
        doc["study"], params, version=version, parent=parent.version, trainable=doc["trainable"],
        metric=(doc["metric"]["name"], doc["metric"]["mode"]), search=search, schedule=doc["schedule"],
        resources=doc["resources"], fixed=doc.get("fixed"), notes=notes,
    )  # fmt: skip
