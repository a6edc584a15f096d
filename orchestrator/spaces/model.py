"""Typed search spaces and study versions: plain, immutable data with no heavy imports.

A space maps parameter names to parameters. A parameter is a ``Fixed`` value or a
distribution: ``Uniform``, ``LogUniform``, ``QUniform``, ``QLogUniform``, ``IntRange``
or ``Choice``. A ``Choice`` option is a plain value or a nested ``SearchSpace`` (a
conditional sub-space, any depth). Bounds are inclusive everywhere.

Values (never encodings such as choice indices) are what this module speaks: a
configuration is a nested dict, ``{"lr": 0.01, "optimizer": {"name": "sgd",
"momentum": 0.9}}``, and its flat form uses dotted paths (``optimizer.momentum``).
Constructors validate and raise ``ValueError`` with the rule and the values seen; the
loader turns those into ``SpaceError`` with the file and key path.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Scalar = str | int | float | bool | None


class _NoDefault:
    """Marker for "no default declared" (``None`` is a legitimate default)."""

    _instance: ClassVar[_NoDefault | None] = None

    def __new__(cls) -> _NoDefault:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_DEFAULT"

    def __bool__(self) -> bool:
        return False


NO_DEFAULT: Any = _NoDefault()


def same_value(a: Any, b: Any) -> bool:
    """Equality that keeps ``True`` apart from ``1`` but lets ``1 == 1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _fmt(x: Any) -> str:
    return json.dumps(x) if isinstance(x, str) else repr(x)


def _close_to_multiple(x: float, q: float) -> bool:
    k = x / q
    return abs(k - round(k)) <= 1e-9 * max(1.0, abs(k))


def clean_float(x: float) -> float:
    """Drop float noise from ``low + k * q`` so values round-trip through text."""
    return float(f"{x:.12g}")


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Fixed:
    """A value passed to the trainable as is, not searched."""

    value: Any
    kind: ClassVar[str] = "fixed"

    def contains(self, value: Any) -> bool:
        return same_value(value, self.value)

    def canonical(self) -> Any:
        return {"fixed": self.value}


@dataclass(frozen=True)
class _Numeric:
    """Shared parts of the numeric distributions: bounds, default, hard limits."""

    low: float
    high: float
    default: Any = field(default=NO_DEFAULT, kw_only=True)
    limits: tuple[float, float] | None = field(default=None, kw_only=True)
    kind: ClassVar[str] = ""
    log: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            v = getattr(self, name)
            if not _is_number(v) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {_fmt(v)}")
        if not self.low < self.high:
            raise ValueError(f"`low < high` must hold, but got (low={self.low}, high={self.high})")
        if self.is_log and self.low <= 0:
            raise ValueError(f"bounds of a log scale must be positive, but got (low={self.low}, high={self.high})")
        if self.limits is not None:
            lo, hi = self.limits
            if not (_is_number(lo) and _is_number(hi) and lo < hi):
                raise ValueError(f"limits must be two numbers [low, high] with low < high, got {list(self.limits)}")
            if self.is_log and lo <= 0:
                raise ValueError(f"limits of a log scale must be positive, got {list(self.limits)}")
            if not (lo <= self.low and self.high <= hi):
                raise ValueError(f"range [{self.low}, {self.high}] must lie inside limits [{lo}, {hi}]")
        if self.default is not NO_DEFAULT and not self.contains(self.default):
            raise ValueError(f"default {_fmt(self.default)} is not a value of {self.describe()}")

    @property
    def is_log(self) -> bool:
        return self.log

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.low <= value <= self.high

    def bounds(self) -> list[Any]:
        return [self.low, self.high]

    def describe(self) -> str:
        return f"{self.kind} {self.bounds()}"

    def _extras(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.default is not NO_DEFAULT:
            out["default"] = self.default
        if self.limits is not None:
            out["limits"] = list(self.limits)
        return out

    def canonical(self) -> dict[str, Any]:
        return {self.kind: self.bounds(), **self._extras()}


@dataclass(frozen=True)
class Uniform(_Numeric):
    kind: ClassVar[str] = "uniform"


@dataclass(frozen=True)
class LogUniform(_Numeric):
    kind: ClassVar[str] = "loguniform"
    log: ClassVar[bool] = True


@dataclass(frozen=True)
class QUniform(_Numeric):
    """Values ``low, low + q, ..., high``; ``high - low`` must be a multiple of ``q``."""

    q: float = field(default=1.0, kw_only=True)
    integer: bool = field(default=False, kw_only=True)
    kind: ClassVar[str] = "quniform"

    def __post_init__(self) -> None:
        if not _is_number(self.q) or not self.q > 0:
            raise ValueError(f"q must be a positive number, got {_fmt(self.q)}")
        super().__post_init__()
        if not _close_to_multiple(self.high - self.low, self.q):
            raise ValueError(
                f"`high - low` must be a multiple of q, but got (low={self.low}, high={self.high}, q={self.q})"
            )

    @property
    def steps(self) -> int:
        return round((self.high - self.low) / self.q)

    def contains(self, value: Any) -> bool:
        return super().contains(value) and _close_to_multiple(value - self.low, self.q)

    def bounds(self) -> list[Any]:
        return [self.low, self.high, self.q]

    def canonical(self) -> dict[str, Any]:
        return {**super().canonical(), **({"integer": True} if self.integer else {})}


@dataclass(frozen=True)
class QLogUniform(_Numeric):
    """Log-scaled multiples of ``q`` in ``[low, high]``; both bounds must be multiples of ``q``."""

    q: float = field(default=1.0, kw_only=True)
    integer: bool = field(default=False, kw_only=True)
    kind: ClassVar[str] = "qloguniform"
    log: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not _is_number(self.q) or not self.q > 0:
            raise ValueError(f"q must be a positive number, got {_fmt(self.q)}")
        super().__post_init__()
        if not (_close_to_multiple(self.low, self.q) and _close_to_multiple(self.high, self.q)):
            raise ValueError(
                f"low and high must be multiples of q, but got (low={self.low}, high={self.high}, q={self.q})"
            )

    def contains(self, value: Any) -> bool:
        return super().contains(value) and _close_to_multiple(value, self.q)

    def bounds(self) -> list[Any]:
        return [self.low, self.high, self.q]

    def canonical(self) -> dict[str, Any]:
        return {**super().canonical(), **({"integer": True} if self.integer else {})}


@dataclass(frozen=True)
class IntRange(_Numeric):
    """Integers ``low, low + step, ..., high`` (inclusive), optionally log-scaled."""

    step: int = field(default=1, kw_only=True)
    log_scale: bool = field(default=False, kw_only=True)
    kind: ClassVar[str] = "int"

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"{name} must be an integer, got {_fmt(v)}")
        if not isinstance(self.step, int) or isinstance(self.step, bool) or self.step < 1:
            raise ValueError(f"step must be a positive integer, got {_fmt(self.step)}")
        if not isinstance(self.log_scale, bool):
            raise ValueError(f"log must be true or false, got {_fmt(self.log_scale)}")
        if self.log_scale and self.step != 1:
            raise ValueError("a log-scaled int range cannot have a step")
        super().__post_init__()
        if (self.high - self.low) % self.step:
            raise ValueError(
                f"`high - low` must be a multiple of step, but got (low={self.low}, high={self.high}, step={self.step})"
            )

    @property
    def is_log(self) -> bool:
        return self.log_scale

    @property
    def steps(self) -> int:
        return (self.high - self.low) // self.step

    def contains(self, value: Any) -> bool:
        if not _is_number(value) or value != int(value):
            return False
        return self.low <= value <= self.high and (int(value) - self.low) % self.step == 0

    def canonical(self) -> dict[str, Any]:
        out: dict[str, Any] = {"int": [self.low, self.high]}
        if self.step != 1:
            out["step"] = self.step
        if self.log_scale:
            out["log"] = True
        return {**out, **self._extras()}


@dataclass(frozen=True)
class Choice:
    """One of several options; an option is a plain value or a conditional sub-space."""

    options: tuple[Scalar | SearchSpace, ...]
    default: Any = field(default=NO_DEFAULT, kw_only=True)
    kind: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError("a choice needs at least one option")
        for i, a in enumerate(self.options):
            for j in range(i):
                if _options_clash(self.options[j], a):
                    raise ValueError(
                        f"options {j} and {i} cannot be told apart: "
                        + (
                            "give sub-spaces a distinguishing fixed entry such as `name:`"
                            if isinstance(a, SearchSpace)
                            else f"{_fmt(a)} appears twice"
                        )
                    )
        if self.default is not NO_DEFAULT and self.option_index(self.default) is None:
            raise ValueError(f"default {_fmt(self.default)} is not one of the options")

    def option_index(self, value: Any) -> int | None:
        """Index of the option that can produce ``value``, or ``None``."""
        for i, opt in enumerate(self.options):
            if isinstance(opt, SearchSpace):
                if isinstance(value, Mapping) and opt.contains(value) is None:
                    return i
            elif same_value(opt, value):
                return i
        return None

    def option_label(self, i: int) -> str:
        """A readable name for option ``i``: its value, or its fixed entries."""
        opt = self.options[i]
        if not isinstance(opt, SearchSpace):
            return json.dumps(opt)
        fixed = [str(p.value) for p in opt.params.values() if isinstance(p, Fixed)]
        return ",".join(fixed) if fixed else str(i)

    def contains(self, value: Any) -> bool:
        return self.option_index(value) is not None

    def describe(self) -> str:
        return "choice [" + ", ".join(self.option_label(i) for i in range(len(self.options))) + "]"

    def canonical(self) -> dict[str, Any]:
        opts = [o.canonical() if isinstance(o, SearchSpace) else o for o in self.options]
        out: dict[str, Any] = {"choice": opts}
        if self.default is not NO_DEFAULT:
            out["default"] = self.default
        return out


Distribution = Uniform | LogUniform | QUniform | QLogUniform | IntRange | Choice
Param = Fixed | Distribution
NUMERIC_KINDS: dict[str, type[_Numeric]] = {c.kind: c for c in (Uniform, LogUniform, QUniform, QLogUniform, IntRange)}


def _options_clash(a: Scalar | SearchSpace, b: Scalar | SearchSpace) -> bool:
    if isinstance(a, SearchSpace) and isinstance(b, SearchSpace):
        if a.params.keys() != b.params.keys():
            return False
        for name, pa in a.params.items():
            pb = b.params[name]
            if isinstance(pa, Fixed) and isinstance(pb, Fixed) and not same_value(pa.value, pb.value):
                return False
        return True
    if isinstance(a, SearchSpace) or isinstance(b, SearchSpace):
        return False
    return same_value(a, b)


# --------------------------------------------------------------------------- spaces


@dataclass(frozen=True)
class SearchSpace:
    """Named parameters; the order is the file's (for display), not part of identity."""

    params: Mapping[str, Param]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.canonical() == other.canonical()

    def __hash__(self) -> int:
        return hash(json.dumps(self.canonical(), sort_keys=True))

    def canonical(self) -> dict[str, Any]:
        return {name: p.canonical() for name, p in sorted(self.params.items())}

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Param]]:
        """Every parameter with its structural path (``optimizer[1].momentum``)."""
        for name, p in self.params.items():
            path = f"{prefix}{name}"
            yield path, p
            if isinstance(p, Choice):
                for i, opt in enumerate(p.options):
                    if isinstance(opt, SearchSpace):
                        yield from opt.walk(f"{path}[{i}].")

    def contains(self, config: Mapping[str, Any], prefix: str = "") -> str | None:
        """``None`` when this space can produce ``config`` exactly; else the first reason why not."""
        missing = [k for k in self.params if k not in config]
        if missing:
            return f"{prefix}{missing[0]}: missing"
        extra = [k for k in config if k not in self.params]
        if extra:
            return f"{prefix}{extra[0]}: not a parameter of this space"
        for name, p in self.params.items():
            value = config[name]
            if isinstance(p, Choice):
                i = p.option_index(value)
                if i is None:
                    return f"{prefix}{name}: {_fmt_value(value)} is not one of {p.describe()}"
            elif not p.contains(value):
                what = (
                    f"outside {p.describe()}" if not isinstance(p, Fixed) else f"is not the fixed value {_fmt(p.value)}"
                )
                return f"{prefix}{name}: {_fmt_value(value)} {what}"
        return None

    def defaults(self) -> dict[str, Any]:
        """Declared defaults of the top-level parameters (fixed values count as defaults)."""
        out: dict[str, Any] = {}
        for name, p in self.params.items():
            if isinstance(p, Fixed):
                out[name] = p.value
            elif p.default is not NO_DEFAULT:
                out[name] = p.default
        return out


def _fmt_value(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"name": "sgd"}}`` -> ``{"optimizer.name": "sgd"}`` (lists stay whole)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten`."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        node = out
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


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


@dataclass(frozen=True)
class Schedule:
    """Early stopping. ``asha`` stops weak trials at rungs; ``fifo`` runs every trial to the end."""

    scheduler: Literal["asha", "fifo"] = "asha"
    max_epochs: int = 10
    grace_period: int = 1
    reduction_factor: float = 3.0


@dataclass(frozen=True)
class Resources:
    """Per-trial resources; fractional GPUs below 1 let several trials share a card."""

    cpu: float = 1.0
    gpu: float = 0.0


@dataclass(frozen=True)
class SearchSettings:
    """Searcher and budget defaults; the command line can override trials and concurrency."""

    algorithm: Literal["tpe", "random", "optuna_tpe"] = "tpe"
    trials: int = 20
    concurrency: int | None = None
    startup_trials: int = 10
    max_failures: int = 1


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

    def canonical(self) -> dict[str, Any]:
        """Everything that decides which trials run; not version, parent, notes or the file."""
        return {
            "study": self.study,
            "trainable": self.trainable,
            "metric": {"name": self.metric.name, "mode": self.metric.mode},
            "schedule": _canon_numbers(vars_of(self.schedule)),
            "resources": _canon_numbers(vars_of(self.resources)),
            "search": _canon_numbers(vars_of(self.search)),
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
    return {k: getattr(obj, k) for k in obj.__dataclass_fields__}


def _canon_numbers(x: Any) -> Any:
    """Floats that are whole numbers hash like the ints a user might have written instead."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, dict):
        return {k: _canon_numbers(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_canon_numbers(v) for v in x]
    return x
