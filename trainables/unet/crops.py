"""Scenes in memory -> batches: random training crops (with D4) gathered on the device and a fixed
grid of validation tiles. Torch and numpy only (no raster reading), so a trial's batches can be made
from arrays where rasterio is not installed (``bench.gpu_packing``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from .augment import D4, d4


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
