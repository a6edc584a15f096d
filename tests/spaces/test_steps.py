"""The step grid of quantized and int ranges: ``steps``, ``value_at``, ``index_of``, ``snap``."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.spaces import NO_DEFAULT, Choice, Fixed, IntRange, LogUniform, QLogUniform, QUniform, Uniform
from orchestrator.spaces.space import NUMERIC_KINDS
from tests.plugin import examples

STEPPED = [
    QUniform(-1.0, 1.0, q=0.1),  # float q: the noise case (0.1 * 3 != 0.3)
    QUniform(0.0, 10.0, q=2.5),
    QUniform(16.0, 256.0, q=16.0, integer=True),
    QLogUniform(16.0, 1024.0, q=16.0, integer=True),
    QLogUniform(0.3, 2.1, q=0.3),
    IntRange(1, 9),
    IntRange(2, 32, step=3),
    IntRange(1, 1000, log_scale=True),
]


@pytest.mark.parametrize("p", STEPPED, ids=lambda p: p.describe())
def test_every_index_maps_to_a_value_and_back(p) -> None:
    values = [p.value_at(k) for k in range(p.steps + 1)]
    assert values[0] == p.low and values[-1] == p.high
    assert values == sorted(set(values)), "values are distinct and increasing"
    assert all(p.contains(v) for v in values)
    assert [p.index_of(v) for v in values] == list(range(p.steps + 1))
    assert [p.snap(v) for v in values] == values


@pytest.mark.parametrize("p", STEPPED, ids=lambda p: p.describe())
def test_values_have_the_type_a_trainable_gets(p) -> None:
    integer = isinstance(p, IntRange) or p.integer
    for k in range(p.steps + 1):
        v = p.value_at(k)
        assert type(v) is (int if integer else float)
        if not integer:
            assert repr(v) == repr(float(f"{v:.12g}")), "no float noise such as 0.30000000000000004"


def test_grids_of_each_kind() -> None:
    assert [QUniform(-1.0, 1.0, q=0.1).value_at(k) for k in (0, 7, 13, 20)] == [-1.0, -0.3, 0.3, 1.0]
    assert [QLogUniform(0.3, 2.1, q=0.3).value_at(k) for k in range(7)] == [0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.1]
    assert [QLogUniform(16.0, 64.0, q=16.0, integer=True).value_at(k) for k in range(4)] == [16, 32, 48, 64]
    assert [IntRange(2, 11, step=3).value_at(k) for k in range(4)] == [2, 5, 8, 11]
    assert IntRange(2, 11, step=3).steps == 3 and QUniform(0.0, 1.0, q=0.25).steps == 4
    assert QLogUniform(16.0, 1024.0, q=16.0).steps == 63


def test_snap_rounds_half_up_in_value_units_and_clamps() -> None:
    q = QUniform(0.0, 10.0, q=2.5)
    assert [q.snap(x) for x in (1.24, 1.25, 3.74, 3.75, -7.0, 99.0)] == [0.0, 2.5, 2.5, 5.0, 0.0, 10.0]
    n = IntRange(1, 9, step=2)
    assert [n.snap(x) for x in (1.99, 2.0, 3.99, 4.0, -5, 1e9)] == [1, 3, 3, 5, 1, 9]
    log = IntRange(1, 1000, log_scale=True)
    assert [log.snap(x) for x in (1.49, 1.5, 999.4, 999.5, 0.001)] == [1, 2, 999, 1000, 1]
    ql = QLogUniform(16.0, 256.0, q=16.0, integer=True)
    assert [ql.snap(x) for x in (23.9, 24.0, 1.0, 300.0)] == [16, 32, 16, 256]
    assert Uniform(0.0, 1.0).snap(1.5) == 1.0 and Uniform(0.0, 1.0).snap(0.25) == 0.25
    assert LogUniform(1e-3, 1.0).snap(0.0) == 1e-3


@pytest.mark.parametrize("bad", [-1, 21, 2.0, True, "3", None])
def test_value_at_rejects_anything_but_an_index_of_the_range(bad) -> None:
    with pytest.raises(ValueError):
        QUniform(-1.0, 1.0, q=0.1).value_at(bad)


@pytest.mark.parametrize(
    ("p", "bad"),
    [
        (QUniform(0.0, 1.0, q=0.25), 0.3),
        (QUniform(0.0, 1.0, q=0.25), 1.25),
        (IntRange(1, 9, step=2), 4),
        (IntRange(1, 9), "3"),
        (QLogUniform(16.0, 64.0, q=16.0), 40.0),
    ],
)
def test_index_of_rejects_values_not_in_the_range(p, bad) -> None:
    with pytest.raises(ValueError, match="is not a value of"):
        p.index_of(bad)


def test_snap_rejects_nan() -> None:
    for p in (Uniform(0.0, 1.0), IntRange(1, 3)):
        with pytest.raises(ValueError, match="nan"):
            p.snap(math.nan)


def test_kind_flags() -> None:
    assert all(p.is_stepped and not p.is_fixed and not p.is_choice for p in STEPPED)
    assert not Uniform(0.0, 1.0).is_stepped and not LogUniform(1.0, 2.0).is_stepped
    assert Fixed(3).is_fixed and not Fixed(3).is_stepped and Choice((1, 2)).is_choice
    assert Fixed([1]).default_value == [1] and Uniform(0.0, 1.0).default_value is NO_DEFAULT
    assert Choice((1, 2), default=2).default_value == 2 and IntRange(1, 3, default=2).default_value == 2
    assert {c.kind for c in NUMERIC_KINDS.values() if c(1, 4).is_stepped} == {"quniform", "qloguniform", "int"}


@st.composite
def stepped_ranges(draw):
    kind = draw(st.sampled_from(["quniform", "qint", "qloguniform", "int", "intstep", "intlog"]))
    if kind == "quniform":
        q = draw(st.sampled_from([0.001, 0.05, 0.1, 0.3, 1.5]))
        lo, n = draw(st.integers(-1000, 1000)), draw(st.integers(1, 200))
        return QUniform(lo * q, (lo + n) * q, q=q)
    if kind == "qint":
        q, lo, n = draw(st.integers(1, 32)), draw(st.integers(-100, 100)), draw(st.integers(1, 100))
        return QUniform(float(lo * q), float((lo + n) * q), q=float(q), integer=True)
    if kind == "qloguniform":
        q = draw(st.sampled_from([0.1, 0.25, 1.0, 16.0]))
        lo, n = draw(st.integers(1, 100)), draw(st.integers(1, 200))
        return QLogUniform(lo * q, (lo + n) * q, q=q, integer=q == 1.0 or q == 16.0)
    lo = draw(st.integers(-1000, 1000))
    if kind == "intlog":
        lo = abs(lo) + 1
        return IntRange(lo, lo + draw(st.integers(1, 10**6)), log_scale=True)
    step = draw(st.integers(2, 9)) if kind == "intstep" else 1
    return IntRange(lo, lo + step * draw(st.integers(1, 300)), step=step)


@settings(max_examples=examples(300), deadline=None)
@given(stepped_ranges(), st.data())
def test_index_value_round_trip(p, data) -> None:
    k = data.draw(st.integers(0, p.steps))
    v = p.value_at(k)
    assert p.contains(v) and p.index_of(v) == k and p.snap(v) == v


@settings(max_examples=examples(300), deadline=None)
@given(stepped_ranges(), st.floats(allow_nan=False, allow_infinity=True))
def test_snap_never_leaves_the_bounds_and_lands_on_the_nearest_value(p, x: float) -> None:
    v = p.snap(x)
    assert p.low <= v <= p.high and p.contains(v)
    k = p.index_of(v)
    inside = min(max(x, p.low), p.high)
    neighbours = [p.value_at(j) for j in (k - 1, k + 1) if 0 <= j <= p.steps]
    assert all(abs(inside - v) <= abs(inside - w) + 1e-9 * max(1.0, abs(w)) for w in neighbours)


@settings(max_examples=examples(200), deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(1e-3, 1e6), st.floats(allow_nan=False))
def test_continuous_snap_clamps(low: float, width: float, x: float) -> None:
    p = Uniform(low, low + width)
    assert p.snap(x) == min(max(x, p.low), p.high)
