"""Typed search spaces and study versions: plain, immutable data with no heavy imports.

A space maps parameter names to parameters. A parameter is a ``Fixed`` value or a
distribution: ``Uniform``, ``LogUniform``, ``QUniform``, ``QLogUniform``, ``IntRange``
or ``Choice``. A ``Choice`` option is a plain value or a nested ``SearchSpace`` (a
conditional sub-space, any depth). Bounds are inclusive everywhere.

Values (never encodings such as choice indices) are what this module speaks: a
configuration is a nested dict, ``{"lr": 0.01, "optimizer": {"name": "sgd",
"momentum": 0.9}}``, and its flat form uses dotted paths (``optimizer.momentum``).
What searcher backends need is library-neutral and lives here too: the step grid of
quantized and int ranges (``steps``, ``value_at``, ``index_of``, ``snap``), the one rule
for which option a value picks (``Choice.select``), the walk over the parameters active
in a configuration (``SearchSpace.active``) and its inverse (``SearchSpace.build``).
Constructors validate and raise ``ValueError`` with the rule and the values seen; the
loader turns those into ``SpaceError`` with the file and key path.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

from orchestrator.redaction import is_secret_key, redacted_value

from .errors import ValueNotInSpace

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


class _Kind:
    """What every parameter kind answers, so generic code never has to ask which kind it holds."""

    kind: ClassVar[str] = ""
    is_fixed: ClassVar[bool] = False
    is_choice: ClassVar[bool] = False
    #: Whether the values are a finite grid with ``steps``, ``value_at`` and ``index_of``.
    is_stepped: ClassVar[bool] = False
    default: Any  # the declared default or NO_DEFAULT (distributions only)

    @property
    def default_value(self) -> Any:
        """What a trial that lacks this parameter takes: the fixed value, the declared default or ``NO_DEFAULT``."""
        return self.default

    def sub_spaces(self) -> Iterator[tuple[int, SearchSpace]]:
        """``(option index, sub-space)`` of every conditional option (none unless a choice)."""
        return iter(())


@dataclass(frozen=True)
class Fixed(_Kind):
    """A value passed to the trainable as is, not searched."""

    value: Any
    kind: ClassVar[str] = "fixed"
    is_fixed: ClassVar[bool] = True

    @property
    def default_value(self) -> Any:
        return self.value

    def contains(self, value: Any) -> bool:
        return same_value(value, self.value)

    def describe(self) -> str:
        return f"fixed {json.dumps(self.value, default=str)}"

    def canonical(self) -> Any:
        return {"fixed": self.value}

    def spec(self) -> Any:
        """The parameter in the space file's syntax: a bare scalar, or ``{fixed: value}`` for lists and mappings."""
        return self.value if self.value is None or isinstance(self.value, str | int | float) else self.canonical()

    def agrees(self, name: str, value: Any) -> bool:
        """Whether ``value`` is this entry's value under the key ``name``, or the form trials record it in
        (``orchestrator.redaction.redacted_value``: ``***`` for a secret-looking key), so a recorded trial fits."""
        return self.contains(value) or same_value(value, redacted_value(name, self.value))

    def mismatch(self, name: str, value: Any) -> str:
        """Why ``value`` is not this entry's value, showing neither when ``name`` is a secret-looking key."""
        if is_secret_key(name):
            return "differs from the fixed value (a secret, not shown)"
        return f"{redacted_value(name, value)!r} differs from the fixed value {redacted_value(name, self.value)!r}"


@dataclass(frozen=True)
class _Numeric(_Kind):
    """Shared parts of the numeric distributions: bounds, default, hard limits."""

    low: float
    high: float
    default: Any = field(default=NO_DEFAULT, kw_only=True)
    limits: tuple[float, float] | None = field(default=None, kw_only=True)
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

    def snap(self, x: float) -> int | float:
        """The value of this range nearest to the real ``x`` (in value units, also on log scales)."""
        return self._clamp(x)

    def _clamp(self, x: float) -> float:
        x = float(x)
        if math.isnan(x):
            raise ValueError(f"cannot place nan in {self.describe()}")
        return min(max(x, self.low), self.high)

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

    def spec(self) -> dict[str, Any]:
        """The parameter in the space file's syntax (``{uniform: [0.0, 1.0], default: 0.5}``)."""
        return self.canonical()


@dataclass(frozen=True)
class Uniform(_Numeric):
    kind: ClassVar[str] = "uniform"


@dataclass(frozen=True)
class LogUniform(_Numeric):
    kind: ClassVar[str] = "loguniform"
    log: ClassVar[bool] = True


@dataclass(frozen=True)
class _Stepped(_Numeric, ABC):
    """A finite grid ``low, low + unit, ..., high``: its values are indices ``0..steps``.

    ``value_at`` and ``index_of`` translate between the two; ``snap`` rounds a real number
    half up to the nearest value (in value units, for log scales too) inside the bounds.
    """

    is_stepped: ClassVar[bool] = True

    @property
    @abstractmethod
    def unit(self) -> float:
        """Distance between neighbouring values (``q`` or ``step``)."""

    @property
    def steps(self) -> int:
        """Number of intervals: the values are indices ``0..steps`` (``steps + 1`` values)."""
        return round((self.high - self.low) / self.unit)

    def value_at(self, k: int) -> int | float:
        """The ``k``-th value, of the type a trainable gets (int for integer grids, clean floats otherwise)."""
        if isinstance(k, bool):
            raise ValueError(f"a step index must be an integer, got {k!r}")
        try:
            k = operator.index(k)
        except TypeError:
            raise ValueError(f"a step index must be an integer, got {k!r}") from None
        if not 0 <= k <= self.steps:
            raise ValueError(f"step index {k} is outside 0..{self.steps} of {self.describe()}")
        return self._value(k)

    def index_of(self, value: Any) -> int:
        """Inverse of :meth:`value_at`; ``ValueError`` if ``value`` is not a value of this range."""
        if not self.contains(value):
            raise ValueError(f"{_fmt(value)} is not a value of {self.describe()}")
        return round((value - self.low) / self.unit)

    def snap(self, x: float) -> int | float:
        k = math.floor((self._clamp(x) - self.low) / self.unit + 0.5)
        return self._value(min(max(k, 0), self.steps))

    def _value(self, k: int) -> int | float:
        if k == 0:
            return self.low
        if k == self.steps:
            return self.high
        return min(max(clean_float(self.low + k * self.unit), self.low), self.high)


@dataclass(frozen=True)
class _Quantized(_Stepped):
    """Multiples of ``q``; ``integer`` when the file wrote whole numbers (values are then ints, not 64.0)."""

    q: float = field(default=1.0, kw_only=True)
    integer: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        if not _is_number(self.q) or not self.q > 0:
            raise ValueError(f"q must be a positive number, got {_fmt(self.q)}")
        super().__post_init__()

    @property
    def unit(self) -> float:
        return self.q

    def _value(self, k: int) -> int | float:
        if self.integer:
            return round(self.low) + k * round(self.q)
        return super()._value(k)

    def bounds(self) -> list[Any]:
        return [self.low, self.high, self.q]

    def canonical(self) -> dict[str, Any]:
        return {**super().canonical(), **({"integer": True} if self.integer else {})}

    def spec(self) -> dict[str, Any]:
        # The loader sets ``integer`` exactly when low, high and q are all written as integers.
        written = [round(b) for b in self.bounds()] if self.integer else [float(b) for b in self.bounds()]
        if self.integer and written != self.bounds():
            raise ValueError(f"an integer {self.kind} needs whole-number bounds and q, got {self.bounds()}")
        return {self.kind: written, **self._extras()}


@dataclass(frozen=True)
class QUniform(_Quantized):
    """Values ``low, low + q, ..., high``; ``high - low`` must be a multiple of ``q``."""

    kind: ClassVar[str] = "quniform"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not _close_to_multiple(self.high - self.low, self.q):
            raise ValueError(
                f"`high - low` must be a multiple of q, but got (low={self.low}, high={self.high}, q={self.q})"
            )

    def contains(self, value: Any) -> bool:
        return super().contains(value) and _close_to_multiple(value - self.low, self.q)


@dataclass(frozen=True)
class QLogUniform(_Quantized):
    """Log-scaled multiples of ``q`` in ``[low, high]``; both bounds must be multiples of ``q``.

    Index 0 is ``low`` and index ``steps`` is ``high``, with every multiple of ``q`` between.
    """

    kind: ClassVar[str] = "qloguniform"
    log: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (_close_to_multiple(self.low, self.q) and _close_to_multiple(self.high, self.q)):
            raise ValueError(
                f"low and high must be multiples of q, but got (low={self.low}, high={self.high}, q={self.q})"
            )

    def contains(self, value: Any) -> bool:
        return super().contains(value) and _close_to_multiple(value, self.q)


@dataclass(frozen=True)
class IntRange(_Stepped):
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
    def unit(self) -> int:
        return self.step

    @property
    def steps(self) -> int:
        return (self.high - self.low) // self.step

    def contains(self, value: Any) -> bool:
        if not _is_number(value) or value != int(value):
            return False
        return self.low <= value <= self.high and (int(value) - self.low) % self.step == 0

    def _value(self, k: int) -> int:
        return self.low + k * self.step

    def describe(self) -> str:
        return (
            super().describe() + (f" step {self.step}" if self.step != 1 else "") + (" log" if self.log_scale else "")
        )

    def canonical(self) -> dict[str, Any]:
        out: dict[str, Any] = {"int": [self.low, self.high]}
        if self.step != 1:
            out["step"] = self.step
        if self.log_scale:
            out["log"] = True
        return {**out, **self._extras()}


@dataclass(frozen=True)
class Choice(_Kind):
    """One of several options; an option is a plain value or a conditional sub-space."""

    options: tuple[Scalar | SearchSpace, ...]
    default: Any = field(default=NO_DEFAULT, kw_only=True)
    kind: ClassVar[str] = "choice"
    is_choice: ClassVar[bool] = True

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
        if self.default is not NO_DEFAULT and not self.contains(self.default):
            raise ValueError(f"default {_fmt(self.default)} is not one of the options")

    def select(self, value: Any) -> int | None:
        """The index of the option ``value`` picks, or ``None``: the one rule, for encoders, carry and diffs.

        A scalar picks the option it equals (``same_value``: ``True`` is not ``1``). A mapping
        picks among the sub-space options whose fixed entries are all present in it with the
        same value: the one with exactly the mapping's keys if any, else the only such option,
        else the one sharing the most keys with it (the first on a tie). Whether the rest of
        the mapping fits the option is not asked here (see ``contains``), so an older trial
        with added or removed keys still finds its option. A value this choice produces
        always selects the option that produced it.
        """
        if not isinstance(value, Mapping):
            return next((i for i, o in enumerate(self.options) if _is_plain(o) and same_value(o, value)), None)
        agreeing = [(i, sub) for i, sub in self.sub_spaces() if sub.fixed_entries_agree(value)]
        exact = [i for i, sub in agreeing if sub.params.keys() == value.keys()]
        if exact:
            return exact[0]
        if not agreeing:
            return None
        return max(agreeing, key=lambda item: len(item[1].params.keys() & value.keys()))[0]

    def sub_space(self, i: int) -> SearchSpace | None:
        """Option ``i`` when it is a conditional sub-space; ``None`` when it is a plain value."""
        opt = self.options[i]
        return opt if isinstance(opt, SearchSpace) else None

    def sub_spaces(self) -> Iterator[tuple[int, SearchSpace]]:
        return ((i, opt) for i, opt in enumerate(self.options) if isinstance(opt, SearchSpace))

    def option_label(self, i: int) -> str:
        """A readable name for option ``i``: its value, or its fixed entries."""
        opt = self.options[i]
        if not isinstance(opt, SearchSpace):
            return json.dumps(opt)
        fixed = [str(redacted_value(name, p.value)) for name, p in opt.params.items() if isinstance(p, Fixed)]
        return ",".join(fixed) if fixed else str(i)

    def contains(self, value: Any) -> bool:
        """Whether this choice can produce ``value``: it selects an option, and that option can produce it."""
        i = self.select(value)
        if i is None:
            return False
        sub = self.sub_space(i)
        return sub is None or sub.contains(value) is None

    def describe(self) -> str:
        return "choice [" + ", ".join(self.option_label(i) for i in range(len(self.options))) + "]"

    def _syntax(self, sub_space: Callable[[SearchSpace], Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"choice": [sub_space(o) if isinstance(o, SearchSpace) else o for o in self.options]}
        if self.default is not NO_DEFAULT:
            out["default"] = self.default
        return out

    def canonical(self) -> dict[str, Any]:
        return self._syntax(SearchSpace.canonical)

    def spec(self) -> dict[str, Any]:
        """The parameter in the space file's syntax, sub-spaces in their own order."""
        return self._syntax(SearchSpace.spec)


Distribution = Uniform | LogUniform | QUniform | QLogUniform | IntRange | Choice
Param = Fixed | Distribution
NUMERIC_KINDS: dict[str, type[_Numeric]] = {c.kind: c for c in (Uniform, LogUniform, QUniform, QLogUniform, IntRange)}


def _is_plain(option: Scalar | SearchSpace) -> bool:
    return not isinstance(option, SearchSpace)


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
class ActiveParam:
    """A parameter active in a configuration, as :meth:`SearchSpace.active` yields it.

    ``label`` is the structural path searchers key on (``optimizer[1].momentum``, as
    :meth:`SearchSpace.walk` names it); ``path`` is the dotted path of the value in the
    configuration (``optimizer.momentum``); ``option`` is the selected index for a choice.
    """

    label: str
    path: str
    param: Param
    value: Any
    option: int | None = None


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

    def spec(self) -> dict[str, Any]:
        """The space in the space file's syntax, in its own order."""
        return {name: p.spec() for name, p in self.params.items()}

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Param]]:
        """Every parameter with its structural path (``optimizer[1].momentum``)."""
        for name, p in self.params.items():
            path = f"{prefix}{name}"
            yield path, p
            if isinstance(p, Choice):
                for i, opt in p.sub_spaces():
                    yield from opt.walk(f"{path}[{i}].")

    def active(self, config: Mapping[str, Any]) -> Iterator[ActiveParam]:
        """Every parameter active in ``config``, fixed ones included, each choice before its sub-space's.

        Raises ``ValueNotInSpace`` (dotted value path and reason) at the first value this space
        cannot produce: a missing or extra key, a non-mapping, a value outside a range, a choice
        that selects no option, a fixed value that differs.
        """
        return self._active(config, "", "")

    def _active(self, config: Any, label_prefix: str, path_prefix: str) -> Iterator[ActiveParam]:
        if not isinstance(config, Mapping):
            raise ValueNotInSpace(path_prefix.rstrip(".") or "<config>", f"expected a mapping, got {config!r}")
        for key in config:
            if key not in self.params:
                raise ValueNotInSpace(f"{path_prefix}{key}", "not a parameter of this space")
        for name, p in self.params.items():
            label, path = f"{label_prefix}{name}", f"{path_prefix}{name}"
            if name not in config:
                raise ValueNotInSpace(path, "missing")
            value = config[name]
            if isinstance(p, Choice):
                i = p.select(value)
                if i is None:
                    raise ValueNotInSpace(path, f"{value!r} is not one of {p.describe()}")
                yield ActiveParam(label, path, p, value, i)
                sub = p.sub_space(i)
                if sub is not None:
                    yield from sub._active(value, f"{label}[{i}].", f"{path}.")
                continue
            if not (p.agrees(name, value) if isinstance(p, Fixed) else p.contains(value)):
                if isinstance(p, Fixed):
                    raise ValueNotInSpace(path, p.mismatch(name, value))
                raise ValueNotInSpace(path, f"{value!r} is outside {p.describe()}")
            yield ActiveParam(label, path, p, value)

    def build(self, draw: Callable[[str, Param], Any]) -> dict[str, Any]:
        """A configuration built in file order from ``draw(label, param)``; the inverse of :meth:`active`.

        Fixed parameters take their value (``draw`` is not called); for a choice ``draw`` returns
        an option *index*, and a sub-space option is built with labels ``f"{label}[{i}]."``;
        for a numeric parameter ``draw`` returns the value itself.
        """
        return self._build(draw, "")

    def _build(self, draw: Callable[[str, Param], Any], prefix: str) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for name, p in self.params.items():
            label = f"{prefix}{name}"
            if isinstance(p, Fixed):
                config[name] = p.value
            elif isinstance(p, Choice):
                i = _option_index(draw(label, p), p, label)
                sub = p.sub_space(i)
                config[name] = p.options[i] if sub is None else sub._build(draw, f"{label}[{i}].")
            else:
                config[name] = draw(label, p)
        return config

    def contains(self, config: Mapping[str, Any]) -> str | None:
        """``None`` when this space can produce ``config`` exactly; else the first reason why not."""
        try:
            for _ in self.active(config):
                pass
        except ValueNotInSpace as e:
            return str(e)
        return None

    def configuration_key(self, config: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """What tells two configurations of this space apart: each searched parameter active in ``config`` (by
        label) with its choice's option, its step on a stepped range, or its value as a float. Fixed values are
        left out (every configuration has them), so a value recorded as ``2.0`` or ``0.30000000000000004`` keys
        as ``2`` or ``0.3`` does. Raises ``ValueNotInSpace`` as :meth:`active` does."""
        key: list[tuple[str, Any]] = []
        for a in self.active(config):
            if a.option is not None:
                key.append((a.label, a.option))
            elif not a.param.is_fixed:
                key.append((a.label, a.param.index_of(a.value) if a.param.is_stepped else float(a.value)))
        return tuple(key)

    def size(self) -> int | None:
        """How many configurations this space holds; None when a searched parameter is continuous."""
        total = 1
        for p in self.params.values():
            if isinstance(p, Choice):
                counts = [1 if sub is None else sub.size() for sub in map(p.sub_space, range(len(p.options)))]
                count = None if None in counts else sum(c for c in counts if c is not None)
            else:
                count = 1 if p.is_fixed else p.steps + 1 if p.is_stepped else None
            if count is None:
                return None
            total *= count
        return total

    def fixed_entries_agree(self, value: Mapping[str, Any]) -> bool:
        """Whether every fixed entry of this space is in ``value`` with the same value (or its recorded form)."""
        return all(name in value and p.agrees(name, value[name]) for name, p in self.params.items() if p.is_fixed)

    def defaults(self) -> dict[str, Any]:
        """Declared defaults of the top-level parameters (fixed values count as defaults)."""
        return {name: p.default_value for name, p in self.params.items() if p.default_value is not NO_DEFAULT}


def _option_index(drawn: Any, choice: Choice, label: str) -> int:
    try:
        i = operator.index(drawn)
    except TypeError:
        raise ValueError(f"{label}: a choice draw must be an option index, got {drawn!r}") from None
    if isinstance(drawn, bool) or not 0 <= i < len(choice.options):
        raise ValueError(f"{label}: option index {drawn!r} outside 0..{len(choice.options) - 1}")
    return i


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

    def canonical(self) -> dict[str, Any]:
        """Everything that decides which trials run; not version, parent, notes or the file."""
        return {
            "study": self.study,
            "trainable": self.trainable,
            "metric": {"name": self.metric.name, "mode": self.metric.mode},
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
