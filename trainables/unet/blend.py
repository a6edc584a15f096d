"""Full-image prediction by smoothly blended overlapping windows.

Each window's prediction is weighted by a second-order spline window (the window of the
well-known "smoothly blend image patches" approach: two parabolas joined at a quarter of
the width, high in the middle and near zero at the edges) and the weighted predictions are
divided by the summed weights, so any predictor that is exact on patches stays exact on
the whole image, at every overlap. The image is mirror-padded so every pixel is covered by
window centres. Optional D4 averaging runs each window through the 8 symmetries.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .augment import d4, d4_inverse

Predictor = Callable[[np.ndarray], np.ndarray]  # (B, C, p, p) -> (B, K, p, p)


def triangle(n: int) -> np.ndarray:
    """The triangular window of ``scipy.signal.windows.triang`` (never zero)."""
    half = np.arange(1, (n + 1) // 2 + 1, dtype=np.float64)
    if n % 2 == 0:
        w = (2 * half - 1) / n
        return np.concatenate([w, w[::-1]])
    w = 2 * half / (n + 1)
    return np.concatenate([w, w[-2::-1]])


def spline_window(size: int, power: int = 2) -> np.ndarray:
    """The 1-D spline window of order ``power``, normalized to mean 1."""
    intersection = size // 4
    tri = triangle(size)
    outer = (np.abs(2 * tri) ** power) / 2
    inner = 1 - (np.abs(2 * (tri - 1)) ** power) / 2
    if intersection > 0:
        outer[intersection:-intersection] = 0
        inner[:intersection] = 0
        inner[-intersection:] = 0
    else:
        outer[:] = 0
    window = inner + outer
    return window / window.mean()


def spline_window_2d(size: int, power: int = 2) -> np.ndarray:
    w = spline_window(size, power)
    return np.outer(w, w)


def _starts(length: int, patch: int, step: int) -> list[int]:
    starts = list(range(0, max(length - patch, 0) + 1, step))
    if starts[-1] + patch < length:
        starts.append(length - patch)
    return starts


def predict_blended(
    image: np.ndarray,
    predict: Predictor,
    patch: int,
    *,
    overlap: float = 0.5,
    d4_average: bool = False,
    batch_size: int = 16,
    power: int = 2,
) -> np.ndarray:
    """Predict a (C, H, W) image of any size with a predictor of (B, C, patch, patch)
    windows, blending overlapping windows; returns (K, H, W) as float32.

    ``overlap`` in [0, 1) is the fraction of a window shared with its neighbour (0.5: the
    step is half a window).
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if image.ndim != 3:
        raise ValueError(f"expected an image of shape (C, H, W), got {image.shape}")
    step = max(1, round(patch * (1 - overlap)))
    margin = patch - step  # every pixel then lies where windows are not near their edge
    _, h, w = image.shape
    pad_h = (margin, margin + max(patch - h - 2 * margin, 0))
    pad_w = (margin, margin + max(patch - w - 2 * margin, 0))
    padded = np.pad(image, ((0, 0), pad_h, pad_w), mode="reflect" if min(h, w) > 1 else "edge")
    ph, pw = padded.shape[1:]
    window = spline_window_2d(patch, power).astype(np.float64)
    corners = [(y, x) for y in _starts(ph, patch, step) for x in _starts(pw, patch, step)]
    total: np.ndarray | None = None
    weight = np.zeros((ph, pw), np.float64)
    for first in range(0, len(corners), batch_size):
        chunk = corners[first : first + batch_size]
        tiles = np.stack([padded[:, y : y + patch, x : x + patch] for y, x in chunk])
        preds = _predict(tiles, predict, d4_average)
        if total is None:
            total = np.zeros((preds.shape[1], ph, pw), np.float64)
        for (y, x), pred in zip(chunk, preds, strict=True):
            total[:, y : y + patch, x : x + patch] += pred * window
            weight[y : y + patch, x : x + patch] += window
    assert total is not None
    out = total / weight
    return out[:, margin : margin + h, margin : margin + w].astype(np.float32)


def _predict(tiles: np.ndarray, predict: Predictor, d4_average: bool) -> np.ndarray:
    if not d4_average:
        return np.asarray(predict(tiles), np.float64)
    acc = None
    for k in range(8):
        pred = d4_inverse(np.asarray(predict(np.ascontiguousarray(d4(tiles, k)))), k)
        acc = pred.astype(np.float64) if acc is None else acc + pred
    return acc / 8


def torch_predictor(model, device=None, batch_norm_eval: bool = True) -> Predictor:
    """Wrap a torch segmentation model as a predictor returning sigmoid probabilities."""
    import torch

    device = device or next(model.parameters()).device
    if batch_norm_eval:
        model.eval()

    @torch.no_grad()
    def predict(tiles: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(tiles, dtype=torch.float32, device=device)
        return torch.sigmoid(model(x)).float().cpu().numpy()

    return predict
