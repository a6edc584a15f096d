"""The ``unet`` family's review hook: model summary, a drawing of the U, predictions on fixed validation tiles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from trainables.api import ARCHITECTURE_ARTIFACT, PREDICTIONS_ARTIFACT

from ..config import Config
from ..loop import Runtime, Task
from ..review import (
    artifact_path,
    diagram,
    draw_arrow,
    draw_box,
    first_samples,
    new_figure,
    save_figure,
    write_model_summary,
)
from .model import UNet, UNetShape

PREVIEW_TILES = 3  # the first validation tiles: the same for every trial of a search
TILE_IN = 1.5  # a tile's cell (inches)
HEADER_IN = 0.5  # above the tiles: the title and the column titles (inches)
RGB_CHANNELS = ("r", "g", "b")
STRETCH_PERCENTILES = (2.0, 98.0)


def render(task: Task, runtime: Runtime, cfg: Config, out: Path) -> list[Path]:
    """Write ``model_summary.txt``, ``architecture.png`` and ``predictions.png`` into ``out``."""
    model = task.model
    assert isinstance(model, UNet)
    return [
        write_model_summary(task, runtime, out),
        save_figure(architecture_figure(model.shape, cfg.integer("patch")), artifact_path(out, ARCHITECTURE_ARTIFACT)),
        save_figure(predictions_figure(task), artifact_path(out, PREDICTIONS_ARTIFACT)),
    ]


# ----------------------------------------------------------------------------- the U


def architecture_figure(shape: UNetShape, patch: int) -> Figure:
    """Encoder levels down the left, the bottleneck at the bottom, decoder levels up the right, skips across."""
    widths = shape.widths()
    depth = shape.depth
    box = (2.2, 0.62)
    left, right = 1.4, 6.6
    figure, axes = diagram(7.2, 1.3 + 0.85 * (depth + 1), (0, 8), (-depth - 0.6, 1.2))
    up = "transpose conv 2x2" if shape.upsampling == "transpose" else "bilinear + 1x1 conv"
    for level in range(depth):
        side = patch // 2**level
        text = f"level {level + 1}: {widths[level]} filters\n{side}x{side}"
        draw_box(axes, (left, -level), box, text, "conv")
        draw_box(axes, (right, -level), box, text, "conv")
        draw_arrow(axes, (left + box[0] / 2, -level), (right - box[0] / 2, -level), "copy + concat", dashed=True)
        below = -level - 1 + box[1] / 2
        if level < depth - 1:
            draw_arrow(axes, (left, -level - box[1] / 2), (left, below), "max pool 2x2")
            draw_arrow(axes, (right, below), (right, -level - box[1] / 2), up)
    side = patch // 2**depth
    bottom = (4.0, -depth)
    draw_box(axes, bottom, box, f"bottleneck: {widths[depth]} filters\n{side}x{side}", "pool")
    draw_arrow(axes, (left, -depth + 1 - box[1] / 2), (bottom[0] - box[0] / 2, bottom[1]), "max pool 2x2")
    draw_arrow(axes, (bottom[0] + box[0] / 2, bottom[1]), (right, -depth + 1 - box[1] / 2), up)
    draw_box(axes, (left, 0.9), (box[0], 0.4), f"input {shape.in_channels} channels", "data")
    draw_box(axes, (right, 0.9), (box[0], 0.4), f"1x1 conv -> {shape.classes} class maps", "out")
    draw_arrow(axes, (left, 0.7), (left, box[1] / 2))
    draw_arrow(axes, (right, box[1] / 2), (right, 0.7))
    norm = ", batch norm" if shape.batch_norm else ""
    dropout = f", dropout {shape.dropout:g}" if shape.dropout > 0 else ""
    axes.set_title(
        f"U-Net, depth {depth}: {shape.convs_per_block} x conv {shape.kernel}x{shape.kernel} per block, "
        f"{shape.activation}{norm}{dropout}",
        fontsize=9,
    )
    return figure


# ----------------------------------------------------------------------------- predictions


def rgb_composite(tiles: np.ndarray, channels: Sequence[str]) -> np.ndarray:
    """``(N, C, H, W)`` tiles as ``(N, H, W, 3)`` pictures in [0, 1]: the R, G, B bands when the channel names
    have them, else the first three channels, each stretched between its 2nd and 98th percentile."""
    names = list(channels)
    if all(name in names for name in RGB_CHANNELS):
        picks = [names.index(name) for name in RGB_CHANNELS]
    else:
        picks = [min(i, tiles.shape[1] - 1) for i in range(3)]
    rgb = tiles[:, picks].astype(np.float64)
    low, high = np.percentile(rgb, STRETCH_PERCENTILES, axis=(0, 2, 3), keepdims=True)
    stretched = (rgb - low) / np.maximum(high - low, 1e-9)
    return np.clip(stretched, 0.0, 1.0).transpose(0, 2, 3, 1)


@torch.no_grad()
def predictions_figure(task: Task) -> Figure:
    """A row per fixed validation tile: the RGB composite, then truth and prediction per class; the title holds
    the per-class Jaccard over these tiles (the evaluator's rule)."""
    x, y = first_samples(task.val, PREVIEW_TILES)
    task.model.eval()
    logits = task.model(x).float()
    classes = list(task.meta["classes"])
    task.evaluator.reset()
    task.evaluator.update(logits, y)
    scores = task.evaluator.compute()
    rgb = rgb_composite(x.cpu().numpy(), task.meta.get("channels", ()))
    truth = (y > 0.5).cpu().numpy()
    predicted = (logits > 0).cpu().numpy()
    columns = 1 + 2 * len(classes)
    height = TILE_IN * len(x) + HEADER_IN
    figure = new_figure(TILE_IN * columns, height)
    grid = figure.subplots(
        len(x),
        columns,
        squeeze=False,
        gridspec_kw={
            "left": 0.01,
            "right": 0.99,
            "bottom": 0.01,
            "top": 1 - HEADER_IN / height,
            "wspace": 0.08,
            "hspace": 0.2,
        },
    )
    for row, cells in enumerate(grid):
        cells[0].imshow(rgb[row])
        for k, name in enumerate(classes):
            cells[1 + 2 * k].imshow(truth[row, k], cmap="gray", vmin=0, vmax=1)
            cells[2 + 2 * k].imshow(predicted[row, k], cmap="gray", vmin=0, vmax=1)
            if row == 0:
                cells[1 + 2 * k].set_title(f"{name}: truth", fontsize=8)
                cells[2 + 2 * k].set_title(f"{name}: predicted", fontsize=8)
        for cell in cells:
            cell.set_xticks([])
            cell.set_yticks([])
    grid[0][0].set_title("RGB", fontsize=8)
    jaccard = ", ".join(f"{name} {scores[f'val_jaccard_{name}']:.3f}" for name in classes)
    figure.suptitle(f"first {len(x)} validation tiles; Jaccard: {jaccard}", fontsize=9)
    return figure
