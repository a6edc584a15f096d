"""The ``convnet`` family's spec: every config default, the tiny variant, the benchmark sizes (no torch)."""

from __future__ import annotations

from typing import Any

from ..api import TrainableSpec
from ..config import RUNTIME_DEFAULTS
from ..costs import COSTS
from ..registry import register

# data: "digits" (scikit-learn's bundled 8x8 digits) or {idx: folder of MNIST-format files};
# the train/validation split uses ``seed``; ``subset`` keeps that many samples (tiny tests);
# ``ensemble`` trains N nets side by side (train_loss is then summed over the members) and
# ``vote`` (softmax|majority) combines them for val_accuracy / val_loss.
DEFAULTS: dict[str, Any] = {
    "data": "digits",
    "validation_fraction": 0.2,
    "subset": None,
    "conv_layers": 2,
    "filters": 20,
    "filter_growth": 2,
    "kernel": 3,
    "activation": "relu",
    "pooling": "max",
    "fc_layers": 1,
    "fc_width": 128,
    "dropout": 0.0,
    "l2": 1e-5,
    "batch_size": 64,
    "expand_shifts": False,
    "optimizer": {"name": "adam", "lr": 1e-3},
    "ensemble": 1,
    "vote": "softmax",
    **RUNTIME_DEFAULTS,
}

# 300 digits and 4 filters: a trial of about a second, for tests
TINY: dict[str, Any] = {"subset": 300, "conv_layers": 1, "filters": 4, "fc_width": 16, "batch_size": 32, "cpus": 1}

# Rounds of bench.train_throughput are one epoch or more; ``expand_shifts`` adds the 1-pixel-shifted copies
# of the digits (5x the samples).
THROUGHPUT: dict[str, dict[str, Any]] = {
    "small": {"filters": 20, "fc_width": 128, "batch_size": 64, "expand_shifts": True},
    "larger": {"filters": 32, "fc_width": 256, "batch_size": 128, "expand_shifts": True},
}

SPEC = register(
    TrainableSpec(
        name="convnet",
        task="trainables.convnet.trainable:build_task",
        review="trainables.convnet.review:render",
        preflight="trainables.convnet.preflight:check",
        network="trainables.convnet.trainable:build_network",
        metrics=("val_accuracy", "val_loss", "train_loss", "samples_per_s", "epoch", *COSTS),
        optional=DEFAULTS,
        description="network3-style ConvNet (conv-pool, FC, dropout, softmax) on digits or IDX.",
        failure_hint="lower the learning rate (optimizer.lr) or raise l2",
        tiny=TINY,
        throughput=THROUGHPUT,
    )
)
TINY_SPEC = register(SPEC.tiny_variant("convnet on 300 digits with 4 filters: for fast tests."))
