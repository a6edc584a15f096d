"""Carry keeps every objective: a version of several objectives or with constraints carries each trial's values
(``spaces.carry.Outcome``), a cost it never reported is left to compute, and one metric's carry is unchanged."""

from __future__ import annotations

import math

import pytest

from orchestrator.spaces import parse_version
from orchestrator.spaces.carry import Outcome, carry
from orchestrator.spaces.trials import RecordedTrial
from orchestrator.spaces.version import Constraint
from orchestrator.tracking.mlflow_store import TrialRow

HEAD = "study: s\nversion: 2\nparent: 1\ntrainable: convnet\n"
PARAMS = "schedule: {scheduler: fifo, max_epochs: 3}\nparams:\n  filters: {int: [4, 64]}\n"
SINGLE = "metric: {name: val_accuracy, mode: max}\n"
TWO = "objectives: [{name: val_accuracy, mode: max}, {name: params, mode: min}]\n"
LATENCY = "constraints: {latency_ms: {max: 5}}\n"


def version(text: str):
    return parse_version(HEAD + text + PARAMS)


def trial(accuracy: float | None, **values: float | None) -> RecordedTrial:
    return RecordedTrial({"filters": 16}, accuracy, {1: 0.5, 3: accuracy or 0.0}, values=values, version=1)


def test_one_metric_carries_as_before() -> None:
    report = carry([trial(0.9, params=1000.0)], version(SINGLE))
    assert report.carried == [({"filters": 16}, -0.9)]  # FIFO: no history, no outcome
    assert not report.to_compute


def test_every_objective_is_carried_with_its_value_and_history() -> None:
    v = version(TWO)
    history = {1: 0.5, 2: 0.8, 3: 0.9}
    params = {"values": {"params": 1200.0}, "histories": {"params": {1: 1200.0}}}
    recorded = RecordedTrial({"filters": 16}, 0.9, history, **params)
    ((values, loss, carried_history, outcome),) = carry([recorded], v).carried
    assert values == {"filters": 16} and loss == -0.9 and carried_history == {}  # FIFO: final values only
    assert outcome.values == {"val_accuracy": 0.9, "params": 1200.0}
    assert outcome.vector(v) == (-0.9, 1200.0, 0.0)
    assert outcome.histories == {"val_accuracy": history, "params": {1: 1200.0}}
    # by epoch: params at epochs 2 and 3 take its final value (it does not change while a trial trains)
    assert outcome.vectors_by_epoch(v) == {1: (-0.5, 1200.0, 0.0), 2: (-0.8, 1200.0, 0.0), 3: (-0.9, 1200.0, 0.0)}


def test_an_objective_never_reported_drops_the_trial_unless_it_can_be_computed() -> None:
    v = version(TWO)
    dropped = carry([trial(0.9), trial(0.8, params=float("nan"))], v)
    assert not dropped.carried and dropped.dropped == {"no finite params reported": 2}
    computed = carry([trial(0.9), trial(0.8, params=float("nan")), trial(0.7, params=10.0)], v, computable={"params"})
    assert len(computed.carried) == 2 and computed.to_compute == {"params": 1}  # a NaN is no value to replace
    assert computed.dropped == {"no finite params reported": 1}
    outcome = computed.carried[0][3]
    assert outcome.missing == ("params",)
    with pytest.raises(ValueError, match="compute its costs first"):
        outcome.vector(v)
    assert outcome.filled({"params": 99.0, "macs": 5.0}).vector(v) == (-0.9, 99.0, 0.0)
    assert "params to compute from the configuration (no training): 1" in computed.summary()
    assert computed.as_dict()["to_compute"] == {"params": 1}


def test_the_first_objective_decides_as_one_metric_does() -> None:
    """``space diff`` counts the first objective's rule first, as it always did."""
    report = carry([trial(None, params=5.0), trial(float("nan"), params=5.0)], version(TWO))
    assert report.dropped == {"no finite val_accuracy reported": 2}


def test_constraints_carry_their_values_and_a_missing_one_breaks_its_constraint() -> None:
    v = version(SINGLE + LATENCY)
    assert v.constraints == (Constraint("latency_ms", max=5.0),)
    report = carry([trial(0.9, latency_ms=4.0), trial(0.8, latency_ms=7.5), trial(0.7)], v)
    vectors = [t[3].vector(v) for t in report.carried]
    assert vectors == [(-0.9, 0.0), (-0.8, 0.5), (-0.7, math.inf)]  # 7.5 breaks max 5 by half of it
    computed = carry([trial(0.7)], v, computable={"latency_ms"})
    assert computed.carried[0][3].missing == ("latency_ms",) and computed.to_compute == {"latency_ms": 1}


def test_the_violation_adds_each_constraint_in_units_of_its_bound() -> None:
    v = version(SINGLE + "constraints: {latency_ms: {max: 5}, params: {max: 2.0e+6}, macs: {min: 10, max: 20}}\n")
    assert v.violation({"latency_ms": 4.0, "params": 1.0e6, "macs": 15.0}) == 0.0
    assert v.violation({"latency_ms": 10.0, "params": 3.0e6, "macs": 5.0}) == pytest.approx(1.0 + 0.5 + 0.5)
    assert v.violation({"latency_ms": None, "params": 1.0, "macs": 15.0}) == math.inf


def test_a_trial_row_hands_every_named_metric_to_carry() -> None:
    row = TrialRow(
        run_id="r",
        study="s",
        version=1,
        space_hash="",
        trial_id="t",
        status="FINISHED",
        config={"filters": 16},
        metrics={"val_accuracy": 0.9, "params": 1200.0, "macs": 10.0},
        start_time=None,
        end_time=None,
        parent_run_id="p",
        history={"val_accuracy": {1: 0.5, 3: 0.9}},
    )
    prior = row.prior("val_accuracy", ("val_accuracy", "params", "latency_ms"))
    assert prior.value == 0.9 and prior.history == {1: 0.5, 3: 0.9}
    assert prior.values == {"params": 1200.0, "latency_ms": None} and prior.histories == {}
    assert row.prior("val_accuracy").values == {}  # one metric: as before
    (carried,) = carry([prior], version(TWO + LATENCY), computable={"latency_ms"}).carried
    assert carried[3].values == {"val_accuracy": 0.9, "params": 1200.0, "latency_ms": None}
    assert isinstance(carried[3], Outcome)


def test_the_history_tag_keeps_every_objective_by_epoch() -> None:
    """The trial's ``METRIC_HISTORY`` tag holds the other objectives at the same epochs, so a carried trial of an
    ASHA search counts with every objective at the rungs it reached; a tag of one metric reads as before."""
    from orchestrator.tracking.mlflow_store import history_tag, read_history_tag

    accuracy, loss = {1: 0.5, 2: 0.7, 3: 0.9}, {1: 1.2, 3: 0.4}
    text = history_tag("val_accuracy", accuracy, {"val_loss": loss})
    assert text is not None and read_history_tag(text) == {"val_accuracy": accuracy, "val_loss": loss}
    assert read_history_tag(history_tag("val_accuracy", accuracy)) == {"val_accuracy": accuracy}
    long = {epoch: 0.123456789 * epoch for epoch in range(1, 400)}  # too long with both: the first metric is kept
    assert read_history_tag(history_tag("val_accuracy", long, {"val_loss": long})) == {
        "val_accuracy": {e: float(f"{v:.7g}") for e, v in long.items()}
    }
    v = parse_version(HEAD + "objectives: [{name: val_accuracy, mode: max}, {name: val_loss, mode: min}]\n" + PARAMS)
    row_history = read_history_tag(text)
    recorded = RecordedTrial(
        {"filters": 16}, 0.9, row_history["val_accuracy"], values={"val_loss": 0.4}, histories={"val_loss": loss}
    )
    (carried,) = carry([recorded], v).carried
    assert carried[3].vectors_by_epoch(v) == {1: (-0.5, 1.2, 0.0), 2: (-0.7, 0.4, 0.0), 3: (-0.9, 0.4, 0.0)}
