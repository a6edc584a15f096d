"""Arrays in memory -> one trial's ``Task``: random training crops, validation tiles, U-Net, optimizer,
loss and Jaccard evaluator.

Torch and numpy only: no raster reading, so the trial's task (what the shared loop trains) can be built
from arrays made in memory where rasterio is not installed (``bench.gpu_packing`` on a GPU machine).
``trainable.build_task`` reads the scenes and calls ``task_from_arrays``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..config import Config, optimizer_settings
from ..loop import Runtime, Task, TensorBatches, make_optimizer
from .crops import RandomCrops, grid_tiles
from .losses import LOSSES, JaccardEvaluator
from .model import MAX_DEPTH, UNet, UNetShape, size_error


def checked_patch(cfg: Config) -> int:
    """The config's patch size, checked against its depth, with the other settings read before any data
    (augment, loss, optimizer): a ``TrainableConfigError`` names the key."""
    patch = cfg.integer("patch", low=2)
    message = size_error(patch, cfg.integer("depth", low=1, high=MAX_DEPTH))
    if message:
        raise cfg.error("patch", message)
    cfg.choice("augment", ("d4", "none"))
    cfg.choice("loss", LOSSES)
    optimizer_settings(cfg)
    return patch


def task_from_arrays(
    cfg: Config,
    runtime: Runtime,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    classes: Sequence[str],
    meta: Mapping[str, Any] | None = None,
) -> Task:
    """The trial's task from standardized scenes (N, channels, H, W) float32 and their masks
    (N, classes, H, W) uint8: the scenes go to the device once, training batches are random crops of
    ``patch`` (D4 when ``augment`` is ``d4``), validation is the grid of ``patch`` tiles of ``val_x``."""
    patch = checked_patch(cfg)
    if min(train_x.shape[-2:]) < patch:
        raise cfg.error("patch", f"patch {patch} is larger than the scenes ({train_x.shape[-2]}x{train_x.shape[-1]})")
    augment = cfg.choice("augment", ("d4", "none")) == "d4"
    loss = LOSSES[cfg.choice("loss", LOSSES)]
    opt = optimizer_settings(cfg)
    val_tiles, val_masks = grid_tiles(val_x, val_y, patch)
    batch_size = cfg.integer("batch_size", low=1)
    train = RandomCrops(
        runtime.tensor(train_x),
        runtime.tensor(train_y),
        patch,
        batch_size,
        cfg.integer("samples_per_epoch", low=1),
        augment,
    )
    val = TensorBatches(runtime.tensor(val_tiles), runtime.tensor(val_masks), batch_size)
    shape = UNetShape.from_config(cfg, in_channels=train_x.shape[1], classes=len(classes))
    model = runtime.prepare(UNet(shape))
    optimizer = make_optimizer(
        model.parameters(),
        opt,
        lr=cfg.number("lr", low=0.0),
        weight_decay=cfg.number("weight_decay", low=0.0),
        device=runtime.device,
    )
    classes = list(classes)
    return Task(
        model,
        optimizer,
        loss,
        train,
        val,
        JaccardEvaluator(classes, loss),
        name=cfg.trainable,
        meta=dict(meta or {}),
        prediction_batch=batch_size,
    )
