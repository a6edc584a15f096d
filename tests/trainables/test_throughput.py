"""The throughput probe runs and compares like with like; the quality runs are slow."""

from __future__ import annotations

import time

import pytest

from trainables import create
from trainables.throughput import main, measure_throughput


@pytest.mark.parametrize("name", ["convnet_tiny", "unet_tiny"])
def test_measure_throughput_reports_both_loops(name):
    result = measure_throughput(name, {"max_epochs": 1}, rounds=2, warmup=1)
    assert result.loop_samples_per_s > 0 and result.bare_samples_per_s > 0
    assert result.ratio == pytest.approx(result.loop_samples_per_s / result.bare_samples_per_s)
    assert result.device == "cpu" or result.device.startswith("cuda")
    assert "samples/s" in result.summary()


def test_command_line(capsys):
    main(["convnet_tiny", '{"subset": 100}', "--rounds", "1", "--warmup", "0", "--json"])
    assert '"ratio"' in capsys.readouterr().out


@pytest.mark.slow
def test_convnet_reaches_97_percent_on_digits(reporter):
    config = {"conv_layers": 2, "filters": 32, "filter_growth": 2, "kernel": 3, "fc_layers": 1,
              "fc_width": 256, "dropout": 0.0, "l2": 1e-5, "batch_size": 64,
              "optimizer": {"name": "adam", "lr": 1e-3}, "max_epochs": 12, "seed": 0}  # fmt: skip
    start = time.perf_counter()
    create("convnet")(config, reporter)
    assert reporter.reports[-1]["val_accuracy"] >= 0.97
    assert time.perf_counter() - start < 300


@pytest.mark.slow
def test_unet_beats_the_all_background_baseline(reporter):
    config = {"depth": 3, "base_filters": 16, "scenes": 8, "scene_size": 128, "patch": 64,
              "samples_per_epoch": 256, "batch_size": 16, "lr": 3e-3, "max_epochs": 6}  # fmt: skip
    create("unet")(config, reporter)
    # an all-background prediction scores 0 on every class present in the validation scenes
    assert reporter.reports[-1]["val_jaccard"] > 0.3
