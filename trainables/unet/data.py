"""Scenes -> device tensors: scene split, per-channel standardization, random training
crops (with D4) and a fixed grid of validation tiles."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .augment import D4, d4
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


def grid_tiles(images: np.ndarray, masks: np.ndarray, patch: int):
    """Tiles of ``patch`` x ``patch`` covering every scene (the last row/column snapped to
    the edge, so they may overlap)."""
    _, _, h, w = images.shape
    if h < patch or w < patch:
        raise ValueError(f"scenes of {h}x{w} are smaller than the patch {patch}")
    ys = sorted({*range(0, h - patch + 1, patch), h - patch})
    xs = sorted({*range(0, w - patch + 1, patch), w - patch})
    x_tiles = [images[:, :, y : y + patch, x : x + patch] for y in ys for x in xs]
    m_tiles = [masks[:, :, y : y + patch, x : x + patch] for y in ys for x in xs]
    return np.concatenate(x_tiles), np.concatenate(m_tiles)


class RandomCrops:
    """An epoch of ``samples`` random ``patch`` crops from scenes held on the device.

    With ``augment`` each crop also gets one of the 8 D4 transforms. Crop and transform are
    one gather: the transform of a crop is a permutation of its pixel positions, so the
    D4-transformed coordinate grids (precomputed for the 8 transforms) index the scene
    directly; image and mask use the same index maps, hence the same transform.

    On CUDA several batches are gathered at once (fewer kernels per step; the caching allocator
    reuses the memory). On the CPU each batch is gathered on its own: a gather of several is a
    buffer the C allocator maps and page-faults afresh each time; for the benchmark's small U-Net
    the crops of an epoch took 0.12 s with 8 batches per gather, 0.03 s with one (epoch: 1.3 s).
    """

    CUDA_BATCHES_PER_GATHER = 8

    def __init__(self, images: Tensor, masks: Tensor, patch: int, batch_size: int, samples: int, augment: bool):
        h, w = images.shape[-2:]
        if h < patch or w < patch:
            raise ValueError(f"scenes of {h}x{w} are smaller than the patch {patch}")
        self.channels_last_out = images.is_contiguous(memory_format=torch.channels_last)
        # (N, H, W, C) storage: a gather then reads whole pixel vectors
        self.images = images.permute(0, 2, 3, 1).contiguous()
        self.masks = masks.permute(0, 2, 3, 1).contiguous()
        self.patch, self.batch_size, self.samples = patch, batch_size, samples
        self.augment = augment
        span = torch.arange(patch, device=images.device)
        grid = torch.stack(torch.meshgrid(span, span, indexing="ij"))  # (2, p, p): row, col
        ks = D4 if augment else (0,)
        maps = torch.stack([d4(grid, k) for k in ks])  # (K, 2, p, p) source positions
        self._rows, self._cols = maps[:, 0].contiguous(), maps[:, 1].contiguous()
        self.batches_per_gather = self.CUDA_BATCHES_PER_GATHER if images.is_cuda else 1

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        n, h, w, _ = self.images.shape
        p = self.patch
        which = torch.randint(0, n, (self.samples,), generator=generator)
        ys = torch.randint(0, h - p + 1, (self.samples,), generator=generator)
        xs = torch.randint(0, w - p + 1, (self.samples,), generator=generator)
        ks = torch.randint(0, len(self._rows), (self.samples,), generator=generator)
        # one H2D copy per epoch; one gather per batches_per_gather batches
        draws = torch.stack([which, ys, xs, ks]).to(self.images.device)
        step = self.batch_size * self.batches_per_gather
        for first in range(0, self.samples, step):
            x, y = self._crop(*draws[:, first : first + step])
            for start in range(0, len(x), self.batch_size):
                yield x[start : start + self.batch_size], y[start : start + self.batch_size]

    def _crop(self, which: Tensor, ys: Tensor, xs: Tensor, ks: Tensor) -> tuple[Tensor, Tensor]:
        _, h, w, c = self.images.shape
        b, p = len(which), self.patch
        rows = ys[:, None, None] + self._rows[ks]  # (B, p, p)
        cols = xs[:, None, None] + self._cols[ks]
        flat = ((which[:, None, None] * h + rows) * w + cols).reshape(-1)
        # index_select on (N*H*W, C) rows: the fast path for gathering pixel vectors
        x = self.images.view(-1, c).index_select(0, flat).view(b, p, p, c).permute(0, 3, 1, 2)
        y = self.masks.view(-1, self.masks.shape[-1]).index_select(0, flat)
        y = y.view(b, p, p, -1).permute(0, 3, 1, 2)  # (B, classes, p, p)
        if not self.channels_last_out:
            x = x.contiguous()
        return x, y.contiguous()
