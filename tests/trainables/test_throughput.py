"""The throughput probe runs, compares like with like, and takes its families from the registry."""

from __future__ import annotations

import pytest

import trainables
from bench.train_throughput import cases
from trainables.throughput import benchmarked, loop_trainables, main, measure_throughput


@pytest.mark.slow
@pytest.mark.parametrize("name", ["convnet_tiny", "unet_tiny"])
def test_measure_throughput_reports_both_loops(name):
    result = measure_throughput(name, {"max_epochs": 1}, rounds=2, warmup=1, min_round_s=0.0)
    assert result.loop_samples_per_s > 0 and result.bare_samples_per_s > 0
    assert result.ratio == pytest.approx(result.loop_samples_per_s / result.bare_samples_per_s)
    assert result.device == "cpu" or result.device.startswith("cuda")
    assert result.epochs_per_round == 1 and "samples/s" in result.summary()


@pytest.mark.slow
def test_a_round_lasts_at_least_min_round_s():
    result = measure_throughput("convnet_tiny", {"subset": 100}, rounds=1, warmup=0, min_round_s=0.2)
    assert result.epochs_per_round > 1  # a tiny epoch lasts milliseconds


@pytest.mark.slow
def test_command_line(capsys):
    main(["convnet_tiny", '{"subset": 100}', "--rounds", "1", "--warmup", "0", "--min-round-s", "0", "--json"])
    assert '"ratio"' in capsys.readouterr().out


def test_the_families_come_from_the_registry():
    assert {spec.name for spec in benchmarked()} == {"convnet", "unet"}
    assert set(loop_trainables()) == {name for name in trainables.names() if name != "analytic"}
    quick = cases(quick=True, cuda=False)
    assert [(label, name) for label, name, _ in quick] == [
        ("convnet small fp32", "convnet"),
        ("unet small fp32", "unet"),
    ]
    for _, name, config in quick:
        assert config == {**trainables.get(name).throughput["small"], "precision": "fp32"}
    full = cases(quick=False, cuda=True)
    assert len(full) == 2 * sum(len(spec.throughput) for spec in benchmarked())
