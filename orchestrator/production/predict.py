"""``orchestrator predict``: whole DSTL scenes through logged segmentation models, in bounded memory.

For each scene (``<folder>/three_band/<id>.tif`` of a DSTL-layout folder; the M, A and P files come from
``<folder>/sixteen_band/``, the grid from ``<folder>/grid_sizes.csv``):

1. **Windowed prediction** (``trainables.unet.blend.predict_blended_rows``): the scene is read strip by
   strip (one strip of ``patch`` rows, full width, per row of windows; the mirrored rows it asks for at
   the edges come from one read of their span), standardized with each model's training mean and std,
   and every window goes through every model (D4 averaging optional), blended smoothly with the
   neighbouring windows. Models that share bands, indices, mean and std share one standardized strip;
   the files are read once per distinct (bands, indices). Each model's classes are stacked into one
   multi-class output in DSTL class type order; two models claiming one class are refused.
2. **Per-pixel rules and masks**: probabilities at or above ``threshold`` are masks; the per-pixel rules
   (``water_over_buildings``) run inside the strip; finished rows are written, in blocks aligned with
   the output's tiles, to a temporary GeoTIFF.
3. **Per class** (``H * W`` bytes each): the class band is read back, small objects are removed
   (``min_area`` rules), and the band is written to ``<out>/<id>.tif`` (tiled, deflate, uint8 0/1, one
   band per class named by its description, the source's CRS and transform when it has them) and
   polygonized into the scene's rows of ``<out>/submission.csv`` (``ImageId,ClassType,MultipolygonWKT``:
   every class of every scene, ``MULTIPOLYGON EMPTY`` where nothing is predicted or a class is not
   among the models'; DSTL geo coordinates from ``grid_sizes.csv``, outlines simplified).

Memory: a scene is never held whole. Step 1 holds one input strip per distinct input ((channels,
patch, W) float32, plus the span read for mirrored rows), the windows of one strip and their
predictions, the blending sums ((classes, patch + step, W) float64) and GDAL's block cache (capped at
``GDAL_CACHE_MB``). Step 3 holds one class band (``H * W`` bytes), what the sieve and the polygons of
that band need, and the WKT text of one class. Peak memory grows with the scene's width and the window
batch, not with its height; ``bench/predict_memory.py`` measures it.
"""

from __future__ import annotations

import csv
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.console import Echo, live_view
from orchestrator.errors import OrchestratorError, first_line
from orchestrator.models.metadata import ModelInput, ModelMetadata, ModelMetadataError, read_model_metadata
from orchestrator.paths import check_output_folder

from .defaults import DEFAULT_BATCH_SIZE, DEFAULT_D4, DEFAULT_OVERLAP, DEFAULT_THRESHOLD
from .rules import DEFAULT_RULES, Rules, apply_pixel_rules, remove_small_objects

OUTPUT_BLOCK = 256  # tile size of the written GeoTIFFs; rows are written in blocks of this many
GDAL_CACHE_MB = 64  # GDAL's raster block cache while predicting (its default is 5% of the machine's memory)
SUBMISSION_FILE = "submission.csv"
SUBMISSION_HEADER = ("ImageId", "ClassType", "MultipolygonWKT")
EMPTY_WKT = "MULTIPOLYGON EMPTY"  # a class with nothing predicted, or that no model predicts
SCENE_FOLDER = "three_band"
PLAIN_PROGRESS_STEPS = 10  # without a terminal: a progress line about every tenth of the tiles


class PredictError(OrchestratorError):
    """Inputs that cannot be predicted: one line per bad scene path or model."""


# --------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class SceneSource:
    """One scene to predict: its ``three_band`` file, the DSTL folder around it and its image id."""

    path: Path
    root: Path
    image_id: str


def locate_scene(path: str | Path) -> SceneSource:
    """The DSTL folder and image id of a ``<folder>/three_band/<id>.tif`` path (``PredictError`` otherwise)."""
    path = Path(path).expanduser()
    if path.is_dir() and path.name == SCENE_FOLDER:
        raise PredictError(f"{path}: no scene (.tif) in the folder")
    if path.is_dir():
        raise PredictError(f"{path}: a folder without {SCENE_FOLDER}/ (not a DSTL-layout folder)")
    if not path.is_file():
        raise PredictError(f"{path}: no such file")
    if path.parent.name != SCENE_FOLDER or path.suffix.lower() not in (".tif", ".tiff"):
        raise PredictError(f"{path}: not a DSTL-layout scene (expected <folder>/{SCENE_FOLDER}/<image id>.tif)")
    return SceneSource(path, path.parent.parent, path.stem)


def scene_paths(paths: Sequence[str | Path]) -> list[Path]:
    """``paths`` with each folder replaced by its scenes: a DSTL folder or its ``three_band`` folder gives
    that folder's ``*.tif`` files, sorted; files are kept as given."""
    expanded: list[Path] = []
    for given in paths:
        path = Path(given).expanduser()
        folder = path / SCENE_FOLDER if (path / SCENE_FOLDER).is_dir() else path
        if path.is_dir() and folder.name == SCENE_FOLDER:
            expanded += sorted(folder.glob("*.tif")) or [folder]  # an empty folder: its own error line
        else:
            expanded.append(path)
    return expanded


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class LoadedModel:
    metadata: ModelMetadata
    module: Any  # torch.nn.Module / GraphModule: (B, C, patch, patch) -> (B, classes, patch, patch) logits


@dataclass(frozen=True)
class Ensemble:
    """Models combined into one predictor over stacked inputs, with one stacked multi-class output.

    ``inputs`` are the distinct model inputs in first-use order; the predictor's tiles hold their
    channels one after the other. ``classes`` is the output's class order (DSTL class type order)."""

    models: tuple[LoadedModel, ...]
    inputs: tuple[ModelInput, ...]
    classes: tuple[str, ...]
    patch: int

    @classmethod
    def of(cls, models: Sequence[LoadedModel]) -> Ensemble:
        from trainables.unet.dstl import CLASS_TYPES

        problems = combination_problems([model.metadata for model in models])
        if problems:
            raise PredictError("\n".join(problems))
        inputs = tuple(dict.fromkeys(model.metadata.input for model in models))
        classes = sorted((name for model in models for name in model.metadata.classes), key=CLASS_TYPES.__getitem__)
        return cls(tuple(models), inputs, tuple(classes), models[0].metadata.patch)

    def channel_slices(self) -> dict[ModelInput, slice]:
        """Where each distinct input's channels lie in the stacked tiles."""
        slices, start = {}, 0
        for model_input in self.inputs:
            slices[model_input] = slice(start, start + model_input.channels)
            start += model_input.channels
        return slices

    def predictor(self, device: Any) -> Callable[[np.ndarray], np.ndarray]:
        """(B, stacked channels, p, p) float32 -> (B, classes, p, p) sigmoid probabilities, float32."""
        import torch

        slices = self.channel_slices()
        routes = [
            (model.module, slices[model.metadata.input], [self.classes.index(c) for c in model.metadata.classes])
            for model in self.models
        ]

        @torch.no_grad()
        def predict(tiles: np.ndarray) -> np.ndarray:
            out = np.empty((tiles.shape[0], len(self.classes), *tiles.shape[2:]), np.float32)
            x = torch.as_tensor(tiles, dtype=torch.float32).to(device)
            for module, channels, positions in routes:
                out[:, positions] = torch.sigmoid(module(x[:, channels])).float().cpu().numpy()
            return out

        return predict


def combination_problems(models: Sequence[ModelMetadata]) -> list[str]:
    """Why ``models`` cannot be stacked into one output, one line each: a class claimed twice, patch sizes
    that differ (empty: they can)."""
    owner: dict[str, str] = {}
    problems = []
    for model in models:
        for name in model.classes:
            if name in owner:
                problems.append(f"{model.uri}: class {name!r} is also predicted by {owner[name]}")
            owner.setdefault(name, model.uri)
    patches = sorted({model.patch for model in models})
    if len(patches) > 1:
        problems.append(f"the models' patch sizes differ ({', '.join(map(str, patches))}); predict them separately")
    return problems


def load_models(uris: Sequence[str], tracking_uri: str | None, device: Any) -> list[LoadedModel]:
    """Each model's metadata, all checked together (:func:`combination_problems`), then each module
    (``mlflow.pytorch.load_model``, moved to ``device``); every problem as one line of a ``PredictError``."""
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    from orchestrator.tracking.mlflow_store import fluent_tracking_uri

    metadata, problems = [], []
    for uri in uris:
        try:
            metadata.append(read_model_metadata(uri, tracking_uri))
        except ModelMetadataError as error:
            problems.append(str(error))
    problems += combination_problems(metadata)
    loaded = []
    for model in metadata if not problems else []:
        try:
            with ExitStack() as stack:
                if tracking_uri is not None:
                    stack.enter_context(fluent_tracking_uri(tracking_uri))
                module = mlflow.pytorch.load_model(model.uri)
            loaded.append(LoadedModel(model, module.to(device)))
        except (MlflowException, OSError, RuntimeError, ValueError) as error:
            problems.append(f"{model.uri}: cannot load the model ({first_line(error)})")
    if problems:
        raise PredictError("\n".join(problems))
    return loaded


def pick_device(device: str | None = None) -> Any:
    """``device`` as a torch device; default: the first CUDA device when there is one, else the CPU."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return str(device)


# --------------------------------------------------------------------------- reading strips


class StripReader:
    """``read_rows`` for ``predict_blended_rows``: the stacked, standardized channels of any rows of a scene."""

    def __init__(self, dataset: Any, image_id: str, width: int, inputs: Sequence[ModelInput]):
        self.dataset, self.image_id, self.width = dataset, image_id, width
        self.inputs = list(inputs)
        self.groups = list(dict.fromkeys((i.bands, i.indices) for i in self.inputs))
        self.scales = [
            (np.asarray(i.mean, np.float32)[:, None, None], np.asarray(i.std, np.float32)[:, None, None])
            for i in self.inputs
        ]

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """(stacked channels, len(rows), W) float32 for source ``rows`` (any order, repeats allowed): each
        distinct (bands, indices) read once over the span of ``rows``, then indexed."""
        from rasterio.windows import Window

        low, high = int(rows.min()), int(rows.max()) + 1
        window = Window(0, low, self.width, high - low)
        raw = {key: self.dataset.read_window(self.image_id, window, *key)[:, rows - low] for key in self.groups}
        parts = []
        for model_input, (mean, std) in zip(self.inputs, self.scales, strict=True):
            part = raw[(model_input.bands, model_input.indices)] - mean
            part /= std  # in place: one strip-sized array per input
            parts.append(part)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


# --------------------------------------------------------------------------- writing


def output_profile(source: Path, classes: int, shape: tuple[int, int]) -> dict[str, Any]:
    """The GeoTIFF profile of a scene's masks: tiled, deflate, uint8, the source's CRS and transform if any."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    height, width = shape
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "count": classes,
        "height": height,
        "width": width,
        "dtype": "uint8",
        "tiled": True,
        "blockxsize": OUTPUT_BLOCK,
        "blockysize": OUTPUT_BLOCK,
        "compress": "deflate",
        "interleave": "band",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(source) as src:
            if src.crs is not None:
                profile["crs"] = src.crs
            if src.crs is not None or not src.transform.is_identity:
                profile["transform"] = src.transform
    return profile


@contextmanager
def open_raster(path: Path, mode: str, **profile: Any) -> Iterator[Any]:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # masks of a scene without georeferencing
        with rasterio.open(path, mode, **profile) as raster:
            yield raster


class BlockRowWriter:
    """Rows of (bands, rows, W) uint8, handed in order, written to ``raster`` in whole blocks of
    ``OUTPUT_BLOCK`` rows (no tile is written twice); ``close`` writes the rest."""

    def __init__(self, raster: Any):
        self.raster = raster
        self.pending: list[np.ndarray] = []
        self.row = 0  # first row not yet written

    def write(self, block: np.ndarray) -> None:
        self.pending.append(block)
        held = sum(part.shape[1] for part in self.pending)
        if held >= OUTPUT_BLOCK:
            rows = np.concatenate(self.pending, axis=1)
            whole = held - held % OUTPUT_BLOCK
            self._flush(rows[:, :whole])
            self.pending = [rows[:, whole:]] if whole < held else []

    def close(self) -> None:
        if self.pending:
            self._flush(np.concatenate(self.pending, axis=1))
            self.pending = []

    def _flush(self, rows: np.ndarray) -> None:
        from rasterio.windows import Window

        self.raster.write(rows, window=Window(0, self.row, rows.shape[2], rows.shape[1]))
        self.row += rows.shape[1]


# --------------------------------------------------------------------------- progress


class TileProgress:
    """Tiles (windows) done over all scenes: a rich progress bar on a terminal, else a plain line about
    every tenth of the tiles through ``echo``."""

    def __init__(self, total: int, echo: Echo, live: bool | None = None):
        self.total, self.echo, self.done = total, echo, 0
        self.live = live_view(live)
        self._next_line = 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> TileProgress:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("tiles"),
                TimeRemainingColumn(),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("predicting", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def advance(self, tiles: int, scene: str) -> None:
        self.done += tiles
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, description=scene)
        elif self.done >= self._next_line or self.done == self.total:
            self.echo(f"{scene}: {self.done}/{self.total} tiles")
            self._next_line = self.done + max(1, self.total // PLAIN_PROGRESS_STEPS)


# --------------------------------------------------------------------------- predict


@dataclass(frozen=True)
class ScenePrediction:
    image_id: str
    source: Path
    masks: Path  # the written GeoTIFF
    shape: tuple[int, int]
    tiles: int
    seconds: float
    pixels: dict[str, int]  # masked pixels per class (after the rules)


@dataclass(frozen=True)
class PredictReport:
    out: Path
    submission: Path
    classes: tuple[str, ...]
    device: str
    scenes: tuple[ScenePrediction, ...]
    seconds: float
    rules: Rules = field(default=DEFAULT_RULES)

    @property
    def tiles(self) -> int:
        return sum(scene.tiles for scene in self.scenes)

    @property
    def tiles_per_s(self) -> float:
        seconds = sum(scene.seconds for scene in self.scenes)
        return self.tiles / seconds if seconds > 0 else float("nan")


def predict_scenes(
    model_uris: Sequence[str],
    images: Sequence[str | Path],
    out: str | Path,
    *,
    tracking_uri: str | None = None,
    overlap: float = DEFAULT_OVERLAP,
    d4: bool = DEFAULT_D4,
    batch_size: int = DEFAULT_BATCH_SIZE,
    rules: Rules = DEFAULT_RULES,
    threshold: float = DEFAULT_THRESHOLD,
    device: str | None = None,
    echo: Echo = print,
    live: bool | None = None,
) -> PredictReport:
    """Predict every scene of ``images`` with the models of ``model_uris`` into ``out`` (the module docstring).

    Every bad path and model is reported before anything is predicted (``PredictError``, one line each).
    ``out/<image id>.tif`` and ``out/submission.csv`` are overwritten."""
    import rasterio

    from trainables.unet.blend import BlendGrid

    if not model_uris:
        raise PredictError("no model to predict with")
    if not images:
        raise PredictError("no scene to predict")
    if not 0 <= overlap < 1:
        raise PredictError(f"overlap must be in [0, 1), got {overlap}")
    if not 0 < threshold < 1:
        raise PredictError(f"threshold must be in (0, 1), got {threshold}")
    out = Path(out).expanduser()
    check_output_folder(out)  # before seconds of loading models
    torch_device = pick_device(device)
    ensemble = Ensemble.of(load_models(model_uris, tracking_uri, torch_device))
    scenes = _checked_scenes(images, ensemble)
    out.mkdir(exist_ok=True)
    grids = [BlendGrid.create(*dataset.grid_shape(s.image_id), ensemble.patch, overlap) for s, dataset in scenes]
    tiles = sum(grid.windows for grid in grids)
    echo(
        f"predicting {len(scenes)} scene(s), classes {', '.join(ensemble.classes)}, on {device_name(torch_device)}: "
        f"{tiles} tiles, D4 {'on' if d4 else 'off'}; rules: {rules.describe()}"
    )
    settings = _Settings(ensemble, ensemble.predictor(torch_device), overlap, d4, batch_size, rules, threshold)
    started = time.perf_counter()
    submission = out / SUBMISSION_FILE
    with (
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20),
        TileProgress(tiles, echo, live) as progress,
        open(submission, "w", newline="") as table,
    ):
        writer = csv.writer(table)
        writer.writerow(SUBMISSION_HEADER)
        predictions = tuple(
            _predict_scene(scene, dataset, grid, out, settings, progress, writer)
            for (scene, dataset), grid in zip(scenes, grids, strict=True)
        )
    report = PredictReport(
        out, submission, ensemble.classes, device_name(torch_device), predictions, time.perf_counter() - started, rules
    )
    echo(
        f"wrote {len(predictions)} mask GeoTIFF(s) and {submission} in {report.seconds:.1f}s "
        f"({report.tiles_per_s:.1f} tiles/s)"
    )
    return report


@dataclass(frozen=True)
class _Settings:
    """What every scene of one ``predict_scenes`` call is predicted with."""

    ensemble: Ensemble
    predict: Callable[[np.ndarray], np.ndarray]
    overlap: float
    d4: bool
    batch_size: int
    rules: Rules
    threshold: float


def _predict_scene(
    scene: SceneSource, dataset: Any, grid: Any, out: Path, settings: _Settings, progress: TileProgress, writer: Any
) -> ScenePrediction:
    """One scene: the windowed pass into a temporary GeoTIFF of masks, then the per-class step."""
    from trainables.unet.blend import predict_blended_rows

    started = time.perf_counter()
    classes = settings.ensemble.classes
    profile = output_profile(scene.path, len(classes), (grid.height, grid.width))
    temporary = out / f".{scene.image_id}.unprocessed.tif"
    masks_path = out / f"{scene.image_id}.tif"
    tiles_per_strip = len(grid.window_cols)

    def write_rows(rows: BlockRowWriter, block: np.ndarray) -> None:
        masks = (block >= settings.threshold).astype(np.uint8)
        rows.write(apply_pixel_rules(masks, classes, settings.rules))

    try:
        with open_raster(temporary, "w", **profile) as raw:
            rows = BlockRowWriter(raw)
            predict_blended_rows(
                StripReader(dataset, scene.image_id, grid.width, settings.ensemble.inputs),
                grid.height,
                grid.width,
                settings.predict,
                settings.ensemble.patch,
                lambda _, block: write_rows(rows, block),
                overlap=settings.overlap,
                d4_average=settings.d4,
                batch_size=settings.batch_size,
                on_window_row=lambda done, total: progress.advance(tiles_per_strip, scene.image_id),
            )
            rows.close()
        pixels = _finish_scene(temporary, masks_path, profile, scene.image_id, dataset, classes, settings.rules, writer)
    finally:
        temporary.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return ScenePrediction(
        scene.image_id, scene.path, masks_path, (grid.height, grid.width), grid.windows, seconds, pixels
    )


def _checked_scenes(images: Sequence[str | Path], ensemble: Ensemble) -> list[tuple[SceneSource, Any]]:
    """Each scene with its ``DSTLDataset``, every file every model needs checked from the headers; all
    problems as one ``PredictError``, one line per bad path."""
    from trainables.unet.dstl import DSTLDataset, DSTLError

    checked, problems, datasets, seen = [], [], {}, {}
    for image in scene_paths(images):
        try:
            scene = locate_scene(image)
            if scene.root not in datasets:
                datasets[scene.root] = DSTLDataset(scene.root)
            dataset = datasets[scene.root]
            for model_input in ensemble.inputs:
                dataset.check_scene(scene.image_id, model_input.bands, model_input.indices)
        except PredictError as error:
            problems.append(str(error))
            continue
        except DSTLError as error:
            problems.append(f"{image}: {error}")
            continue
        if scene.image_id in seen:
            if seen[scene.image_id] != scene.path.resolve():
                problems.append(f"{image}: image id {scene.image_id} is also {seen[scene.image_id]} (one output each)")
            continue
        seen[scene.image_id] = scene.path.resolve()
        checked.append((scene, dataset))
    if problems:
        raise PredictError("\n".join(problems))
    return checked


def _finish_scene(
    temporary: Path,
    masks_path: Path,
    profile: dict[str, Any],
    image_id: str,
    dataset: Any,
    classes: Sequence[str],
    rules: Rules,
    writer: Any,
) -> dict[str, int]:
    """Per class (one band of ``H * W`` bytes at a time): the ``min_area`` rule, the band into
    ``masks_path`` and its polygons into the submission rows of ``image_id``; masked pixels per class."""
    from trainables.unet.dstl import CLASS_TYPES
    from trainables.unet.wkt import mask_to_wkt

    xmax, ymin = dataset.grid_size(image_id)
    pixels = {}
    partial = masks_path.with_name(f".{masks_path.name}.partial")
    with open_raster(temporary, "r") as raw, open_raster(partial, "w", **profile) as final:
        for name, class_type in CLASS_TYPES.items():  # the output's bands are in this order too
            cell = EMPTY_WKT
            if name in classes:
                band = classes.index(name) + 1
                mask = remove_small_objects(raw.read(band), rules.min_area_of(name))
                final.write(mask, band)
                final.set_band_description(band, name)
                pixels[name] = int(np.count_nonzero(mask))
                cell = mask_to_wkt(mask, xmax, ymin)
            writer.writerow([image_id, class_type, cell])
    os.replace(partial, masks_path)
    return pixels
