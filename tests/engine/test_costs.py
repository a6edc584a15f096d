"""Costs a carried trial never reported, computed from its configuration without training (``engine.costs``): a v1
study of one metric carried into a v2 that adds ``latency_ms`` (an objective) and a ``params`` constraint."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.engine import costs
from orchestrator.engine.searchers import searcher_class
from orchestrator.spaces import parse_version
from orchestrator.spaces.carry import carry
from orchestrator.spaces.trials import RecordedTrial
from trainables.costs import computable
from trainables.measure import network_costs

V1 = """\
study: tiny
version: 1
trainable: convnet_tiny
metric: {name: val_accuracy, mode: max}
schedule: {scheduler: fifo, max_epochs: 2}
search: {algorithm: tpe, startup_trials: 3}
params:
  filters: {choice: [2, 4, 8]}
  fc_width: {choice: [8, 16]}
"""
V2 = (
    V1.replace("version: 1", "version: 2\nparent: 1")
    .replace(
        "metric: {name: val_accuracy, mode: max}",
        "objectives: [{name: val_accuracy, mode: max}, {name: latency_ms, mode: min}]\n"
        "constraints: {params: {max: 1500}}",
    )
    .replace(
        "  fc_width: {choice: [8, 16]}", "  fc_width: {choice: [8, 16]}\n  dropout: {uniform: [0.0, 0.5], default: 0.0}"
    )
)


def v1_trials() -> list[RecordedTrial]:
    """Trials of v1 as the store holds them: val_accuracy only, as a version without costs reported them (two share
    a configuration)."""
    configs = [{"filters": f, "fc_width": w} for f in (2, 4, 8) for w in (8, 16)] + [{"filters": 4, "fc_width": 8}]
    return [RecordedTrial(c, 0.5 + 0.01 * i, version=1, run_id=f"r{i}") for i, c in enumerate(configs)]


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(costs, "CACHE", {})


def no_training(*_: Any, **__: Any) -> None:
    raise AssertionError("a carried trial's costs were computed by training")


def test_a_v1_study_carried_into_a_v2_with_latency_gets_its_costs_without_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    v2 = parse_version(V2)
    report = carry(v1_trials(), v2, computable(v2.trainable))
    assert len(report.carried) == 7 and report.to_compute == {"latency_ms": 7, "params": 7}
    monkeypatch.setattr("trainables.loop.fit", no_training)
    monkeypatch.setattr("trainables.loop.train_epoch", no_training)
    lines: list[str] = []
    seconds = costs.fill_costs(report, v2, lines.append)
    assert seconds > 0 and lines == [
        f"computed latency_ms, params of 6 configurations (7 carried trials) in {seconds:.1f}s without training"
    ]
    for values, _, _, outcome in report.carried:
        assert not outcome.missing and 0 < outcome.values["latency_ms"] < 1000
        config = {**values, "max_epochs": 2, "seed": 0}
        assert outcome.values["params"] == network_costs("convnet_tiny", config)["params"]
        assert values["dropout"] == 0.0  # added in v2 with its default: the network v2 would build
    # the constraint on params is known now: the large networks break it
    vectors = [outcome.vector(v2) for *_, outcome in report.carried]
    assert any(v[-1] > 0 for v in vectors) and any(v[-1] == 0 for v in vectors)
    searcher = searcher_class("tpe")(v2, report.carried, seed=0)
    assert (
        searcher.n_scored == 7 and v2.params.contains({k: searcher.suggest("t")[k] for k in v2.params.params}) is None
    )


def test_costs_are_computed_once_per_configuration_and_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    v2 = parse_version(V2)
    measured: list[int] = []

    def counting(trainable: str, configs: list[dict[str, Any]], names: tuple[str, ...], version: Any) -> list[Any]:
        measured.append(len(configs))
        return [network_costs(trainable, config, names) for config in configs]

    monkeypatch.setattr(costs, "_default_measure", lambda: counting)
    costs.fill_costs(carry(v1_trials(), v2, computable(v2.trainable)), v2, lambda _: None)
    costs.fill_costs(carry(v1_trials(), v2, computable(v2.trainable)), v2, lambda _: None)  # a resume: all cached
    assert measured == [6]


def test_a_configuration_whose_costs_cannot_be_computed_drops_its_trials() -> None:
    v2 = parse_version(
        V2.replace(
            "filters: {choice: [2, 4, 8]}", "filters: {choice: [2, 4, 8]}\n  conv_layers: {int: [1, 9], default: 1}"
        )
    )
    trials = [*v1_trials()[:2], RecordedTrial({"filters": 2, "fc_width": 8, "conv_layers": 9}, 0.4, version=1)]
    report = carry(trials, v2, computable(v2.trainable))
    costs.fill_costs(report, v2, lambda _: None)
    assert len(report.carried) == 2 and sum(report.dropped.values()) == 1
    (reason,) = report.dropped
    assert reason.startswith("costs not computed (") and "conv_layers" in reason


@pytest.mark.slow
def test_in_a_ray_session_costs_are_measured_in_tasks_with_the_trials_resources(local_ray: None) -> None:
    v2 = parse_version(V2)
    report = carry(v1_trials(), v2, computable(v2.trainable))
    costs.fill_costs(report, v2, lambda _: None)
    assert all(not outcome.missing for *_, outcome in report.carried)
