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
from dataclasses import dataclass

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


RowReader = Callable[[np.ndarray], np.ndarray]  # source row indices (ascending, may repeat) -> (C, len(rows), W)
RowWriter = Callable[[int, np.ndarray], None]  # (first row, (K, rows, W) float32 block) in row order


@dataclass(frozen=True)
class BlendGrid:
    """Where the windows of a blended prediction of an ``height x width`` image go.

    The image is mirror-padded by ``margin`` (more where it is smaller than a window) so that every
    pixel is covered by window centres; windows start every ``step`` rows and columns of the padded
    image, the last one flush with its edge. ``rows``/``cols`` map a padded index to the source index.
    """

    height: int
    width: int
    patch: int
    step: int
    margin: int
    rows: np.ndarray
    cols: np.ndarray

    @classmethod
    def create(cls, height: int, width: int, patch: int, overlap: float) -> BlendGrid:
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        step = max(1, round(patch * (1 - overlap)))
        margin = patch - step
        mode = "reflect" if min(height, width) > 1 else "edge"

        def padded(n: int) -> np.ndarray:
            return np.pad(np.arange(n), (margin, margin + max(patch - n - 2 * margin, 0)), mode=mode)

        return cls(height, width, patch, step, margin, padded(height), padded(width))

    @property
    def window_rows(self) -> list[int]:
        return _starts(len(self.rows), self.patch, self.step)

    @property
    def window_cols(self) -> list[int]:
        return _starts(len(self.cols), self.patch, self.step)

    @property
    def windows(self) -> int:
        return len(self.window_rows) * len(self.window_cols)


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
    step is half a window). The in-memory form of :func:`predict_blended_rows`.
    """
    if image.ndim != 3:
        raise ValueError(f"expected an image of shape (C, H, W), got {image.shape}")
    blocks: list[np.ndarray] = []
    predict_blended_rows(
        lambda rows: image[:, rows, :],
        image.shape[1],
        image.shape[2],
        predict,
        patch,
        lambda _, block: blocks.append(block),
        overlap=overlap,
        d4_average=d4_average,
        batch_size=batch_size,
        power=power,
    )
    return np.concatenate(blocks, axis=1)


def predict_blended_rows(
    read_rows: RowReader,
    height: int,
    width: int,
    predict: Predictor,
    patch: int,
    write_rows: RowWriter,
    *,
    overlap: float = 0.5,
    d4_average: bool = False,
    batch_size: int = 16,
    power: int = 2,
    on_window_row: Callable[[int, int], None] | None = None,
) -> None:
    """Blended prediction of an image too large to hold: the same windows and sums as a whole-image pass.

    The image is read one strip of ``patch`` rows at a time (``read_rows`` gets the source row
    indices of the strip, mirror padding included) and its prediction is handed to ``write_rows``
    as soon as no later window touches those rows. Memory: one input strip (C, patch, W), the
    windows of one strip, and an accumulator of (K, patch + step, W) float64. ``on_window_row(done,
    total)`` reports progress after each strip.
    """
    grid = BlendGrid.create(height, width, patch, overlap)
    window = spline_window_2d(patch, power).astype(np.float64)
    cols = grid.window_cols
    starts = grid.window_rows
    padded_width = len(grid.cols)
    total: np.ndarray | None = None  # padded rows [base, base + len) of the running sums
    weight = np.zeros((0, padded_width), np.float64)
    base = 0  # first padded row held
    written = grid.margin  # first padded row of the output not yet handed out
    end = grid.margin + height
    for done, y in enumerate(starts, start=1):
        strip = read_rows(grid.rows[y : y + patch])[:, :, grid.cols]
        preds = np.concatenate(
            [
                _predict(np.stack([strip[:, :, x : x + patch] for x in cols[i : i + batch_size]]), predict, d4_average)
                for i in range(0, len(cols), batch_size)
            ]
        )
        if total is None:
            total = np.zeros((preds.shape[1], 0, padded_width), np.float64)
        grow = y + patch - (base + total.shape[1])
        if grow > 0:
            total = np.concatenate([total, np.zeros((total.shape[0], grow, padded_width))], axis=1)
            weight = np.concatenate([weight, np.zeros((grow, padded_width))], axis=0)
        top = y - base
        for x, pred in zip(cols, preds, strict=True):
            total[:, top : top + patch, x : x + patch] += pred * window
            weight[top : top + patch, x : x + patch] += window
        final = starts[done] if done < len(starts) else base + total.shape[1]  # rows no later window touches
        upto = min(final, end)
        if upto > written:
            rows = slice(written - base, upto - base)
            block = total[:, rows, grid.margin : grid.margin + width] / weight[rows, grid.margin : grid.margin + width]
            write_rows(written - grid.margin, block.astype(np.float32))
            written = upto
        if final > base:  # drop what is finished
            total, weight, base = total[:, final - base :], weight[final - base :], final
        if on_window_row is not None:
            on_window_row(done, len(starts))


def _predict(tiles: np.ndarray, predict: Predictor, d4_average: bool) -> np.ndarray:
    if not d4_average:
        return np.asarray(predict(tiles), np.float64)
    acc = None
    for k in range(8):
        pred = d4_inverse(np.asarray(predict(np.ascontiguousarray(d4(tiles, k)))), k)
        acc = pred.astype(np.float64) if acc is None else acc + pred
    return acc / 8
