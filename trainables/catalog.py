"""Every built-in trainable, registered by spec; importing this module imports no torch."""

from __future__ import annotations

from .api import TrainableSpec
from .registry import register

register(
    TrainableSpec(
        name="analytic",
        entry="trainables.analytic:train",
        metrics=("loss", "epoch"),
        required=("function",),
        optional={
            "x": 0.0,
            "y": 0.0,
            "z": 0.0,
            "noise": 0.0,
            "sleep": 0.0,
            "choice": None,
            "optimizer": None,
            "bonus": 0.0,
            "fail_at_epoch": None,  # fault injection: raise TrialFailed from this epoch on
        },
        description="A noisy analytic function per epoch; no data, for tests and benchmarks.",
    )
)

# Keys every torch trainable accepts: how it computes, not what it learns. ``cpus``: torch
# threads (else OMP_NUM_THREADS, which Ray sets per trial, else the CPU affinity); ``device``:
# auto|cpu|cuda; ``precision``: auto (bf16 or fp16 autocast on CUDA, fp32 on CPU)|fp32|bf16|fp16.
RUNTIME = {"cpus": None, "device": "auto", "precision": "auto"}

# data: "digits" (scikit-learn's bundled 8x8 digits) or {idx: folder of MNIST-format files};
# the train/validation split uses ``seed``; ``subset`` keeps that many samples (tiny tests);
# ``ensemble`` trains N nets side by side (train_loss is then summed over the members) and
# ``vote`` (softmax|majority) combines them for val_accuracy / val_loss.
CONVNET = {
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
    **RUNTIME,
}
CONVNET_METRICS = ("val_accuracy", "val_loss", "train_loss", "samples_per_s", "epoch")

register(
    TrainableSpec(
        name="convnet",
        entry="trainables.convnet.trainable:train",
        metrics=CONVNET_METRICS,
        optional=CONVNET,
        description="network3-style ConvNet (conv-pool, FC, dropout, softmax) on digits or IDX.",
    )
)
register(
    TrainableSpec(
        name="convnet_tiny",
        entry="trainables.convnet.trainable:train_tiny",
        metrics=CONVNET_METRICS,
        optional={
            **CONVNET,
            "subset": 300,
            "conv_layers": 1,
            "filters": 4,
            "fc_width": 16,
            "batch_size": 32,
            "cpus": 1,
        },
        description="convnet on 300 digits with 4 filters: for fast tests.",
    )
)

# data: "synthetic" (generated once in the DSTL layout, shared by trials) or a DSTL folder;
# scenes are split by image with ``split_seed`` (None: the trial's seed) so that all trials
# see the same validation images; ``per_class``: train on one of ``classes`` only.
UNET = {
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
    **RUNTIME,
}
UNET_METRICS = ("val_jaccard", "val_loss", "train_loss", "samples_per_s", "epoch")

register(
    TrainableSpec(
        name="unet",
        entry="trainables.unet.trainable:train",
        metrics=UNET_METRICS,
        optional=UNET,
        description="U-Net on DSTL-layout multi-band scenes (synthetic by default); "
        "also reports val_jaccard_<class> per class.",
    )
)
register(
    TrainableSpec(
        name="unet_tiny",
        entry="trainables.unet.trainable:train_tiny",
        metrics=UNET_METRICS,
        optional={
            **UNET,
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
        },
        description="unet with 4 filters on four 64-pixel synthetic scenes: for fast tests.",
    )
)
