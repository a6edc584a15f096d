"""Hypothesis generators of valid space documents and versions, and of any YAML-shaped document (valid or not),
shared by the spaces tests."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from orchestrator.spaces import Param, StudyVersion, parse_version
from orchestrator.spaces.yamlsafe import EXPONENT_TEXT
from tests.plugin import examples

FUZZ = settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""The fuzzing profile of the loader, writer and carry properties: the 1,000 examples CI runs of each (a tenth
under the quick profile of `make test-fast`)."""


class _QuotingDumper(yaml.SafeDumper):
    """PyYAML's safe dumper, except that it quotes text such as ``1e-3`` (which it would write plain)."""


_QuotingDumper.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(f"^(?:{EXPONENT_TEXT.pattern})$"), list("-+.0123456789")
)


def to_yaml(doc: object, **options: object) -> str:
    """A generated document as YAML text that reads back as the same data (``yaml.safe_dump``'s options)."""
    return yaml.dump(doc, Dumper=_QuotingDumper, **options)


names = st.sampled_from(["a", "b", "lr", "depth", "width", "momentum", "opt", "act", "k"])

# Text a careless writer would turn into a number, a boolean, null or broken YAML.
tricky_text = st.sampled_from(
    [
        "1e-3",
        "1E5",
        "yes",
        "No",
        "on",
        "null",
        "~",
        "",
        "0o17",
        "0x1F",
        ".5",
        "1_000",
        "inf",
        "a: b",
        "- x",
        "#c",
        " lead",
        "trail ",
        "two\nlines",
        "end\n",
        "tab\tx",
        "cr\rx",
        "nel\x85x",
        "ls\u2028x",
        "'q'",
        '"d"',
        "{x}",
        "2020-01-01",
        "ü",
    ]
)
texts = tricky_text | st.text(max_size=12)
scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(-1e9, 1e9) | texts
fixed_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3), max_leaves=6
)


@st.composite
def numeric_specs(draw, modifiers: bool = False) -> dict:
    """A numeric parameter; with ``modifiers``, sometimes a ``default`` and ``limits`` too."""
    kind = draw(st.sampled_from(["uniform", "loguniform", "quniform", "qloguniform", "int", "intlog", "intstep"]))
    if kind in ("uniform", "loguniform"):
        lo = draw(st.floats(1e-4, 100))
        hi = lo + draw(st.floats(1e-3, 1000))
        spec: dict = {kind: [lo, hi]}
        default = draw(st.floats(lo, hi))
    elif kind == "quniform":
        q = draw(st.sampled_from([0.05, 0.1, 0.25, 1.0, 2.0]))
        lo, n = draw(st.integers(-20, 20)), draw(st.integers(1, 30))
        spec = {kind: [lo * q, (lo + n) * q, q]}
        default = (lo + draw(st.integers(0, n))) * q
    elif kind == "qloguniform":
        q = draw(st.sampled_from([1, 4, 16]))
        lo, n = draw(st.integers(1, 10)), draw(st.integers(1, 50))
        spec = {kind: [lo * q, (lo + n) * q, q]}
        default = (lo + draw(st.integers(0, n))) * q
    else:
        lo = draw(st.integers(1, 50))
        step = draw(st.integers(1, 5)) if kind == "intstep" else 1
        n = draw(st.integers(1, 500 if kind == "intlog" else 100 // step))
        spec = {"int": [lo, lo + n * step]}
        spec |= {"log": True} if kind == "intlog" else {"step": step} if kind == "intstep" else {}
        default = lo + draw(st.integers(0, n)) * step
    if modifiers and draw(st.booleans()):
        spec["default"] = default
    if modifiers and draw(st.booleans()):
        low, high = spec[next(iter(spec))][:2]
        spec["limits"] = [low / 2, high * 2] if low > 0 else [low - 1, high + 1]
    return spec


def space_docs(depth: int = 2, modifiers: bool = False) -> st.SearchStrategy[dict]:
    """A ``params`` section: numeric ranges, scalar choices and (``depth`` deep) choices of sub-spaces.

    Sub-space options are told apart by a fixed ``name`` or, without one, by their key sets.
    With ``modifiers``, numeric ranges may have defaults and limits, choices defaults, and
    parameters may be fixed (bare scalars or ``{fixed: ...}``).
    """
    options = st.lists(st.sampled_from(["x", "y", "z", 1, 2.5, True, None]), min_size=1, max_size=4, unique_by=repr)
    scalar_choice = options.map(lambda os: {"choice": os})
    if modifiers:
        scalar_choice = options.flatmap(lambda os: st.sampled_from(os).map(lambda d: {"choice": os, "default": d}))
    leaf = numeric_specs(modifiers) | scalar_choice
    if modifiers:
        leaf = leaf | scalars | fixed_values.map(lambda v: {"fixed": v})
    if depth > 0:
        sub = space_docs(depth - 1, modifiers)
        named = st.sampled_from(["p", "q", "r", "s"]).flatmap(lambda n: sub.map(lambda s: {**s, "name": n}))
        by_name = st.lists(named, min_size=1, max_size=3, unique_by=lambda o: o["name"])
        by_keys = st.lists(sub, min_size=1, max_size=3, unique_by=lambda o: frozenset(o))
        leaf = leaf | (by_name | by_keys).map(lambda os: {"choice": os})
    return st.dictionaries(names, leaf, min_size=1, max_size=5)


HEAD = {"study": "p", "version": 1, "trainable": "t", "metric": {"name": "m", "mode": "min"}}


def random_draw(rnd: random.Random) -> Callable[[str, Param], Any]:
    """A draw for ``SearchSpace.build``: a random option index, grid value or value in range."""

    def draw(label: str, p: Param) -> Any:
        if p.is_choice:
            return rnd.randrange(len(p.options))
        if p.is_stepped:
            return p.value_at(rnd.randint(0, p.steps))
        return p.snap(rnd.uniform(p.low, p.high))

    return draw


def as_version(params: dict) -> StudyVersion:
    return parse_version(to_yaml({**HEAD, "params": params}))


@st.composite
def version_docs(draw) -> dict:
    """A whole space document: every section, settings and notes at random, nested params."""
    version = draw(st.integers(1, 4))
    doc: dict = {"study": draw(st.sampled_from(["p", "unet_dstl", "a.b-c"])), "version": version}
    if version > 1:
        doc["parent"] = draw(st.integers(1, version - 1))
    doc |= {
        "trainable": draw(st.sampled_from(["t", "unet"])),
        "metric": {"name": "m", "mode": draw(st.sampled_from(["min", "max"]))},
    }
    max_epochs = draw(st.integers(1, 50))
    optional = {
        "schedule": st.fixed_dictionaries(
            {},
            optional={
                "scheduler": st.sampled_from(["asha", "fifo"]),
                "max_epochs": st.just(max_epochs),
                "grace_period": st.integers(1, min(max_epochs, 10)),  # 10: the default max_epochs
                "reduction_factor": st.sampled_from([1.5, 2, 3, 3.0, 4.5]),
            },
        ),
        "resources": st.fixed_dictionaries(
            {}, optional={"cpu": st.sampled_from([0.5, 1, 1.0, 2, 4]), "gpu": st.sampled_from([0, 0.25, 0.5, 1, 2])}
        ),
        "search": st.fixed_dictionaries(
            {},
            optional={
                "algorithm": st.sampled_from(["tpe", "random", "optuna_tpe", "my_searcher"]),
                "trials": st.integers(1, 500),
                "concurrency": st.integers(1, 64),
                "startup_trials": st.integers(1, 50),
                "max_failures": st.integers(0, 5),
                "liar": st.sampled_from(["worst", "mean", "best", "off"]),
                "min_rung_trials": st.integers(1, 20),
                "repeats": st.booleans(),
            },
        ),
        "fixed": st.dictionaries(st.sampled_from(["data", "patch", "seed", "tag_1"]), fixed_values, max_size=3),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            doc[key] = draw(strategy)
    doc["params"] = draw(space_docs(modifiers=True))
    if draw(st.booleans()):
        doc["notes"] = draw(texts | st.text(max_size=80))
    return doc


# --------------------------------------------------------------------------- any YAML-shaped document, valid or not

VOCAB = [
    "study",
    "version",
    "parent",
    "trainable",
    "metric",
    "name",
    "mode",
    "schedule",
    "max_epochs",
    "grace_period",
    "resources",
    "cpu",
    "gpu",
    "search",
    "trials",
    "fixed",
    "params",
    "notes",
    "uniform",
    "loguniform",
    "quniform",
    "qloguniform",
    "int",
    "choice",
    "default",
    "limits",
    "step",
    "log",
    "min",
    "max",
    "x",
    "lr",
]

any_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(VOCAB)
)
any_keys = st.sampled_from(VOCAB) | st.text(max_size=8)
documents = st.recursive(
    any_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_keys, inner, max_size=6),
    max_leaves=30,
)
