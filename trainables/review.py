"""What the families' review hooks share: the torchinfo summary, figures, the first validation samples.

A family's spec names its hook, ``review="trainables.<family>.review:render"``, with the signature
:data:`ReviewHook`: it writes its files (named by ``orchestrator.tracking.schema``, through ``trainables.api``)
into a folder and returns their paths. ``orchestrator.review`` calls it in a low-priority process, off the
training path, on the model restored from a trial's last checkpoint (``trainables.loop.restore_task``). Figures are
drawn on a bare ``matplotlib.figure.Figure`` (Agg canvas, no pyplot state) at a small dpi, with axes
placed by fixed margins (:func:`place_axes`) rather than a layout engine, which would lay every text out
in a second drawing pass (it doubled a confusion matrix's cost), and saved with light PNG compression:
a picture takes about a tenth of a CPU second.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor, nn

from trainables.api import MODEL_SUMMARY_ARTIFACT, review_file_name

from .config import Config
from .loop import Batches, Runtime, Task

ReviewHook = Callable[[Task, Runtime, Config, Path], list[Path]]

FIGURE_DPI = 100  # small: a review picture renders in a fraction of a second
PNG_COMPRESS_LEVEL = 1  # zlib's fastest: encodes faster, for files about a fifth larger (25 kB for a confusion matrix)
TITLE_SPACE_IN = 0.3  # above a diagram: room for its title (inches)
SUMMARY_COLUMNS = ("output_size", "num_params", "mult_adds")


def artifact_path(out: Path, artifact: str) -> Path:
    """Where the review ``artifact`` (a schema name such as ``review/architecture.png``) is written in ``out``."""
    return out / review_file_name(artifact)


def sample_input_size(task: Task) -> tuple[int, ...]:
    """The input size of one validation sample with a batch of one, ``(1, C, H, W)``."""
    x, _ = first_samples(task.val, 1)
    return (1, *x.shape[1:])


def model_summary(model: nn.Module, input_size: tuple[int, ...], runtime: Runtime) -> str:
    """torchinfo's layer table (output shapes, parameters, multiply-adds) for one sample of ``input_size``,
    under a first line with the totals."""
    import torchinfo

    stats = torchinfo.summary(
        model, input_size=input_size, col_names=SUMMARY_COLUMNS, device=runtime.device, verbose=0, mode="eval"
    )
    head = (
        f"{stats.total_params:,} parameters ({stats.trainable_params:,} trainable), "
        f"{stats.total_mult_adds:,} multiply-adds per sample of input size {tuple(input_size[1:])}"
    )
    return f"{head}\n\n{stats}\n"


def write_model_summary(task: Task, runtime: Runtime, out: Path) -> Path:
    """``model_summary.txt`` of the task's model, for one validation sample."""
    path = artifact_path(out, MODEL_SUMMARY_ARTIFACT)
    path.write_text(model_summary(task.model, sample_input_size(task), runtime))
    return path


def first_samples(batches: Batches, count: int) -> tuple[Tensor, Tensor]:
    """The first ``count`` samples (fewer if there are not as many) of a batch source, in its fixed order.

    Validation batches are never shuffled, so these are the same samples for every trial of a search.
    """
    xs: list[Tensor] = []
    ys: list[Tensor] = []
    seen = 0
    for x, y in batches.epoch(torch.Generator().manual_seed(0)):
        xs.append(x[: count - seen])
        ys.append(y[: count - seen])
        seen += len(xs[-1])
        if seen >= count:
            break
    return torch.cat(xs), torch.cat(ys)


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches, not registered with pyplot, without a layout engine."""
    return Figure(figsize=(width, height), dpi=FIGURE_DPI)


def place_axes(figure: Figure, left: float, bottom: float, right: float, top: float) -> Axes:
    """One axes inside ``figure`` with these margins (inches) for its tick labels, axis labels and title."""
    width, height = figure.get_size_inches()
    return figure.add_axes((left / width, bottom / height, 1 - (left + right) / width, 1 - (bottom + top) / height))


def save_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG at :data:`FIGURE_DPI`."""
    figure.savefig(path, dpi=FIGURE_DPI, format="png", pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    return path


# ----------------------------------------------------------------------------- diagrams

BOX_COLOURS = {"data": "#e8eef7", "conv": "#cfe3f6", "pool": "#d7ecd9", "dense": "#fbe3c8", "out": "#f6d0d0"}


def diagram(width: float, height: float, xlim: tuple[float, float], ylim: tuple[float, float]) -> tuple[Figure, Axes]:
    """A figure with one axis-free drawing area in data coordinates ``xlim`` x ``ylim``, below room for a title."""
    figure = new_figure(width, height)
    axes = place_axes(figure, 0.0, 0.0, 0.0, TITLE_SPACE_IN)
    axes.set_xlim(*xlim)
    axes.set_ylim(*ylim)
    axes.set_axis_off()
    return figure, axes


def draw_box(axes: Axes, center: tuple[float, float], size: tuple[float, float], text: str, kind: str) -> None:
    """A rounded box of ``size`` (data units) at ``center`` with centred ``text``, coloured by ``kind``."""
    from matplotlib.patches import FancyBboxPatch

    (x, y), (w, h) = center, size
    axes.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02",
            facecolor=BOX_COLOURS[kind],
            edgecolor="0.25",
            linewidth=1.0,
        )
    )
    axes.text(x, y, text, ha="center", va="center", fontsize=8)


def draw_arrow(
    axes: Axes, start: tuple[float, float], end: tuple[float, float], label: str = "", *, dashed: bool = False
) -> None:
    """An arrow from ``start`` to ``end``, with ``label`` beside its middle."""
    style = {"arrowstyle": "-|>", "color": "0.3", "linewidth": 1.0, "linestyle": "--" if dashed else "-"}
    axes.annotate("", xy=end, xytext=start, arrowprops=style)
    if label:
        middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        axes.annotate(label, middle, xytext=(4, 2), textcoords="offset points", fontsize=7, color="0.3")
