"""Scenes -> arrays: scene split and per-channel standardization (the random training crops and
the validation tiles are in ``.crops``, which reads no rasters)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .crops import RandomCrops as RandomCrops
from .crops import grid_tiles as grid_tiles
from .dstl import DSTLDataset, Scene, check_names
from .synthetic import synthetic_root


@dataclass
class SceneSplit:
    train: list[Scene]
    val: list[Scene]
    mean: np.ndarray  # per channel, from the training scenes
    std: np.ndarray
    channels: tuple[str, ...] = field(default=())


def dataset_root(data: str, *, scenes: int, scene_size: int) -> Path:
    """``"synthetic"`` -> a generated folder (shared between trials); else the folder."""
    if data == "synthetic":
        return synthetic_root(scenes=scenes, size=scene_size, seed=0)
    return Path(data).expanduser()


def load_scenes(
    root: str | Path,
    *,
    bands: Sequence[str],
    indices: Sequence[str],
    classes: Sequence[str],
    validation_fraction: float,
    split_seed: int,
) -> SceneSplit:
    """Decode (or take from the cache) every labelled scene and split them by image.

    Every scene of both sets is held in memory (the training crops are gathered on the device):
    channels x H x W float32 and classes x H x W uint8 per scene, plus, while a scene is decoded,
    one window of its bands (``dstl.WINDOW_ROWS`` rows). The channel statistics are accumulated
    scene by scene, so the training set is never copied into one array."""
    check_names(bands, indices, classes)
    dataset = DSTLDataset(root)
    train_ids, val_ids = dataset.split(validation_fraction, split_seed)
    val = [dataset.scene(image_id, bands, indices, classes) for image_id in val_ids]
    train = [dataset.scene(image_id, bands, indices, classes) for image_id in train_ids]
    moments = ChannelMoments()
    for scene in train:
        moments.add(scene.image)
    std = moments.std
    std[std < 1e-6] = 1.0
    return SceneSplit(train, val, moments.mean, std, train[0].channels)


class ChannelMoments:
    """Per-channel mean and (population) standard deviation over images added one at a time
    (Chan et al.'s pairwise update, in float64)."""

    def __init__(self) -> None:
        self.count = 0
        self._mean = np.zeros(0)
        self._m2 = np.zeros(0)  # sum of squared deviations from the mean

    def add(self, image: np.ndarray) -> None:
        """Add a (channels, H, W) image; one channel at a time is converted to float64."""
        n = image[0].size
        mean = np.array([channel.mean(dtype=np.float64) for channel in image])
        m2 = np.array([channel.var(dtype=np.float64) * n for channel in image])
        if self.count == 0:
            self.count, self._mean, self._m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self._mean
        self._mean = self._mean + delta * n / total
        self._m2 = self._m2 + m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def mean(self) -> np.ndarray:
        return self._mean.astype(np.float32)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self._m2 / max(self.count, 1)).astype(np.float32)


def standardized(scenes: Sequence[Scene], mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.stack([(s.image - mean[:, None, None]) / std[:, None, None] for s in scenes])
