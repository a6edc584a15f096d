"""D4 (the 8 symmetries of the square: 4 rotations x optional mirror) on the last two axes.

Works on numpy arrays and torch tensors. ``random_d4`` augments a batch on the device,
each sample with its own transform, applying the same one to its image and its mask.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

A = TypeVar("A", np.ndarray, Tensor)
D4 = tuple(range(8))  # k: rotate by (k % 4) quarter turns, then mirror when k >= 4


def _rot(x: A, turns: int) -> A:
    if isinstance(x, Tensor):
        return torch.rot90(x, turns, dims=(-2, -1))
    return np.rot90(x, turns, axes=(-2, -1))


def _mirror(x: A) -> A:
    return torch.flip(x, dims=(-1,)) if isinstance(x, Tensor) else np.flip(x, axis=-1)


def d4(x: A, k: int) -> A:
    """Apply transform ``k`` in 0..7."""
    y = _rot(x, k % 4)
    return _mirror(y) if k >= 4 else y


def d4_inverse(x: A, k: int) -> A:
    """Undo transform ``k``: ``d4_inverse(d4(x, k), k) == x``."""
    y = _mirror(x) if k >= 4 else x
    return _rot(y, -(k % 4))


def random_d4(image: Tensor, mask: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Each sample of a (B, C, H, W) batch gets one of the 8 transforms, drawn from
    ``generator``; image and mask get the same one (they are transformed together)."""
    if image.shape[-1] != image.shape[-2]:
        raise ValueError(f"D4 needs square patches, got {tuple(image.shape[-2:])}")
    both = torch.cat([image, mask.to(image.dtype)], dim=1)
    ks = torch.randint(0, 8, (len(both),), generator=generator).to(both.device).view(-1, 1, 1, 1)
    # k = turns + 4 * mirror: one quarter turn, then a half turn, then the mirror (3 passes)
    out = torch.where(ks % 2 == 1, _rot(both, 1), both)
    out = torch.where(ks % 4 >= 2, _rot(out, 2), out)
    out = torch.where(ks >= 4, _mirror(out), out)
    c = image.shape[1]
    return out[:, :c].contiguous(memory_format=_format(image)), out[:, c:].to(mask.dtype)


def _format(x: Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
