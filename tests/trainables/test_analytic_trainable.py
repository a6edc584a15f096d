"""The analytic trainable: values, curves, noise, resume."""

from __future__ import annotations

import itertools
import math

import pytest

from trainables import TrainableConfigError, create
from trainables.analytic import branin, quadratic, value


def test_quadratic_minimum_and_bonuses():
    assert quadratic(0.3, -0.2, 0.0) == 0.0
    assert value({"function": "quadratic", "x": 0.3, "y": -0.2, "choice": "b"}) == pytest.approx(-0.1)
    sgd = {"name": "sgd", "momentum": 0.5}
    assert value({"function": "quadratic", "x": 0.3, "y": -0.2, "optimizer": sgd}) == pytest.approx(0.16)
    assert value({"function": "quadratic", "x": 0.3, "y": -0.2, "optimizer": {"name": "adam"}}) == 0


@pytest.mark.parametrize("point", [(-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)])
def test_branin_minima(point):
    assert branin(*point) == pytest.approx(0.397887, abs=1e-5)


def test_loss_decreases_towards_the_value(reporter):
    create("analytic")({"function": "branin", "x": 1.0, "y": 2.0, "max_epochs": 5}, reporter)
    losses = [r["loss"] for r in reporter.reports]
    assert reporter.epochs == [1, 2, 3, 4, 5]
    assert losses == sorted(losses, reverse=True)
    assert losses[-1] == pytest.approx(branin(1.0, 2.0) + 1 / 5)


def test_noise_is_seeded(make_reporter):
    runs = []
    for seed in (1, 1, 2):
        rep = make_reporter()
        create("analytic")({"function": "quadratic", "noise": 0.5, "seed": seed, "max_epochs": 3}, rep)
        runs.append([r["loss"] for r in rep.reports])
    assert runs[0] == runs[1] != runs[2]


def test_resume_continues_the_epoch_count(full_and_resumed):
    config = {"function": "quadratic", "x": 0.5, "noise": 0.1, "max_epochs": 5}
    full, resumed = full_and_resumed(create("analytic"), config, stop=2)
    assert resumed.epochs == [3, 4, 5]
    assert [r["loss"] for r in resumed.reports] == [r["loss"] for r in full.reports[2:]]


def test_two_objective_functions_report_f1_and_f2(reporter) -> None:
    from trainables.analytic import branch_front, branch_objectives, zdt1

    create("analytic")({"function": "zdt1", "x": 0.25, "y": 0.0, "z": 0.0, "max_epochs": 2}, reporter)
    first, last = reporter.reports
    assert last["f1"] == pytest.approx(0.25 + 0.5) and last["f2"] == pytest.approx(0.5 + 0.5)  # 1 - sqrt(0.25)
    assert first["loss"] == first["f1"] and first["f2"] > last["f2"]
    assert zdt1(0.25, 1.0, 1.0)[1] > 8  # away from the front (g = 10)
    # the conditional problem's front takes option a below f1 = 0.3 and option b from there on
    assert branch_objectives({"kind": "a", "t": 0.2, "s": 0.0}) == (0.2, 0.8)
    assert branch_objectives({"kind": "b", "t": 0.0, "s": 0.0, "d": 3}) == (0.3, 0.6)
    front = branch_front(11)
    assert front[0] == (0.0, 1.0) and front[-1] == pytest.approx((1.0, 0.0))
    assert all(a[0] < b[0] and a[1] > b[1] for a, b in itertools.pairwise(front))


def test_the_conditional_problem_names_a_bad_branch(reporter) -> None:
    with pytest.raises(TrainableConfigError, match="branch: expected"):
        create("analytic")({"function": "branches", "branch": {"kind": "b", "t": 0.5}}, reporter)
