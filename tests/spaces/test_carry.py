"""Carrying earlier trials into a new version: defaults fill added parameters, options found by ``select``."""

from __future__ import annotations

from orchestrator.spaces import parse_version
from orchestrator.spaces.carry import NOT_A_CHOICE, OUTSIDE, carry
from orchestrator.spaces.trials import RecordedTrial
from tests.spacefiles import MINIMAL

V2 = parse_version(
    MINIMAL.replace("version: 1", "version: 2\nparent: 1").replace(
        "  x: {uniform: [-1.0, 1.0]}\n",
        "  x: {uniform: [-1.0, 1.0]}\n  opt:\n    choice:\n      - {name: adam}\n"
        "      - {name: sgd, momentum: {uniform: [0.5, 0.99], default: 0.9}}\n",
    )
)


def trial(config: dict, value: float = 1.0) -> RecordedTrial:
    return RecordedTrial(config=config, value=value, version=1)


def test_options_are_found_despite_added_and_removed_keys() -> None:
    report = carry(
        [
            trial({"x": 0.1, "opt": {"name": "sgd"}}),  # momentum added since: its default
            trial({"x": 0.2, "opt": {"name": "adam", "beta": 0.9}}),  # beta removed since
            trial({"x": 0.3, "opt": {"name": "sgd", "momentum": 0.6}}),
        ],
        V2,
    )
    assert [c for c, _ in report.carried] == [
        {"x": 0.1, "opt": {"name": "sgd", "momentum": 0.9}},
        {"x": 0.2, "opt": {"name": "adam"}},
        {"x": 0.3, "opt": {"name": "sgd", "momentum": 0.6}},
    ]
    assert report.defaulted == {"opt.momentum": 1} and report.removed == {"opt.beta": 1}


def test_trials_that_fit_no_option_or_range_are_dropped_by_reason() -> None:
    report = carry(
        [
            trial({"x": 0.1, "opt": {"name": "rmsprop"}}),
            trial({"x": 0.1, "opt": "adam"}),
            trial({"x": 0.1, "opt": {"name": "sgd", "momentum": 0.1}}),
            trial({"x": 5.0, "opt": {"name": "adam"}}),
        ],
        V2,
    )
    assert not report.carried
    assert report.dropped == {f"opt {NOT_A_CHOICE}": 2, f"opt.momentum {OUTSIDE}": 1, f"x {OUTSIDE}": 1}
