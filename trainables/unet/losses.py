"""Segmentation losses and the Jaccard evaluator (multi-label: one sigmoid per class).

``bce_jaccard`` is the DSTL 3rd-place loss: binary cross-entropy minus the log of the soft
Jaccard index, ``BCE - log(J)`` with ``J = (|y p| + eps) / (|y| + |p| - |y p| + eps)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-6


def soft_jaccard(logits: Tensor, target: Tensor) -> Tensor:
    """Per-class soft Jaccard over batch and pixels: shape (classes,)."""
    p = torch.sigmoid(logits.float())
    t = target.float()
    dims = (0, 2, 3)
    inter = (p * t).sum(dims)
    union = p.sum(dims) + t.sum(dims) - inter
    return (inter + EPS) / (union + EPS)


def bce(logits: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def bce_jaccard(logits: Tensor, target: Tensor) -> Tensor:
    return bce(logits, target) - torch.log(soft_jaccard(logits, target)).mean()


def dice(logits: Tensor, target: Tensor) -> Tensor:
    p = torch.sigmoid(logits.float())
    t = target.float()
    dims = (0, 2, 3)
    inter = (p * t).sum(dims)
    score = (2 * inter + EPS) / (p.sum(dims) + t.sum(dims) + EPS)
    return 1 - score.mean()


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "bce_jaccard": bce_jaccard,
    "bce": bce,
    "dice": dice,
}


class JaccardEvaluator:
    """Hard Jaccard per class (threshold 0.5 on the sigmoid) over the whole validation set,
    plus the validation loss; intersections and unions are summed on the device.

    A class absent from both prediction and truth scores 1 (nothing to find, nothing found).
    """

    def __init__(self, classes: Sequence[str], loss: Callable[[Tensor, Tensor], Tensor]):
        self.classes = list(classes)
        self.loss = loss
        self.reset()

    def reset(self) -> None:
        self.sums: Tensor | None = None

    def update(self, logits: Tensor, target: Tensor) -> None:
        pred = logits > 0
        truth = target > 0.5
        dims = (0, 2, 3)
        inter = (pred & truth).sum(dims).float()
        union = (pred | truth).sum(dims).float()
        n = torch.tensor([float(len(logits))], device=logits.device)
        loss = (self.loss(logits, target).detach() * len(logits)).reshape(1)
        batch = torch.cat([inter, union, loss, n])
        self.sums = batch if self.sums is None else self.sums + batch

    def compute(self) -> dict[str, float]:
        assert self.sums is not None, "update() was never called"
        values = self.sums.tolist()
        k = len(self.classes)
        inter, union, loss, n = values[:k], values[k : 2 * k], values[2 * k], values[2 * k + 1]
        per_class = {
            f"val_jaccard_{name}": (i / u if u > 0 else 1.0)
            for name, i, u in zip(self.classes, inter, union, strict=True)
        }
        return {
            "val_jaccard": sum(per_class.values()) / k,
            **per_class,
            "val_loss": loss / n,
        }
