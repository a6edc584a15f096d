"""The ``convnet`` family's review hook: model summary, a drawing of its stack, the confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from trainables.api import ARCHITECTURE_ARTIFACT, CONFUSION_MATRIX_ARTIFACT

from ..config import Config
from ..loop import Runtime, Task
from ..review import (
    artifact_path,
    diagram,
    draw_arrow,
    draw_box,
    new_figure,
    place_axes,
    save_figure,
    write_model_summary,
)
from .model import ConvNetShape, Ensemble
from .trainable import vote


def render(task: Task, runtime: Runtime, cfg: Config, out: Path) -> list[Path]:
    """Write ``model_summary.txt``, ``architecture.png`` and ``confusion_matrix.png`` into ``out``."""
    shape = net_shape(task, cfg)
    ensemble = len(task.model.members) if isinstance(task.model, Ensemble) else 1
    matrix = confusion_matrix(task, shape.classes, cfg.choice("vote", ("softmax", "majority")))
    return [
        write_model_summary(task, runtime, out),
        save_figure(architecture_figure(shape, ensemble), artifact_path(out, ARCHITECTURE_ARTIFACT)),
        save_figure(confusion_figure(matrix), artifact_path(out, CONFUSION_MATRIX_ARTIFACT)),
    ]


def net_shape(task: Task, cfg: Config) -> ConvNetShape:
    """The shape of the task's net: the config's choices, the data's image size and the classes of its head."""
    member = task.model.members[0] if isinstance(task.model, Ensemble) else task.model
    head = member.head[-1]
    assert isinstance(head, nn.Linear)
    _, channels, height, width = next(task.val.epoch(torch.Generator()))[0].shape
    return ConvNetShape.from_config(cfg, in_channels=channels, image_size=min(height, width), classes=head.out_features)


@torch.no_grad()
def confusion_matrix(task: Task, classes: int, rule: str) -> np.ndarray:
    """Counts over the validation set, ``[true class, predicted class]``; an ensemble votes by ``rule``."""
    counts = torch.zeros(classes * classes, dtype=torch.long)
    task.model.eval()
    for x, y in task.val.epoch(torch.Generator()):
        _, predicted = vote(task.model(x).float(), rule)
        counts += torch.bincount((y * classes + predicted).cpu(), minlength=classes * classes)
    return counts.reshape(classes, classes).numpy()


CONFUSION_MARGINS_IN = (0.65, 0.55, 0.2, 0.35)  # left, bottom, right, top: tick and axis labels, the title


def confusion_figure(matrix: np.ndarray) -> Figure:
    """The confusion matrix as a heat map with counts in the cells (no colour bar: they say more) and the accuracy
    in the title."""
    classes = len(matrix)
    accuracy = np.trace(matrix) / max(int(matrix.sum()), 1)
    cells = 0.35 * classes + 1.6  # the matrix's side (inches)
    left, bottom, right, top = CONFUSION_MARGINS_IN
    figure = new_figure(cells + left + right, cells + bottom + top)
    axes = place_axes(figure, *CONFUSION_MARGINS_IN)
    axes.imshow(matrix, cmap="Blues", vmin=0)
    axes.set_xticks(range(classes))
    axes.set_yticks(range(classes))
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"validation: accuracy {accuracy:.3f} on {int(matrix.sum())} samples", fontsize=9)
    darkest = matrix.max() or 1
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            colour = "white" if count > darkest / 2 else "black"
            axes.text(column, row, str(count), ha="center", va="center", fontsize=7, color=colour)
    return figure


def architecture_figure(shape: ConvNetShape, ensemble: int = 1) -> Figure:
    """The stack from top to bottom: input, each conv-pool stage, the FC layers, the softmax output."""
    stages: list[tuple[str, str]] = [(f"input {shape.in_channels}x{shape.image_size}x{shape.image_size}", "data")]
    size = shape.image_size
    for layer, filters in enumerate(shape.channels(), start=1):
        size //= 2
        stages.append(
            (
                f"conv {layer}: {filters} filters {shape.kernel}x{shape.kernel}, {shape.activation}\n"
                f"{shape.pooling} pool 2x2 -> {filters}x{size}x{size}",
                "conv",
            )
        )
    dropout = f"dropout {shape.dropout:g}, " if shape.dropout > 0 else ""
    for layer in range(1, shape.fc_layers + 1):
        stages.append((f"FC {layer}: {dropout}{shape.fc_width} units, {shape.activation}", "dense"))
    stages.append((f"{dropout}linear -> softmax over {shape.classes} classes", "out"))
    rows = len(stages)
    figure, axes = diagram(4.6, 0.4 + 0.7 * rows, (0, 1), (-rows + 0.4, 0.6))
    for row, (text, kind) in enumerate(stages):
        draw_box(axes, (0.5, -row), (0.9, 0.62), text, kind)
        if row:
            draw_arrow(axes, (0.5, -row + 0.69), (0.5, -row + 0.31))
    title = "ConvNet" if ensemble <= 1 else f"ensemble of {ensemble} ConvNets (each as drawn)"
    axes.set_title(title, fontsize=9)
    return figure
