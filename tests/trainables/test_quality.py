"""Real training runs (slow): the convnet on digits, the U-Net on synthetic scenes."""

from __future__ import annotations

import time

import pytest

from trainables import create
from trainables.unet.trainable import background_baseline


@pytest.mark.slow
def test_convnet_reaches_97_percent_on_digits(reporter):
    config = {
        "conv_layers": 2,
        "filters": 32,
        "filter_growth": 2,
        "kernel": 3,
        "fc_layers": 1,
        "fc_width": 256,
        "dropout": 0.0,
        "l2": 1e-5,
        "batch_size": 64,
        "optimizer": {"name": "adam", "lr": 1e-3},
        "max_epochs": 12,
        "seed": 0,
    }
    start = time.perf_counter()
    create("convnet")(config, reporter)
    assert reporter.reports[-1]["val_accuracy"] >= 0.97
    assert time.perf_counter() - start < 300


@pytest.mark.slow
def test_unet_beats_the_all_background_baseline(reporter):
    config = {
        "depth": 3,
        "base_filters": 16,
        "scenes": 8,
        "scene_size": 128,
        "patch": 64,
        "samples_per_epoch": 256,
        "batch_size": 16,
        "lr": 3e-3,
        "max_epochs": 6,
    }
    create("unet")(config, reporter)
    baseline = background_baseline(config)["val_jaccard"]  # 0 when every class is present
    assert reporter.reports[-1]["val_jaccard"] > baseline + 0.3
