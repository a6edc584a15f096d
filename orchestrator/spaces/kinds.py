"""Parameter kinds: a ``Fixed`` value and the numeric distributions, plain immutable data with no heavy imports.

``Uniform``, ``LogUniform``, ``QUniform``, ``QLogUniform`` and ``IntRange`` (the choices and the spaces they nest in
are ``space``). Values (never encodings) are what these speak; what searcher backends need is library-neutral and
lives here: the step grid of quantized and int ranges (``steps``, ``value_at``, ``index_of``, ``snap``).
Bounds are inclusive everywhere. Constructors validate and raise ``ValueError`` with the rule and the values seen;
the loader turns those into ``SpaceError`` with the file and key path.
"""

from __future__ import annotations

import json
import math
import operator
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from orchestrator.redaction import is_secret_key, redacted_value

if TYPE_CHECKING:
    from .space import SearchSpace

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
