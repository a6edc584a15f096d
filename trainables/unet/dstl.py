"""Read data in the DSTL Satellite Imagery Feature Detection layout::

    three_band/<id>.tif            RGB, (3, H, W) uint16
    sixteen_band/<id>_M.tif        8 multispectral bands, about (8, H/4, W/4)
    sixteen_band/<id>_A.tif        8 SWIR bands, about (8, H/24, W/24)
    sixteen_band/<id>_P.tif        panchromatic, about (H, W)
    train_wkt_v4.csv               ImageId,ClassType,MultipolygonWKT
    grid_sizes.csv                 ImageId,Xmax,Ymin (the real file leaves the first header empty)

A *scene* is one image on the RGB grid: the chosen band groups (M, A, P resampled to it,
bilinear, on read), the chosen index channels (from the resampled M bands), and one mask per
class rasterized from the WKT with the challenge's coordinate scaling. Index channels are
computed on the M bands scaled to reflectance-like values (``M / 2047``, 11-bit data), as their
constants (EVI's 1, SAVI's 0.5) assume.

Images are read with rasterio, by window: :meth:`DSTLDataset.read_window` reads any window of
the RGB grid from every file it needs (the M and A bands through the matching, fractional,
window of their coarser grid, ``out_shape`` + bilinear resampling), and a whole scene is
decoded in blocks of rows into its output array, so the 24 channels of a scene are never held
twice. Decoded scenes are cached in memory per process and as ``.npz`` files (in
``<root>/.cache`` or, when that is not writable, the temporary folder), so a trial does not
decode TIFFs every epoch. Every problem with the folder or a file is a one-line ``DSTLError``
naming the file; :meth:`DSTLDataset.check_scene` finds them from the headers alone.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from trainables.api import first_line

from .indices import INDICES, index_channels
from .wkt import WKTError, wkt_to_mask

CLASS_TYPES = {
    "buildings": 1,
    "structures": 2,
    "roads": 3,
    "tracks": 4,
    "trees": 5,
    "crops": 6,
    "waterway": 7,
    "water": 8,
    "vehicles_large": 9,
    "vehicles_small": 10,
}
BANDS = {"rgb": 3, "m": 8, "a": 8, "p": 1}  # band group -> bands its file must have
CACHE_VERSION = 2  # 2: read through rasterio (GDAL's bilinear resampling)
M_DN_MAX = 2047.0  # WorldView-3 M bands are 11-bit: indices are computed on M / 2047
WINDOW_ROWS = 256  # rows of the RGB grid decoded at a time
MIN_LABELLED_IMAGES = 2  # one to train on, one to validate on
REQUIRED_ENTRIES = ("three_band", "train_wkt_v4.csv", "grid_sizes.csv")


class DSTLError(ValueError):
    """A problem with a DSTL-layout folder or one of its files, in one line naming it."""


@dataclass(frozen=True)
class Header:
    """What a GeoTIFF's header says: bands, grid and sample type."""

    count: int
    height: int
    width: int
    dtype: str


def relative_path(image_id: str, group: str) -> str:
    """Where the layout keeps a band group's (``rgb``, ``m``, ``a``, ``p``) file of an image."""
    if group == "rgb":
        return f"three_band/{image_id}.tif"
    return f"sixteen_band/{image_id}_{group.upper()}.tif"


def groups_needed(bands: Sequence[str], indices: Sequence[str]) -> list[str]:
    """The band groups whose files a scene with ``bands`` and ``indices`` reads: always the RGB
    image (it defines the grid), M for the index channels."""
    needed = ["rgb", *bands, *(["m"] if indices else [])]
    return list(dict.fromkeys(needed))


def channel_names(bands: Sequence[str], indices: Sequence[str]) -> tuple[str, ...]:
    """The channels of a scene, in order: each group's bands, then the index channels."""
    names: list[str] = []
    for group in bands:
        names += ["r", "g", "b"] if group == "rgb" else [f"{group}{i}" for i in range(BANDS[group])]
    return (*names, *indices)


def row_windows(shape: tuple[int, int], rows: int) -> Iterator[Window]:
    """Windows of ``rows`` full rows covering an (H, W) grid, top to bottom."""
    height, width = shape
    for row in range(0, height, rows):
        yield Window(0, row, width, min(rows, height - row))


@dataclass(frozen=True)
class Scene:
    image_id: str
    image: np.ndarray  # (channels, H, W) float32
    mask: np.ndarray  # (classes, H, W) uint8
    channels: tuple[str, ...]
    classes: tuple[str, ...]


class DSTLDataset:
    """Random access to one folder in the DSTL layout."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DSTLError(f"{self.root}: no such dataset folder")
        for required in REQUIRED_ENTRIES:
            if not (self.root / required).exists():
                raise DSTLError(f"{self.root}: missing {required} (not a DSTL-layout folder)")

    # --------------------------------------------------------------- tables

    @cached_property
    def _wkt(self) -> dict[tuple[str, int], str]:
        csv.field_size_limit(sys.maxsize)  # real WKT cells exceed the default 128 KiB
        table: dict[tuple[str, int], str] = {}
        path = self.root / "train_wkt_v4.csv"
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[1:3]] != ["ClassType", "MultipolygonWKT"]:
                raise DSTLError(f"{path}: unexpected header {header}")
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    table[(row[0], int(row[1]))] = row[2]
                except (IndexError, ValueError):
                    raise DSTLError(f"{path}:{line}: expected ImageId,ClassType,MultipolygonWKT") from None
        return table

    @cached_property
    def _grid(self) -> dict[str, tuple[float, float]]:
        sizes: dict[str, tuple[float, float]] = {}
        path = self.root / "grid_sizes.csv"
        with open(path, newline="") as f:
            reader = csv.reader(f)
            next(reader, None)
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    sizes[row[0]] = (float(row[1]), float(row[2]))
                except (IndexError, ValueError):
                    raise DSTLError(f"{path}:{line}: expected ImageId,Xmax,Ymin") from None
        return sizes

    def image_ids(self) -> list[str]:
        """Images that have labels (in ``train_wkt_v4.csv``), sorted."""
        return sorted({image_id for image_id, _ in self._wkt})

    def labelled_ids(self) -> list[str]:
        """:meth:`image_ids`, refusing a folder with too few to split into training and validation."""
        ids = self.image_ids()
        if len(ids) < MIN_LABELLED_IMAGES:
            found = f"found {len(ids)}"
            raise DSTLError(f"{self.root}: need at least {MIN_LABELLED_IMAGES} labelled images to split, {found}")
        return ids

    def split(self, validation_fraction: float, split_seed: int) -> tuple[list[str], list[str]]:
        """(training, validation) image ids: a seeded permutation, at least one image in each."""
        ids = self.labelled_ids()
        order = np.random.default_rng(split_seed).permutation(len(ids))
        n_val = min(max(1, round(len(ids) * validation_fraction)), len(ids) - 1)
        shuffled = [ids[i] for i in order]
        return shuffled[n_val:], shuffled[:n_val]

    def grid_size(self, image_id: str) -> tuple[float, float]:
        if image_id not in self._grid:
            raise DSTLError(f"{self.root}/grid_sizes.csv: no row for {image_id}")
        return self._grid[image_id]

    def wkt(self, image_id: str, class_type: int) -> str:
        return self._wkt.get((image_id, class_type), "MULTIPOLYGON EMPTY")

    # --------------------------------------------------------------- images

    def path(self, image_id: str, group: str) -> Path:
        """The file of a band group (``rgb``, ``m``, ``a``, ``p``) of an image."""
        return self.root / relative_path(image_id, group)

    @contextmanager
    def open(self, image_id: str, group: str) -> Iterator[DatasetReader]:
        """The group's GeoTIFF, opened (headers read) and checked: it exists, GDAL reads it, it has
        the group's band count."""
        path = self.path(image_id, group)
        if not path.is_file():
            raise DSTLError(f"missing image {path}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)  # DSTL geo units are no CRS
                source = rasterio.open(path)
        except RasterioError as error:
            raise DSTLError(f"{path}: unreadable GeoTIFF ({first_line(error)})") from None
        with source:
            if source.count != BANDS[group]:
                raise DSTLError(f"{path}: {source.count} bands, expected {BANDS[group]} ({group})")
            yield source

    def header(self, image_id: str, group: str) -> Header:
        """The group's file's header (no pixel data read)."""
        with self.open(image_id, group) as source:
            return Header(source.count, source.height, source.width, source.dtypes[0])

    def grid_shape(self, image_id: str) -> tuple[int, int]:
        """(H, W) of the image's RGB grid, the grid of its scene."""
        header = self.header(image_id, "rgb")
        return header.height, header.width

    def check_scene(self, image_id: str, bands: Sequence[str], indices: Sequence[str]) -> None:
        """Everything a scene would read, checked from the headers alone: its ``grid_sizes.csv``
        row, and for each file it needs that it opens, has its band count and is not cut short."""
        self.grid_size(image_id)
        for group in groups_needed(bands, indices):
            with self.open(image_id, group) as source:
                _check_complete(source)

    def read_window(self, image_id: str, window: Window, bands: Sequence[str], indices: Sequence[str]) -> np.ndarray:
        """The scene's channels (:func:`channel_names`) over ``window`` of its RGB grid,
        (channels, rows, columns) float32: only that window is read from each file."""
        with self._sources(image_id, groups_needed(bands, indices)) as sources:
            return _read_channels(sources, window, bands, indices)

    def mask(self, image_id: str, classes: Sequence[str], shape: tuple[int, int]) -> np.ndarray:
        """(classes, H, W) uint8 masks on a grid of ``shape``."""
        xmax, ymin = self.grid_size(image_id)
        masks = np.zeros((len(classes), *shape), np.uint8)
        for i, name in enumerate(classes):
            try:
                masks[i] = wkt_to_mask(self.wkt(image_id, CLASS_TYPES[name]), xmax, ymin, shape)
            except WKTError as error:
                raise DSTLError(f"{self.root}/train_wkt_v4.csv: {image_id} class {name}: {error}") from None
        return masks

    def decode(self, image_id: str, bands: Sequence[str], indices: Sequence[str], classes: Sequence[str]) -> Scene:
        """Decode one scene from the GeoTIFFs and the WKT (no cache), ``WINDOW_ROWS`` rows at a time
        into the scene's array."""
        shape = self.grid_shape(image_id)
        names = channel_names(bands, indices)
        image = np.empty((len(names), *shape), np.float32)
        with self._sources(image_id, groups_needed(bands, indices)) as sources:
            for window in row_windows(shape, WINDOW_ROWS):
                rows = slice(window.row_off, window.row_off + window.height)
                image[:, rows] = _read_channels(sources, window, bands, indices)
        return Scene(image_id, image, self.mask(image_id, classes, shape), names, tuple(classes))

    @contextmanager
    def _sources(self, image_id: str, groups: Sequence[str]) -> Iterator[dict[str, DatasetReader]]:
        with ExitStack() as stack:
            yield {group: stack.enter_context(self.open(image_id, group)) for group in groups}

    def scene(self, image_id: str, bands: Sequence[str], indices: Sequence[str], classes: Sequence[str]) -> Scene:
        """A scene, from the in-process or on-disk cache when possible."""
        key = (str(self.root.resolve()), image_id, tuple(bands), tuple(indices), tuple(classes))
        if key in _MEMORY:
            return _MEMORY[key]
        path = self._cache_path(key)
        scene = _read_cache(path, image_id) if path is not None else None
        if scene is None:
            scene = self.decode(image_id, bands, indices, classes)
            if path is not None:
                _write_cache(path, scene)
        _MEMORY[key] = scene
        return scene

    def _cache_path(self, key: tuple) -> Path | None:
        sources = [self.root / "train_wkt_v4.csv", self.root / "three_band" / f"{key[1]}.tif"]
        stamp = [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sources if p.exists()]
        digest = hashlib.sha1(json.dumps([CACHE_VERSION, key, stamp]).encode()).hexdigest()[:16]
        for folder in (self.root / ".cache", Path(tempfile.gettempdir()) / "dstl-cache"):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                if os.access(folder, os.W_OK):
                    return folder / f"{key[1]}-{digest}.npz"
            except OSError:
                continue
        return None


def _read_resampled(source: DatasetReader, grid: tuple[int, int], window: Window) -> np.ndarray:
    """``window`` of the (H, W) RGB grid from ``source``, on that grid: a coarser file is read
    through the same area of its own grid (a fractional window) and resampled bilinearly."""
    height, width = grid
    if (source.height, source.width) != grid:
        fy, fx = source.height / height, source.width / width
        area = Window(window.col_off * fx, window.row_off * fy, window.width * fx, window.height * fy)
    else:
        area = window
    out_shape = (source.count, int(window.height), int(window.width))
    try:
        return source.read(window=area, out_shape=out_shape, resampling=Resampling.bilinear, out_dtype=np.float32)
    except RasterioError as error:
        raise DSTLError(f"{source.name}: unreadable GeoTIFF ({first_line(error)}; truncated?)") from None


def _read_channels(
    sources: dict[str, DatasetReader], window: Window, bands: Sequence[str], indices: Sequence[str]
) -> np.ndarray:
    """The channels of :func:`channel_names` over ``window`` from the opened files of one scene."""
    grid = (sources["rgb"].height, sources["rgb"].width)
    read = {group: _read_resampled(sources[group], grid, window) for group in groups_needed(bands, indices)}
    parts = [read[group] for group in bands]
    if indices:
        parts.append(index_channels(read["m"] / M_DN_MAX, indices).astype(np.float32))  # on reflectance-like values
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _check_complete(source: DatasetReader) -> None:
    """Refuse a file cut short, from its header: each band's last block must lie inside the file
    (GDAL states the block offsets of a TIFF; other formats are not checked)."""
    rows, columns = source.block_shapes[0]
    last = f"{-(-source.width // columns) - 1}_{-(-source.height // rows) - 1}"
    size = Path(source.name).stat().st_size
    for band in source.indexes:
        offset = source.get_tag_item(f"BLOCK_OFFSET_{last}", "TIFF", bidx=band)
        length = source.get_tag_item(f"BLOCK_SIZE_{last}", "TIFF", bidx=band)
        if offset is not None and length is not None and int(offset) + int(length) > size:
            raise DSTLError(f"{source.name}: truncated GeoTIFF (band {band} ends past the file's {size} bytes)")


_MEMORY: dict[tuple, Scene] = {}


def clear_memory_cache() -> None:
    _MEMORY.clear()


def _read_cache(path: Path, image_id: str) -> Scene | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            return Scene(image_id, z["image"], z["mask"], tuple(z["channels"].tolist()), tuple(z["classes"].tolist()))
    except (OSError, KeyError, ValueError):
        return None  # a partial or stale file: decode again


def _write_cache(path: Path, scene: Scene) -> None:
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(
        tmp, image=scene.image, mask=scene.mask, channels=np.array(scene.channels), classes=np.array(scene.classes)
    )
    os.replace(tmp, path)  # atomic: concurrent trials never see a half-written cache


def check_names(bands: Sequence[str], indices: Sequence[str], classes: Sequence[str]) -> None:
    for name in bands:
        if name not in BANDS:
            raise DSTLError(f"unknown band group {name!r}; expected some of {', '.join(BANDS)}")
    for name in indices:
        if name not in INDICES:
            raise DSTLError(f"unknown index {name!r}; expected some of {', '.join(INDICES)}")
    for name in classes:
        if name not in CLASS_TYPES:
            raise DSTLError(f"unknown class {name!r}; expected some of {', '.join(CLASS_TYPES)}")
