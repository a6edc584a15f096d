"""The space model's generic walk: which option a value picks, active parameters, building configurations."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.spaces import Choice, Fixed, IntRange, Param, SearchSpace, Uniform, ValueNotInSpace
from orchestrator.spaces.carry import fit
from tests.plugin import examples
from tests.spaces.strategies import as_version, random_draw, space_docs

SGD = SearchSpace({"name": Fixed("sgd"), "momentum": Uniform(0.5, 0.99)})
ADAM = SearchSpace({"name": Fixed("adam")})
A_ONLY = SearchSpace({"a": Uniform(0.0, 1.0)})  # two options told apart by their keys alone
A_AND_B = SearchSpace({"a": Uniform(0.0, 1.0), "b": IntRange(1, 3)})
NESTED = SearchSpace(
    {
        "lr": Uniform(0.0, 1.0),
        "depth": IntRange(2, 8, step=2),
        "act": Fixed("relu"),
        "optimizer": Choice((ADAM, SGD)),
        "units": Choice((A_ONLY, A_AND_B)),
    }
)
CONFIG = {"lr": 0.5, "depth": 4, "act": "relu", "optimizer": {"name": "sgd", "momentum": 0.9}, "units": {"a": 0.1}}


# --------------------------------------------------------------------------- select


def test_select_scalars_by_same_value() -> None:
    c = Choice((1, 2.5, True, None, "x"))
    assert [c.select(v) for v in (1, 1.0, 2.5, True, None, "x")] == [0, 0, 1, 2, 3, 4]
    assert c.select(False) is None and c.select("y") is None and c.select({"x": 1}) is None
    assert Choice((True, 1)).select(1) == 1, "True is not 1"


def test_select_sub_spaces_by_fixed_entries() -> None:
    c = NESTED.params["optimizer"]
    assert c.select({"name": "adam"}) == 0 and c.select({"name": "sgd", "momentum": 0.9}) == 1
    assert c.select({"name": "sgd", "momentum": 5.0}) == 1, "select picks the option; containment is separate"
    assert not c.contains({"name": "sgd", "momentum": 5.0})
    assert c.select({"name": "rmsprop"}) is None and c.select({"momentum": 0.9}) is None and c.select("sgd") is None


def test_select_sub_spaces_without_fixed_entries_by_key_set() -> None:
    c = NESTED.params["units"]
    assert c.select({"a": 0.1}) == 0 and c.select({"a": 0.1, "b": 2}) == 1
    assert c.select({"b": 2}) == 1, "no exact key set: the most shared keys"
    assert c.select({"z": 1}) == 0, "a tie is broken by the first option"


def test_select_tolerates_added_and_removed_keys_for_carry() -> None:
    c = NESTED.params["optimizer"]
    assert c.select({"name": "sgd"}) == 1, "momentum added since"
    assert c.select({"name": "adam", "beta": 0.9}) == 0, "beta removed since"
    assert c.select({"name": "sgd", "momentum": 0.9, "nesterov": True}) == 1
    carried = fit(NESTED, {**CONFIG, "optimizer": {"name": "adam", "beta": 0.9}})
    assert carried["optimizer"] == {"name": "adam"}


def test_select_prefers_the_exact_key_set_over_more_shared_keys() -> None:
    c = Choice(
        (SearchSpace({"k": Fixed(1), "x": Uniform(0.0, 1.0), "y": Uniform(0.0, 1.0)}), SearchSpace({"k": Fixed(1)}))
    )
    assert c.select({"k": 1}) == 1 and c.select({"k": 1, "x": 0.5}) == 0 and c.select({"k": 1, "x": 0.5, "y": 0.5}) == 0


# --------------------------------------------------------------------------- active


def test_active_yields_labels_paths_values_and_options() -> None:
    got = [(a.label, a.path, a.value, a.option) for a in NESTED.active(CONFIG)]
    assert got == [
        ("lr", "lr", 0.5, None),
        ("depth", "depth", 4, None),
        ("act", "act", "relu", None),
        ("optimizer", "optimizer", {"name": "sgd", "momentum": 0.9}, 1),
        ("optimizer[1].name", "optimizer.name", "sgd", None),
        ("optimizer[1].momentum", "optimizer.momentum", 0.9, None),
        ("units", "units", {"a": 0.1}, 0),
        ("units[0].a", "units.a", 0.1, None),
    ]
    assert {a.label for a in NESTED.active(CONFIG)} <= {label for label, _ in NESTED.walk()}


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        (lambda c: c.pop("lr"), "lr", "missing"),
        (lambda c: c.update(extra=1), "extra", "not a parameter of this space"),
        (lambda c: c.update(lr=5.0), "lr", "5.0 is outside uniform [0.0, 1.0]"),
        (lambda c: c.update(depth=3), "depth", "is outside int [2, 8] step 2"),
        (lambda c: c.update(act="tanh"), "act", "'tanh' differs from the fixed value 'relu'"),
        (lambda c: c.update(optimizer={"name": "rmsprop"}), "optimizer", "is not one of choice [adam, sgd]"),
        (lambda c: c.update(optimizer={"name": "sgd"}), "optimizer.momentum", "missing"),
        (lambda c: c.update(optimizer={"name": "adam", "x": 1}), "optimizer.x", "not a parameter of this space"),
        (lambda c: c.update(units={"a": 2.0}), "units.a", "outside"),
    ],
)
def test_active_raises_at_the_first_value_the_space_cannot_produce(change, path: str, reason: str) -> None:
    config = {**CONFIG, "optimizer": dict(CONFIG["optimizer"])}
    change(config)
    with pytest.raises(ValueNotInSpace) as info:
        list(NESTED.active(config))
    assert info.value.path == path and reason in info.value.reason
    assert NESTED.contains(config) == f"{path}: {info.value.reason}"


def test_active_rejects_a_non_mapping() -> None:
    with pytest.raises(ValueNotInSpace, match="<config>: expected a mapping"):
        list(NESTED.active([1, 2]))  # type: ignore[arg-type]
    assert NESTED.contains(CONFIG) is None


# --------------------------------------------------------------------------- build


def test_build_takes_option_indices_and_values() -> None:
    calls: list[str] = []

    def draw(label: str, p: Param) -> Any:
        calls.append(label)
        return {"optimizer": 1, "units": 1}[label] if p.is_choice else p.low

    config = NESTED.build(draw)
    assert config == {
        "lr": 0.0,
        "depth": 2,
        "act": "relu",
        "optimizer": {"name": "sgd", "momentum": 0.5},
        "units": {"a": 0.0, "b": 1},
    }
    assert calls == ["lr", "depth", "optimizer", "optimizer[1].momentum", "units", "units[1].a", "units[1].b"]


@pytest.mark.parametrize("bad", [2, -1, 0.5, True, "0"])
def test_build_rejects_a_draw_that_is_not_an_option_index(bad) -> None:
    with pytest.raises(ValueError, match="optimizer"):
        NESTED.build(lambda label, p: bad if p.is_choice else p.low)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(space_docs(modifiers=True), st.randoms(use_true_random=False))
def test_build_then_active_yields_exactly_the_labels_built(params: dict, rnd: random.Random) -> None:
    space = as_version(params).params
    drawn: list[str] = []
    draw = random_draw(rnd)
    config = space.build(lambda label, p: drawn.append(label) or draw(label, p))
    active = list(space.active(config))
    assert [a.label for a in active if not a.param.is_fixed] == drawn
    assert space.contains(config) is None
    for a in active:
        if a.param.is_choice:
            assert a.param.select(a.value) == a.option, "a value the space produced selects its own option"
            assert a.param.contains(a.value)
        assert a.param.contains(a.value)
    assert fit(space, config) == config, "carry keeps a configuration of the same space as it is"


# --------------------------------------------------------------------------- configurations: keys and counts


def test_configuration_key_tells_configurations_apart_as_the_space_sees_them() -> None:
    key = NESTED.configuration_key(CONFIG)
    assert key == NESTED.configuration_key({**CONFIG, "depth": 4.0, "lr": 0.5})  # recorded as floats: the same
    assert key == NESTED.configuration_key(dict(reversed(list(CONFIG.items()))))  # key order does not matter
    assert key != NESTED.configuration_key({**CONFIG, "depth": 6})
    assert key != NESTED.configuration_key({**CONFIG, "optimizer": {"name": "adam"}})
    assert ("act", "relu") not in key and ("optimizer", 1) in key  # fixed values left out; a choice by option
    with pytest.raises(ValueNotInSpace):
        NESTED.configuration_key({**CONFIG, "depth": 5})


def test_size_counts_configurations_of_finite_spaces_only() -> None:
    grid = SearchSpace({"a": Choice((1, 2, 3)), "b": IntRange(0, 4, step=2), "c": Fixed("x")})
    assert grid.size() == 9
    nested = SearchSpace({"opt": Choice((SearchSpace({"n": IntRange(1, 3)}), "plain")), "b": IntRange(0, 1)})
    assert nested.size() == (3 + 1) * 2
    assert NESTED.size() is None and A_AND_B.size() is None  # a continuous parameter
