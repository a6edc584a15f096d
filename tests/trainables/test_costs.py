"""Hardware costs per trial (``trainables.costs``, ``trainables.measure``): measured by the shared loop once, reported
with every epoch, the same from a network built without data, and without disturbing the training."""

from __future__ import annotations

import math

import pytest
import torch

import trainables
from trainables.costs import ALWAYS, COSTS, FROM_CONFIGURATION, LATENCIES, computable
from trainables.loop import measure_task, prepare, train_epoch
from trainables.measure import build_network, configurations_costs, count_params, network_costs

TINY = {"max_epochs": 2, "seed": 0}


def test_shared_loop_families_declare_the_costs_and_can_compute_them_from_a_configuration() -> None:
    for name in ("convnet", "unet", "convnet_tiny", "unet_tiny"):
        assert set(COSTS) <= set(trainables.get(name).metrics)
        assert computable(name) == FROM_CONFIGURATION
    assert computable("analytic") == () and not set(COSTS) & set(trainables.get("analytic").metrics)


def test_a_tiny_convnet_costs_what_torch_and_a_hand_count_say() -> None:
    task, runtime, _ = prepare("convnet_tiny", TINY)
    costs = measure_task(task, runtime, (*ALWAYS, *LATENCIES))
    assert costs["params"] == sum(p.numel() for p in task.model.parameters()) == count_params(task.model)
    # conv 3x3, 1 -> 4 channels on 8x8 ("same"), pool to 4x4, FC 64 -> 16 -> 10; torchinfo counts a bias as one
    conv = 8 * 8 * 4 * (3 * 3 * 1) + 8 * 8 * 4
    head = (4 * 4 * 4) * 16 + 16 + 16 * 10 + 10
    assert costs["macs"] == conv + head == 3770
    for name in LATENCIES:
        assert 0.0 < costs[name] < 1000.0 and math.isfinite(costs[name]), costs
    assert costs["latency_batch_ms"] > costs["latency_ms"]  # 32 samples against 1


@pytest.mark.parametrize("name", ["convnet_tiny", "unet_tiny"])
def test_a_network_built_without_data_costs_what_the_trial_measures(name: str) -> None:
    task, runtime, _ = prepare(name, TINY)
    measured = measure_task(task, runtime)
    network, _ = build_network(name, TINY)
    assert count_params(network.model) == measured["params"]
    assert network_costs(name, TINY) == measured  # params and macs
    assert network.prediction_batch == task.prediction_batch
    first = next(iter(task.val.epoch(torch.Generator())))[0]
    assert network.sample_shape == tuple(first.shape[1:])


def test_configurations_that_cannot_be_built_say_why() -> None:
    good, bad = dict(TINY), {**TINY, "conv_layers": 9}
    results = configurations_costs("convnet_tiny", [good, bad], ALWAYS)
    assert isinstance(results[0], dict) and results[0]["params"] > 0
    assert isinstance(results[1], str) and "conv_layers" in results[1]


@pytest.mark.slow
def test_measuring_leaves_the_training_as_it_was() -> None:
    """Eval mode and no random draw while measuring: with dropout, an epoch after measuring (latencies too) is the
    epoch without it, weight for weight, and the model is back in training mode."""
    config = {**TINY, "dropout": 0.5}
    measured, plain = prepare("convnet_tiny", config), prepare("convnet_tiny", config)
    torch.manual_seed(5)
    measure_task(measured[0], measured[1], (*ALWAYS, *LATENCIES))
    assert measured[0].model.training
    train_epoch(measured[0], measured[1], torch.Generator().manual_seed(3))
    torch.manual_seed(5)  # the state the measured one started its epoch from, if measuring drew nothing
    train_epoch(plain[0], plain[1], torch.Generator().manual_seed(3))
    for a, b in zip(measured[0].model.parameters(), plain[0].model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_every_report_carries_the_costs_and_the_latencies_when_asked(make_reporter) -> None:
    plain = make_reporter()
    trainables.create("convnet_tiny")(dict(TINY), plain)
    asked = make_reporter()
    asked.measure = LATENCIES
    trainables.create("convnet_tiny")(dict(TINY), asked)
    for report in plain.reports:
        assert {"params", "macs"} <= set(report) and not set(LATENCIES) & set(report)
    first, second = asked.reports
    assert set(LATENCIES) <= set(first) and all(first[k] == second[k] for k in (*ALWAYS, *LATENCIES))
    assert [r["val_accuracy"] for r in plain.reports] == [r["val_accuracy"] for r in asked.reports]
    assert ("gpu_memory_mb" in first) == torch.cuda.is_available()
