"""Search spaces: ``Choice`` (plain options or conditional sub-spaces), ``SearchSpace`` and configurations.

A space maps parameter names to parameters (a kind of ``kinds``, or a ``Choice``). A ``Choice`` option is a plain
value or a nested ``SearchSpace`` (a conditional sub-space, any depth). A configuration is a nested dict,
``{"lr": 0.01, "optimizer": {"name": "sgd", "momentum": 0.9}}``, and its flat form uses dotted paths
(``optimizer.momentum``). The one rule for which option a value picks (``Choice.select``), the walk over the
parameters active in a configuration (``SearchSpace.active``) and its inverse (``SearchSpace.build``) are what the
searcher backends build their encodings on.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from orchestrator.redaction import redacted_value

from .errors import ValueNotInSpace
from .kinds import (
    NO_DEFAULT,
    Fixed,
    IntRange,
    LogUniform,
    QLogUniform,
    QUniform,
    Scalar,
    Uniform,
    _fmt,
    _Kind,
    _Numeric,
    same_value,
)


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
