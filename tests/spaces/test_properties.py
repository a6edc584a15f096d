"""Property-based tests: the loader never leaks a foreign error, and encodings round-trip."""

from __future__ import annotations

import copy
import math
import random
from pathlib import Path
from typing import Any

import yaml
from hyperopt import Domain, Trials, rand
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.engine.backends.hyperopt import decode, encode, to_hyperopt
from orchestrator.spaces import SpaceError, StudyVersion, parse_version
from tests.plugin import examples
from tests.spacefiles import SPACES
from tests.spaces.strategies import FUZZ, any_scalars, as_version, documents, space_docs, to_yaml

SHIPPED = [yaml.safe_load(p.read_text()) for p in sorted(SPACES.glob("*/v*.yaml"))]


def load_or_error(text: str) -> StudyVersion | None:
    """The only acceptable outcomes: a version, or a SpaceError with located problems."""
    try:
        return parse_version(text, "doc.yaml")
    except SpaceError as e:
        assert e.problems and all(p.file == "doc.yaml" and p.message for p in e.problems)
        return None


@FUZZ
@given(documents)
def test_random_documents_only_raise_space_error(doc: Any) -> None:
    try:
        text = yaml.safe_dump(doc)
    except (yaml.YAMLError, ValueError, OverflowError):
        return
    load_or_error(text)


@FUZZ
@given(st.text(max_size=200))
def test_random_text_only_raises_space_error(text: str) -> None:
    load_or_error(text)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_from_a_file_only_raise_space_error(tmp_path_factory, data: bytes) -> None:
    from orchestrator.spaces import load_version

    path: Path = tmp_path_factory.mktemp("bytes") / "v1.yaml"
    path.write_bytes(data)
    try:
        load_version(path)
    except SpaceError as e:
        assert e.problems


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _mutate(doc: Any, rnd: random.Random, replacement: Any) -> Any:
    doc = copy.deepcopy(doc)
    path = rnd.choice(_paths(doc)[1:])
    parent = doc
    for seg in path[:-1]:
        parent = parent[seg]
    last = path[-1]
    op = rnd.choice(["delete", "replace", "typo", "swap", "negate"])
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = replacement
    elif op == "typo" and isinstance(last, str) and len(last) > 1:
        i = rnd.randrange(len(last) - 1)
        parent[last[:i] + last[i + 1] + last[i] + last[i + 2 :]] = parent.pop(last)
    elif op == "swap" and isinstance(parent[last], list) and len(parent[last]) >= 2:
        parent[last][0], parent[last][1] = parent[last][1], parent[last][0]
    elif op == "negate" and isinstance(parent[last], int | float) and not isinstance(parent[last], bool):
        parent[last] = -parent[last]
    return doc


@FUZZ
@given(
    st.sampled_from(range(len(SHIPPED))), st.randoms(use_true_random=False), any_scalars | documents, st.integers(1, 3)
)
def test_mutated_shipped_documents_only_raise_space_error(which, rnd, replacement, rounds) -> None:
    doc = SHIPPED[which]
    for _ in range(rounds):
        doc = _mutate(doc, rnd, replacement)
    try:
        text = yaml.safe_dump(doc)
    except (yaml.YAMLError, ValueError, OverflowError):
        return
    load_or_error(text)


# --------------------------------------------------------------------------- valid spaces


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space_docs(), st.integers(0, 2**31 - 1))
def test_round_trip_through_hyperopt_is_identity(params: dict, seed: int) -> None:
    space = as_version(params).params
    domain = Domain(lambda c: 0.0, to_hyperopt(space))
    docs = rand.suggest(list(range(8)), domain, Trials(), seed)
    for doc in docs:
        vals = doc["misc"]["vals"]
        values = decode(space, vals)
        assert space.contains(values) is None, space.contains(values)
        encoded = encode(space, values)
        assert set(encoded) == set(vals)
        again = decode(space, encoded)
        assert _same(values, again), (values, again)
        assert encode(space, again) == encoded


def _shuffled(node: Any, rnd: random.Random) -> Any:
    if isinstance(node, dict):
        items = list(node.items())
        rnd.shuffle(items)
        return {k: _shuffled(v, rnd) for k, v in items}
    if isinstance(node, list):
        return [_shuffled(v, rnd) for v in node]
    return node


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space_docs(), st.randoms(use_true_random=False), st.booleans())
def test_hash_stable_under_key_order_and_style(params: dict, rnd: random.Random, flow: bool) -> None:
    doc = {"study": "p", "version": 1, "trainable": "t", "metric": {"name": "m", "mode": "min"}, "params": params}
    a = parse_version(to_yaml(doc, sort_keys=False))
    b = parse_version(to_yaml(_shuffled(doc, rnd), sort_keys=False, default_flow_style=flow, indent=4))
    assert a.content_hash == b.content_hash


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space_docs(), st.randoms(use_true_random=False))
def test_hash_changes_when_a_range_or_choice_changes(params: dict, rnd: random.Random) -> None:
    doc = {"study": "p", "version": 1, "trainable": "t", "metric": {"name": "m", "mode": "min"}, "params": params}
    before = parse_version(to_yaml(doc)).content_hash
    changed = copy.deepcopy(doc)
    leaves = [p for p in _paths(changed["params"]) if p and p[-1] in (0, 1) and isinstance(p[-1], int)]
    bounds = [p for p in leaves if len(p) >= 2 and p[-2] in ("uniform", "loguniform", "int", "quniform", "qloguniform")]
    choices = [p for p in _paths(changed["params"]) if p and p[-1] == "choice"]
    target = rnd.choice(bounds + choices)
    node = changed["params"]
    if target[-1] == "choice":
        for seg in target[:-1]:
            node = node[seg]
        node["choice"] = [*node["choice"], "added-option"]
    else:  # move one bound by one step, keeping the file valid
        for seg in target[:-2]:
            node = node[seg]
        bounds_list = node[target[-2]]
        q = bounds_list[2] if len(bounds_list) == 3 else node.get("step", 1)
        if target[-1] == 1:
            bounds_list[1] += q
        elif bounds_list[0] + q < bounds_list[1]:
            bounds_list[0] += q
        else:
            bounds_list[1] += q
    after = parse_version(to_yaml(changed))
    assert after.content_hash != before
