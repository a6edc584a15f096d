"""The ``unet`` family's spec: every config default, the tiny variant, the benchmark sizes (no torch)."""

from __future__ import annotations

from typing import Any

from ..api import TrainableSpec
from ..config import RUNTIME_DEFAULTS
from ..costs import COSTS
from ..registry import register

# data: "synthetic" (generated once in the DSTL layout, shared by trials) or a DSTL folder;
# scenes are split by image with ``split_seed`` (None: the trial's seed) so that all trials
# see the same validation images; ``per_class``: train on one of ``classes`` only.
DEFAULTS: dict[str, Any] = {
    "data": "synthetic",
    "scenes": 12,
    "scene_size": 128,
    "validation_fraction": 0.25,
    "split_seed": 0,
    "patch": 64,
    "bands": ["rgb", "m", "a", "p"],
    "indices": ["ndwi", "evi", "savi", "ccci"],
    "classes": ["buildings", "roads", "trees", "crops", "water"],
    "per_class": None,
    "augment": "d4",
    "samples_per_epoch": 512,
    "depth": 4,
    "base_filters": 32,
    "growth": 2.0,
    "kernel": 3,
    "convs_per_block": 2,
    "batch_norm": True,
    "activation": "relu",
    "dropout": 0.0,
    "upsampling": "transpose",
    "loss": "bce_jaccard",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "batch_size": 16,
    "optimizer": {"name": "adam"},
    **RUNTIME_DEFAULTS,
}

# a 2-level U-Net with 4 filters on four 64-pixel synthetic scenes, for tests
TINY: dict[str, Any] = {
    "scenes": 4,
    "scene_size": 64,
    "patch": 32,
    "depth": 2,
    "base_filters": 4,
    "convs_per_block": 1,
    "samples_per_epoch": 16,
    "batch_size": 8,
    "classes": ["buildings", "water"],
    "cpus": 1,
}

THROUGHPUT: dict[str, dict[str, Any]] = {
    "small": {
        "depth": 3,
        "base_filters": 8,
        "scenes": 4,
        "scene_size": 128,
        "patch": 64,
        "samples_per_epoch": 256,
        "batch_size": 16,
    },
    "larger": {
        "depth": 4,
        "base_filters": 16,
        "scenes": 6,
        "scene_size": 128,
        "patch": 64,
        "samples_per_epoch": 512,
        "batch_size": 16,
    },
}

SPEC = register(
    TrainableSpec(
        name="unet",
        task="trainables.unet.trainable:build_task",
        review="trainables.unet.review:render",
        preflight="trainables.unet.preflight:check",
        network="trainables.unet.trainable:build_network",
        metrics=("val_jaccard", "val_loss", "train_loss", "samples_per_s", "epoch", *COSTS),
        optional=DEFAULTS,
        description="U-Net on DSTL-layout multi-band scenes (synthetic by default); "
        "also reports val_jaccard_<class> per class.",
        failure_hint="lower the learning rate (lr) or use batch_norm",
        tiny=TINY,
        throughput=THROUGHPUT,
    )
)
TINY_SPEC = register(SPEC.tiny_variant("unet with 4 filters on four 64-pixel synthetic scenes: for fast tests."))
