"""``objectives:`` and ``constraints:`` in a space file: parsed, located when wrong, written back, hashed."""

from __future__ import annotations

import math

import pytest

from orchestrator.spaces import SpaceError, dump, parse_version
from orchestrator.spaces.version import Constraint, Metric
from tests.spacefiles import space_doc

HEAD = space_doc("mo", metric=None, params=None, fixed=None)  # each case gives its metric or objectives
PARAMS = "fixed: {function: quadratic}\nparams:\n  x: {uniform: [-1.0, 1.0]}\n"
TWO = "objectives:\n  - {name: loss, mode: min}\n  - {name: epoch, mode: max}\n"


def parse(text: str):
    return parse_version(HEAD + text + PARAMS, "mo/v1.yaml")


def test_objectives_and_constraints_parse_and_the_metric_is_the_first_objective() -> None:
    version = parse(TWO + "constraints:\n  loss: {max: 2.5}\n  epoch: {min: 1, max: 9}\n")
    assert version.goals == (Metric("loss", "min"), Metric("epoch", "max")) and version.multi_objective
    assert version.metric == Metric("loss", "min")
    assert version.constraints == (Constraint("loss", max=2.5), Constraint("epoch", max=9, min=1))
    assert version.reported == ("loss", "epoch")
    assert parse_version(dump(version), "mo/v1.yaml") == version  # written back as it was read


def test_a_single_metric_file_hashes_as_before_objectives_existed() -> None:
    single = parse("metric: {name: loss, mode: min}\n")
    assert single.goals == (Metric("loss", "min"),) and not single.multi_objective
    assert "objectives" not in single.canonical() and "constraints" not in single.canonical()
    assert single.content_hash != parse(TWO).content_hash
    constrained = parse("metric: {name: loss, mode: min}\nconstraints:\n  loss: {max: 3}\n")
    assert constrained.content_hash != single.content_hash


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("metric: {name: loss, mode: min}\n" + TWO, "objectives", "give either metric (one) or objectives"),
        ("", "", "missing required key 'metric' (or 'objectives', for several)"),
        ("objectives:\n  - {name: loss, mode: min}\n", "objectives", "a list of 2 to 3 objectives"),
        (
            "objectives: [{name: a, mode: min}, {name: b, mode: min}, {name: c, mode: min}, {name: d, mode: min}]\n",
            "objectives",
            "a list of 2 to 3 objectives",
        ),
        (
            "objectives:\n  - {name: loss, mode: min}\n  - {name: loss, mode: max}\n",
            "objectives[1].name",
            "objective 'loss' appears twice",
        ),
        (
            "objectives:\n  - {name: loss, mode: min}\n  - {name: epoch, mode: maximum}\n",
            "objectives[1].mode",
            "expected min or max, got 'maximum'; did you mean 'max'?",
        ),
        (TWO + "constraints:\n  loss: {max: 1, min: 2}\n", "constraints.loss", "min <= max must hold"),
        (TWO + "constraints:\n  loss: {maximum: 1}\n", "constraints.loss.maximum", "unknown key 'maximum'"),
        (TWO + "constraints:\n  loss: {}\n", "constraints.loss", "a constraint needs max, min or both"),
    ],
    ids=[
        "both",
        "neither",
        "one-objective",
        "four-objectives",
        "twice",
        "bad-mode",
        "min-above-max",
        "unknown-bound",
        "no-bound",
    ],
)
def test_every_mistake_is_located(text: str, where: str, message: str) -> None:
    with pytest.raises(SpaceError) as raised:
        parse(text)
    found = [p for p in raised.value.problems if p.path == where and message in p.message]
    assert found, [str(p) for p in raised.value.problems]
    assert all(p.file == "mo/v1.yaml" for p in raised.value.problems)


def test_a_constraints_violation_is_how_far_outside_its_bounds() -> None:
    both = Constraint("latency_ms", max=5.0, min=1.0)
    assert both.violation(3.0) == 0.0 and both.violation(7.5) == 2.5 and both.violation(0.5) == 0.5
    assert math.isinf(both.violation(None)) and math.isinf(both.violation(math.nan))
    assert both.describe() == "latency_ms >= 1 and latency_ms <= 5"


def test_validate_names_an_objective_or_constraint_the_trainable_never_reports() -> None:
    from orchestrator.engine.checks import version_problems

    objectives = "objectives:\n  - {name: loss, mode: min}\n  - {name: latency_ms, mode: min}\n"
    version = parse(objectives + "constraints:\n  params: {max: 10}\n")
    problems = {p.path: p.message for p in version_problems(version)}
    assert "objective 'latency_ms' is never reported by trainable 'analytic'" in problems["objectives[1].name"]
    assert "constraint 'params' is never reported" in problems["constraints.params"]
