"""The analytic trainable: values, curves, noise, resume."""

from __future__ import annotations

import math

import pytest

from trainables import create
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
