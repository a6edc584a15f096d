"""A space file's text into a ``StudyVersion``: every key checked, every problem located.

Every problem names the file, the line, the key path (``params.optimizer.choice[1].momentum.uniform``) and what
was expected; all problems of a document are collected before one ``SpaceError`` is raised. The text is read by
``yamlsafe``; the parameter kinds validate their own values (``kinds``, ``space``) and their ``ValueError`` becomes
a located problem here.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from orchestrator.errors import did_you_mean

from .errors import Problem, SpaceError
from .kinds import Fixed, IntRange, QLogUniform, QUniform
from .space import NUMERIC_KINDS, Choice, Param, SearchSpace
from .version import LIARS, MAX_OBJECTIVES, Constraint, Metric, Resources, Schedule, SearchSettings, StudyVersion
from .yamlsafe import (
    EXPONENT_TEXT,
    MAX_CHOICE_DEPTH,
    MAX_FILE_BYTES,
    Graph,
    check_size,
    exponent_fix,
    format_path,
    load_yaml,
)

INT64 = (-(2**63), 2**63 - 1)  # what a value in a trial's config may be as an integer
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

TOP_KEYS = (
    "study",
    "version",
    "parent",
    "trainable",
    "metric",
    "objectives",
    "constraints",
    "schedule",
    "resources",
    "search",
    "fixed",
    "params",
    "notes",
)
REQUIRED_TOP = ("study", "version", "trainable", "params")  # and one of metric, objectives
DIST_KEYS = ("uniform", "loguniform", "quniform", "qloguniform", "int", "choice", "fixed")
MODIFIERS = {
    "uniform": ("default", "limits"),
    "loguniform": ("default", "limits"),
    "quniform": ("default", "limits"),
    "qloguniform": ("default", "limits"),
    "int": ("default", "limits", "step", "log"),
    "choice": ("default",),
    "fixed": (),
}
RESERVED = set(DIST_KEYS) | {"default", "limits", "step", "log"}


def _type_name(x: Any) -> str:
    if x is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "text", list: "list", dict: "mapping"}.get(
        type(x), type(x).__name__
    )


def _show(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- parse context


@dataclass
class _Ctx:
    file: str | None
    graph: Graph = field(default_factory=Graph)
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: tuple[Any, ...], message: str) -> None:
        line = None
        for n in range(len(path), -1, -1):
            if path[:n] in self.graph.lines:
                line = self.graph.lines[path[:n]]
                break
        self.problems.append(Problem(format_path(path), message, self.file, line))

    def flag_exponent_text(self, path: tuple[Any, ...], value: Any) -> bool:
        """Report every plain ``1e-3`` in ``value`` (found at ``path``), which YAML read as text; True if any."""
        if isinstance(value, Mapping):
            return any([self.flag_exponent_text(path + (k,), v) for k, v in value.items()])
        if isinstance(value, list):
            return any([self.flag_exponent_text(path + (i,), v) for i, v in enumerate(value)])
        text = self.graph.exponent_text.get(path)
        if text is None or text != value:
            return False
        self.error(path, f"{text!r} is text, not a number: {exponent_fix(text)}; quote it to mean text")
        return True

    def flag_huge_integers(self, path: tuple[Any, ...], value: Any) -> None:
        """Report every integer in ``value`` that a signed 64-bit integer cannot hold: trials' configs go through
        Ray Tune's loggers, MLflow and Parquet ledgers, none of which holds one (``INT64``)."""
        if isinstance(value, Mapping):
            for k, v in value.items():
                self.flag_huge_integers(path + (k,), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.flag_huge_integers(path + (i,), v)
        elif isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
            self.error(
                path,
                f"{value} does not fit in a 64-bit integer ({INT64[0]} to {INT64[1]}), which is what trials' configs "
                "are logged and stored as; use a float (1.0e+32) or a smaller range",
            )

    def check_keys(self, data: Mapping[str, Any], path: tuple[Any, ...], allowed: Iterable[str], what: str) -> bool:
        allowed = list(allowed)
        ok = True
        for key in data:
            if key not in allowed:
                ok = False
                self.error(
                    path + (key,) if isinstance(key, str) else path,
                    f"unknown key {_show(key)} in {what}{did_you_mean(key, allowed)} (allowed: {', '.join(allowed)})",
                )
        return ok

    def mapping(self, data: Any, path: tuple[Any, ...], what: str) -> Mapping[str, Any] | None:
        if not isinstance(data, Mapping):
            self.error(path, f"expected a mapping for {what}, got {_type_name(data)} {_show(data)}")
            return None
        bad = [k for k in data if not isinstance(k, str)]
        for k in bad:
            self.error(path, f"keys must be text, got {_type_name(k)} {_show(k)}")
        return None if bad else data


def _number(ctx: _Ctx, x: Any, path: tuple[Any, ...], what: str) -> float | int | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        hint = ""
        if isinstance(x, str) and EXPONENT_TEXT.fullmatch(x):
            hint = f"; {exponent_fix(x)}"
        elif isinstance(x, str):
            with contextlib.suppress(ValueError):
                float(x)
                hint = " (write numbers without quotes)"
        ctx.error(path, f"{what} must be a number, got {_type_name(x)} {_show(x)}{hint}")
        return None
    if not math.isfinite(x):
        ctx.error(path, f"{what} must be finite, got {x}")
        return None
    return x


def _positive_int(ctx: _Ctx, x: Any, path: tuple[Any, ...], what: str, minimum: int = 1) -> int | None:
    if isinstance(x, bool) or not isinstance(x, int) or x < minimum:
        ctx.error(path, f"{what} must be an integer >= {minimum}, got {_show(x)}")
        return None
    return x


def _boolean(ctx: _Ctx, x: Any, path: tuple[Any, ...], what: str) -> bool | None:
    if not isinstance(x, bool):
        ctx.error(path, f"{what} must be true or false, got {_show(x)}")
        return None
    return x


# --------------------------------------------------------------------------- parameters


def _parse_space(ctx: _Ctx, data: Any, path: tuple[Any, ...], what: str) -> SearchSpace | None:
    data = ctx.mapping(data, path, what)
    if data is None:
        return None
    if not data:
        ctx.error(path, f"{what} must name at least one parameter")
        return None
    params: dict[str, Param] = {}
    ok = True
    for name, spec in data.items():
        if not NAME.match(name) or name in RESERVED:
            why = (
                "is a reserved word (a distribution or modifier keyword); rename it"
                if name in RESERVED
                else "is not a valid name: use letters, digits and _ (no dots), not starting with a digit"
            )
            ctx.error(path + (name,), f"parameter name {name!r} {why}")
            ok = False
            continue
        p = _parse_param(ctx, spec, path + (name,))
        if p is None:
            ok = False
        else:
            params[name] = p
    return SearchSpace(params) if ok else None


def _parse_param(ctx: _Ctx, spec: Any, path: tuple[Any, ...]) -> Param | None:
    if spec is None or isinstance(spec, str | bool | int | float):
        if isinstance(spec, float) and not math.isfinite(spec):
            ctx.error(path, f"fixed value must be finite, got {spec}")
            return None
        return None if ctx.flag_exponent_text(path, spec) else Fixed(spec)
    if isinstance(spec, list):
        ctx.error(
            path,
            "a plain list is ambiguous here: write {choice: [...]} to search over these values, "
            "or {fixed: [...]} to pass the list as is",
        )
        return None
    spec = ctx.mapping(spec, path, "a parameter")
    if spec is None:
        return None
    kinds = [k for k in spec if k in DIST_KEYS]
    if len(kinds) != 1:
        if kinds:
            ctx.error(path, f"give exactly one distribution, got {', '.join(kinds)}")
        else:
            unknown = [k for k in spec if k not in RESERVED]
            hint = did_you_mean(unknown[0], DIST_KEYS) if unknown else ""
            ctx.error(
                path,
                f"expected a distribution ({', '.join(DIST_KEYS)}), got keys {sorted(spec)}{hint}; "
                "to pass a mapping as a value write {fixed: {...}}",
            )
        return None
    kind = kinds[0]
    if not ctx.check_keys(spec, path, (kind, *MODIFIERS[kind]), f"a {kind} parameter"):
        return None
    flagged = [ctx.flag_exponent_text(path + (key,), spec[key]) for key in ("default", "fixed") if key in spec]
    if any(flagged):
        return None
    if kind == "fixed":
        return Fixed(spec["fixed"])
    if kind == "choice":
        return _parse_choice(ctx, spec, path)
    return _parse_numeric(ctx, kind, spec, path)


def _parse_numeric(ctx: _Ctx, kind: str, spec: Mapping[str, Any], path: tuple[Any, ...]) -> Param | None:
    bounds = spec[kind]
    quantized = kind in ("quniform", "qloguniform")
    want = "[low, high, q]" if quantized else "[low, high]"
    bpath = path + (kind,)
    if not isinstance(bounds, list) or len(bounds) != (3 if quantized else 2):
        ctx.error(bpath, f"expected {want}, got {_show(bounds)}")
        return None
    nums = [
        _number(ctx, b, bpath + (i,), name)
        for i, (b, name) in enumerate(zip(bounds, ("low", "high", "q"), strict=False))
    ]
    if any(n is None for n in nums):
        return None
    kwargs: dict[str, Any] = {}
    if "default" in spec:
        kwargs["default"] = spec["default"]
    if "limits" in spec:
        lim = spec["limits"]
        if not isinstance(lim, list) or len(lim) != 2:
            ctx.error(path + ("limits",), f"expected [low, high], got {_show(lim)}")
            return None
        nl = [_number(ctx, v, path + ("limits", i), "a limit") for i, v in enumerate(lim)]
        if any(n is None for n in nl):
            return None
        kwargs["limits"] = tuple(nl)
    try:
        if kind == "int":
            if "step" in spec:
                kwargs["step"] = spec["step"]
            if "log" in spec:
                kwargs["log_scale"] = spec["log"]
            return IntRange(nums[0], nums[1], **kwargs)
        if quantized:
            cls = QUniform if kind == "quniform" else QLogUniform
            # Whole-number bounds and step give whole-number values (ints, not 64.0).
            integer = all(isinstance(n, int) for n in nums)
            return cls(float(nums[0]), float(nums[1]), q=float(nums[2]), integer=integer, **kwargs)
        return NUMERIC_KINDS[kind](float(nums[0]), float(nums[1]), **kwargs)
    except ValueError as e:
        ctx.error(_blame(path, kind, str(e)), str(e))
        return None


def _choice_depth(choice_path: tuple[Any, ...]) -> int:
    """How many levels of sub-spaces a choice's options would be (1 for ``params.a.choice``).

    Counting ``choice`` segments is exact: it is a reserved word, never a parameter name.
    """
    return choice_path.count("choice")


def _blame(path: tuple[Any, ...], kind: str, message: str) -> tuple[Any, ...]:
    """The key a constructor's complaint is about: a modifier when the message names one."""
    first = message.split()[0]
    if first in ("default", "limits", "step", "log"):
        return path + (first,)
    if "limits" in message:
        return path + ("limits",)
    return path + (kind,)


def _parse_choice(ctx: _Ctx, spec: Mapping[str, Any], path: tuple[Any, ...]) -> Param | None:
    options = spec["choice"]
    cpath = path + ("choice",)
    if not isinstance(options, list) or not options:
        ctx.error(cpath, f"expected a non-empty list of options, got {_show(options)}")
        return None
    if _choice_depth(cpath) > MAX_CHOICE_DEPTH and any(isinstance(opt, Mapping) for opt in options):
        ctx.error(cpath, f"choice sub-spaces are nested more than {MAX_CHOICE_DEPTH} levels deep")
        return None
    parsed: list[Any] = []
    ok = True
    for i, opt in enumerate(options):
        opath = cpath + (i,)
        if isinstance(opt, Mapping):
            looks_like = [k for k in opt if k in DIST_KEYS]
            if looks_like:
                ctx.error(
                    opath,
                    f"option {i} looks like a distribution ({looks_like[0]}); an option is a value "
                    "or a mapping of named parameters such as {name: sgd, momentum: {uniform: [0.8, 0.99]}}",
                )
                ok = False
                continue
            sub = _parse_space(ctx, opt, opath, f"option {i}")
            ok = ok and sub is not None
            parsed.append(sub)
        elif isinstance(opt, list):
            ctx.error(opath, "an option cannot be a list; use a mapping of named parameters")
            ok = False
        elif isinstance(opt, float) and not math.isfinite(opt):
            ctx.error(opath, f"option must be finite, got {opt}")
            ok = False
        elif ctx.flag_exponent_text(opath, opt):
            ok = False
        else:
            parsed.append(opt)
    if not ok:
        return None
    kwargs = {"default": spec["default"]} if "default" in spec else {}
    try:
        return Choice(tuple(parsed), **kwargs)
    except ValueError as e:
        ctx.error(path + ("default",) if str(e).startswith("default") else cpath, str(e))
        return None


# --------------------------------------------------------------------------- sections


def _parse_section(
    ctx: _Ctx,
    data: Mapping[str, Any],
    key: str,
    cls: type,
    fields: Mapping[str, Callable[[Any, tuple[Any, ...]], Any]],
) -> Any:
    raw = data.get(key)
    if raw is None:
        return cls()
    raw = ctx.mapping(raw, (key,), key)
    if raw is None or not ctx.check_keys(raw, (key,), fields, key):
        return None
    values = {}
    for name, value in raw.items():
        parsed = fields[name](value, (key, name))
        if parsed is None:
            return None
        values[name] = parsed
    return cls(**values)


def _one_of(ctx: _Ctx, options: tuple[str, ...]) -> Callable[[Any, tuple[Any, ...]], Any]:
    def check(value: Any, path: tuple[Any, ...]) -> Any:
        if value not in options:
            ctx.error(path, f"expected one of {', '.join(options)}, got {_show(value)}{did_you_mean(value, options)}")
            return None
        return value

    return check


def _parse_document(ctx: _Ctx, data: Any) -> StudyVersion | None:
    data = ctx.mapping(data, (), "a space file")
    if data is None:
        return None
    ctx.check_keys(data, (), TOP_KEYS, "a space file")
    for key in REQUIRED_TOP:
        if key not in data:
            ctx.error((), f"missing required key {key!r}")

    study = data.get("study")
    if "study" in data and (not isinstance(study, str) or not STUDY_NAME.match(study)):
        ctx.error(("study",), f"expected a study name (letters, digits, _ . -), got {_show(study)}")
    version = data.get("version")
    if "version" in data:
        version = _positive_int(ctx, version, ("version",), "version")
    parent = data.get("parent")
    if parent is not None:
        parent = _positive_int(ctx, parent, ("parent",), "parent")
        if parent is not None and isinstance(version, int) and parent >= version:
            ctx.error(("parent",), f"parent must be an earlier version than {version}, got {parent}")
    elif isinstance(version, int) and version > 1:
        ctx.error(("parent",) if "parent" in data else (), f"version {version} must name its parent version")
    trainable = data.get("trainable")
    if "trainable" in data and (not isinstance(trainable, str) or not trainable):
        ctx.error(("trainable",), f"expected a trainable name, got {_show(trainable)}")

    metric, objectives = None, ()
    if ("metric" in data) == ("objectives" in data):
        both = "metric" in data
        ctx.error(
            ("objectives",) if both else (),
            "give either metric (one) or objectives (2 or 3), not both"
            if both
            else "missing required key 'metric' (or 'objectives', for several)",
        )
    elif "metric" in data:
        metric = _parse_metric(ctx, data["metric"], ("metric",))
    else:
        objectives = _parse_objectives(ctx, data["objectives"])
        metric = objectives[0] if objectives else None
    constraints = _parse_constraints(ctx, data["constraints"]) if data.get("constraints") is not None else ()

    num = lambda what: lambda v, p: _positive_number(ctx, v, p, what)  # noqa: E731
    schedule = _parse_section(
        ctx,
        data,
        "schedule",
        Schedule,
        {
            "scheduler": _one_of(ctx, ("asha", "fifo")),
            "max_epochs": lambda v, p: _positive_int(ctx, v, p, "max_epochs"),
            "grace_period": lambda v, p: _positive_int(ctx, v, p, "grace_period"),
            "reduction_factor": lambda v, p: _number_above(ctx, v, p, "reduction_factor", 1.0),
            "brackets": lambda v, p: _positive_int(ctx, v, p, "brackets"),
        },
    )
    if schedule is not None and schedule.grace_period > schedule.max_epochs:
        ctx.error(
            ("schedule", "grace_period"),
            f"grace_period ({schedule.grace_period}) must not exceed max_epochs ({schedule.max_epochs})",
        )
    elif schedule is not None and schedule.brackets > 1 and schedule.scheduler != "asha":
        ctx.error(("schedule", "brackets"), f"brackets ({schedule.brackets}) needs scheduler: asha")
    elif schedule is not None and schedule.brackets > schedule.max_brackets():
        ctx.error(
            ("schedule", "brackets"),
            f"brackets ({schedule.brackets}) must not exceed {schedule.max_brackets()} here: one per ASHA milestone "
            f"below max_epochs ({schedule.max_epochs}), from grace_period {schedule.grace_period} times "
            f"reduction_factor {schedule.reduction_factor:g}, plus one that never stops early",
        )
    resources = _parse_section(
        ctx,
        data,
        "resources",
        Resources,
        {
            "cpu": num("cpu"),
            "gpu": lambda v, p: _gpu(ctx, v, p),
        },
    )
    search = _parse_section(
        ctx,
        data,
        "search",
        SearchSettings,
        {
            "algorithm": lambda v, p: _identifier(ctx, v, p, "a searcher name"),
            "trials": lambda v, p: _positive_int(ctx, v, p, "trials"),
            "concurrency": lambda v, p: _positive_int(ctx, v, p, "concurrency"),
            "startup_trials": lambda v, p: _positive_int(ctx, v, p, "startup_trials"),
            "max_failures": lambda v, p: _positive_int(ctx, v, p, "max_failures", minimum=0),
            # YAML reads a bare ``off`` as false
            "liar": lambda v, p: _one_of(ctx, LIARS)("off" if v is False else v, p),
            "min_rung_trials": lambda v, p: _positive_int(ctx, v, p, "min_rung_trials"),
            "repeats": lambda v, p: _boolean(ctx, v, p, "repeats"),
        },
    )

    fixed: Mapping[str, Any] | None = {}
    if data.get("fixed") is not None:
        fixed = ctx.mapping(data["fixed"], ("fixed",), "fixed")
        ctx.flag_exponent_text(("fixed",), fixed)
        for name in fixed or {}:
            if not NAME.match(name):
                ctx.error(("fixed", name), f"{name!r} is not a valid name (letters, digits and _)")
    params = _parse_space(ctx, data["params"], ("params",), "params") if "params" in data else None
    if params is not None and fixed:
        for name in params.params.keys() & fixed.keys():
            ctx.error(("fixed", name), f"{name!r} is both fixed and a searched parameter; keep one")
    notes = data.get("notes", "")
    if notes is None:
        notes = ""
    if not isinstance(notes, str):
        ctx.error(("notes",), f"expected text, got {_type_name(notes)}")

    if ctx.problems:
        return None
    return StudyVersion(
        study=study,
        version=version,
        parent=parent,
        trainable=trainable,
        metric=metric,
        params=params,
        schedule=schedule,
        resources=resources,
        search=search,
        fixed=dict(fixed or {}),
        notes=notes,
        source=ctx.file,
        objectives=objectives,
        constraints=constraints,
    )


def _parse_metric(ctx: _Ctx, data: Any, path: tuple[Any, ...]) -> Metric | None:
    """``{name, mode}``: a reported metric and whether lower or higher is better."""
    m = ctx.mapping(data, path, "a metric")
    if m is None or not ctx.check_keys(m, path, ("name", "mode"), "a metric"):
        return None
    if not isinstance(m.get("name"), str) or not m.get("name"):
        ctx.error(path + ("name",), f"expected the name of a reported metric, got {_show(m.get('name'))}")
    elif m.get("mode") not in ("min", "max"):
        mode = str(m.get("mode"))
        ctx.error(
            path + ("mode",), f"expected min or max, got {_show(m.get('mode'))}{did_you_mean(mode, ('min', 'max'))}"
        )
    else:
        return Metric(m["name"], m["mode"])
    return None


def _parse_objectives(ctx: _Ctx, data: Any) -> tuple[Metric, ...]:
    """``objectives:``: a list of 2 to ``MAX_OBJECTIVES`` metrics, each named once."""
    path = ("objectives",)
    if not isinstance(data, list) or not 2 <= len(data) <= MAX_OBJECTIVES:
        ctx.error(path, f"expected a list of 2 to {MAX_OBJECTIVES} objectives ({{name, mode}} each), got {_show(data)}")
        return ()
    parsed = [_parse_metric(ctx, item, path + (i,)) for i, item in enumerate(data)]
    objectives = tuple(m for m in parsed if m is not None)
    seen: set[str] = set()
    for i, m in enumerate(parsed):
        if m is not None and m.name in seen:
            ctx.error(path + (i, "name"), f"objective {m.name!r} appears twice")
        if m is not None:
            seen.add(m.name)
    return objectives if len(objectives) == len(data) else ()


def _parse_constraints(ctx: _Ctx, data: Any) -> tuple[Constraint, ...]:
    """``constraints:``: reported metric -> ``{max: x}``, ``{min: x}`` or both."""
    path = ("constraints",)
    section = ctx.mapping(data, path, "constraints")
    out = []
    for name, bounds in (section or {}).items():
        where = path + (name,)
        spec = ctx.mapping(bounds, where, f"the constraint on {name}")
        if spec is None or not ctx.check_keys(spec, where, ("max", "min"), f"the constraint on {name}"):
            continue
        values = {k: _number(ctx, v, where + (k,), k) for k, v in spec.items()}
        if any(v is None for v in values.values()):
            continue
        try:
            out.append(Constraint(name, max=values.get("max"), min=values.get("min")))
        except ValueError as e:
            ctx.error(where, str(e))
    return tuple(out)


def _identifier(ctx: _Ctx, x: Any, path: tuple[Any, ...], what: str) -> str | None:
    """A name such as a searcher's; which names exist is for the code that runs the version to say."""
    if not isinstance(x, str) or not NAME.match(x):
        ctx.error(path, f"expected {what} (letters, digits and _, not starting with a digit), got {_show(x)}")
        return None
    return x


def _positive_number(ctx: _Ctx, x: Any, path: tuple[Any, ...], what: str) -> float | None:
    n = _number(ctx, x, path, what)
    if n is not None and n <= 0:
        ctx.error(path, f"{what} must be > 0, got {n}")
        return None
    return n


def _number_above(ctx: _Ctx, x: Any, path: tuple[Any, ...], what: str, floor: float) -> float | None:
    n = _number(ctx, x, path, what)
    if n is not None and n <= floor:
        ctx.error(path, f"{what} must be > {floor}, got {n}")
        return None
    return n


def _gpu(ctx: _Ctx, x: Any, path: tuple[Any, ...]) -> float | None:
    n = _number(ctx, x, path, "gpu")
    if n is None:
        return None
    if n < 0 or (n > 1 and not float(n).is_integer()):
        ctx.error(path, f"gpu must be 0, a fraction below 1 (shared card) or a whole number, got {n}")
        return None
    return n


# --------------------------------------------------------------------------- public API


def parse_version(text: str, file: str | None = None) -> StudyVersion:
    """Parse one space document from text. Raises ``SpaceError`` listing every problem."""
    if len(text) > MAX_FILE_BYTES // 4:  # at least this many UTF-8 bytes; short texts skip the encoding
        check_size(len(text.encode("utf-8", "surrogatepass")), file)
    ctx = _Ctx(file)
    try:
        data, ctx.graph = load_yaml(text, file)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise SpaceError([Problem("", f"not valid YAML: {getattr(e, 'problem', None) or e}", file, line)]) from None
    except RecursionError:
        raise SpaceError([Problem("", "YAML nested too deeply", file)]) from None
    for path, line, key in ctx.graph.duplicates:
        ctx.problems.append(Problem(format_path(path + (key,)), f"key {key!r} appears twice", file, line))
    if data is None:
        raise SpaceError([Problem("", "the file is empty", file)])
    ctx.flag_huge_integers((), data)
    try:
        version = _parse_document(ctx, data)
    except RecursionError:
        raise SpaceError([Problem("", "nested too deeply", file)]) from None
    if ctx.problems or version is None:
        raise SpaceError(ctx.problems or [Problem("", "invalid space", file)])
    return version
