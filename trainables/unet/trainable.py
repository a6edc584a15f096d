"""The ``unet`` family on the shared loop: its ``build_task`` hook (spec: ``.spec``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import Config, resolve
from ..loop import Runtime, Task
from ..measure import Network
from .data import dataset_root, load_scenes, standardized
from .dstl import BANDS, CLASS_TYPES, DSTLError, channel_names
from .indices import INDICES
from .model import UNet, UNetShape
from .task import checked_patch, task_from_arrays


def chosen_classes(cfg: Config) -> list[str]:
    classes = cfg.string_list("classes", CLASS_TYPES)
    if not classes:
        raise cfg.error("classes", "needs at least one class")
    per_class = cfg["per_class"]
    if per_class is None:
        return classes
    if per_class not in classes:
        raise cfg.error("per_class", f"{per_class!r} is not one of classes {classes}")
    return [per_class]


def build_task(cfg: Config, runtime: Runtime) -> Task:
    """Scenes on the device, U-Net, optimizer, loss and Jaccard evaluator for one trial: the scenes are
    read (and split, standardized) here, the rest is ``task.task_from_arrays``."""
    patch = checked_patch(cfg)  # before the scenes are read
    bands = cfg.string_list("bands", BANDS)
    indices = cfg.string_list("indices", INDICES)
    classes = chosen_classes(cfg)
    data = cfg["data"]
    if not isinstance(data, str):
        raise cfg.error("data", f"expected 'synthetic' or a folder path, got {data!r}")
    split_seed = cfg.seed if cfg["split_seed"] is None else cfg.integer("split_seed")
    try:
        root = dataset_root(data, scenes=cfg.integer("scenes", low=2), scene_size=cfg.integer("scene_size", low=16))
        split = load_scenes(
            root,
            bands=bands,
            indices=indices,
            classes=classes,
            validation_fraction=cfg.number("validation_fraction", 0.01, 0.9),
            split_seed=split_seed,
        )
    except (DSTLError, OSError) as error:
        raise cfg.error("data", str(error)) from None
    train_x = standardized(split.train, split.mean, split.std)
    val_x = standardized(split.val, split.mean, split.std)
    train_y = np.stack([s.mask for s in split.train])
    val_y = np.stack([s.mask for s in split.val])
    meta = {
        "channels": list(split.channels),
        "classes": classes,
        "mean": split.mean.tolist(),
        "std": split.std.tolist(),
        "patch": patch,
        "train_images": [s.image_id for s in split.train],
        "val_images": [s.image_id for s in split.val],
    }
    return task_from_arrays(cfg, runtime, train_x, train_y, val_x, val_y, classes, meta)


def build_network(cfg: Config) -> Network:
    """The trial's U-Net without its scenes (``TrainableSpec.network``): its input has the channels of its bands and
    indices (``dstl.channel_names``), a sample is one ``patch`` tile, the prediction batch its ``batch_size`` (the
    validation tiles' batch)."""
    patch = checked_patch(cfg)
    channels = len(channel_names(cfg.string_list("bands", BANDS), cfg.string_list("indices", INDICES)))
    shape = UNetShape.from_config(cfg, in_channels=channels, classes=len(chosen_classes(cfg)))
    return Network(UNet(shape), (channels, patch, patch), cfg.integer("batch_size", low=1))


def background_baseline(config: dict[str, Any], name: str = "unet") -> dict[str, float]:
    """The validation metrics of predicting background everywhere (the floor to beat),
    on the same validation tiles a trial with ``config`` would use."""
    import torch

    cfg = resolve(name, config)
    runtime = Runtime(torch.device("cpu"))
    task = build_task(cfg, runtime)
    task.evaluator.reset()
    for _, y in task.val.epoch(torch.Generator()):
        task.evaluator.update(torch.full(y.shape, -20.0), y)
    return task.evaluator.compute()
