"""Read data in the DSTL Satellite Imagery Feature Detection layout::

    three_band/<id>.tif            RGB, (3, H, W) uint16
    sixteen_band/<id>_M.tif        8 multispectral bands, about (8, H/4, W/4)
    sixteen_band/<id>_A.tif        8 SWIR bands, about (8, H/24, W/24)
    sixteen_band/<id>_P.tif        panchromatic, about (H, W)
    train_wkt_v4.csv               ImageId,ClassType,MultipolygonWKT
    grid_sizes.csv                 ImageId,Xmax,Ymin (the real file leaves the first header empty)

A *scene* is one image on the RGB grid: the chosen band groups (M, A, P resized to it,
bilinear), the chosen index channels (from the resized M bands), and one mask per class
rasterized from the WKT with the challenge's coordinate scaling. Index channels are computed
on the M bands scaled to reflectance-like values (``M / 2047``, 11-bit data), as their
constants (EVI's 1, SAVI's 0.5) assume. Decoded scenes are cached
in memory per process and as ``.npz`` files (in ``<root>/.cache`` or, when that is not
writable, the temporary folder), so a trial does not decode TIFFs every epoch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .indices import INDICES, index_channels
from .tiff import read_tiff
from .wkt import wkt_to_mask

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
BANDS = {"rgb": 3, "m": 8, "a": 8, "p": 1}
CACHE_VERSION = 1
M_DN_MAX = 2047.0  # WorldView-3 M bands are 11-bit: indices are computed on M / 2047


class DSTLError(ValueError):
    pass


def resize_bilinear(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize (C, h, w) or (h, w) to ``shape`` with bilinear interpolation (pixel centres
    aligned, edges clamped), in float32."""
    squeeze = array.ndim == 2
    a = np.asarray(array, np.float32)[None] if squeeze else np.asarray(array, np.float32)
    _, h, w = a.shape
    out_h, out_w = shape
    if (h, w) == (out_h, out_w):
        return a[0] if squeeze else a

    def coords(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y0, y1, fy = coords(h, out_h)
    x0, x1, fx = coords(w, out_w)
    rows = a[:, y0] * (1 - fy)[None, :, None] + a[:, y1] * fy[None, :, None]
    out = rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx
    return out[0] if squeeze else out


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
        for required in ("three_band", "train_wkt_v4.csv", "grid_sizes.csv"):
            if not (self.root / required).exists():
                raise DSTLError(f"{self.root}: missing {required} (not a DSTL-layout folder)")

    # --------------------------------------------------------------- tables

    @cached_property
    def _wkt(self) -> dict[tuple[str, int], str]:
        csv.field_size_limit(sys.maxsize)  # real WKT cells exceed the default 128 KiB
        table: dict[tuple[str, int], str] = {}
        with open(self.root / "train_wkt_v4.csv", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[1:3]] != ["ClassType", "MultipolygonWKT"]:
                raise DSTLError(f"{self.root}/train_wkt_v4.csv: unexpected header {header}")
            for row in reader:
                if row:
                    table[(row[0], int(row[1]))] = row[2]
        return table

    @cached_property
    def _grid(self) -> dict[str, tuple[float, float]]:
        sizes: dict[str, tuple[float, float]] = {}
        with open(self.root / "grid_sizes.csv", newline="") as f:
            reader = csv.reader(f)
            next(reader, None)
            for row in reader:
                if row:
                    sizes[row[0]] = (float(row[1]), float(row[2]))
        return sizes

    def image_ids(self) -> list[str]:
        """Images that have labels (in ``train_wkt_v4.csv``), sorted."""
        return sorted({image_id for image_id, _ in self._wkt})

    def grid_size(self, image_id: str) -> tuple[float, float]:
        if image_id not in self._grid:
            raise DSTLError(f"{self.root}/grid_sizes.csv: no row for {image_id}")
        return self._grid[image_id]

    def wkt(self, image_id: str, class_type: int) -> str:
        return self._wkt.get((image_id, class_type), "MULTIPOLYGON EMPTY")

    # --------------------------------------------------------------- images

    def _tif(self, relative: str) -> np.ndarray:
        path = self.root / relative
        if not path.is_file():
            raise DSTLError(f"missing image {path}")
        return read_tiff(path)

    def rgb(self, image_id: str) -> np.ndarray:
        return self._tif(f"three_band/{image_id}.tif")

    def band(self, image_id: str, kind: str) -> np.ndarray:
        """``kind`` in M, A, P: the sixteen_band image as (bands, h, w)."""
        array = self._tif(f"sixteen_band/{image_id}_{kind}.tif")
        return array[None] if array.ndim == 2 else array

    def mask(self, image_id: str, classes: Sequence[str], shape: tuple[int, int]) -> np.ndarray:
        """(classes, H, W) uint8 masks on a grid of ``shape``."""
        xmax, ymin = self.grid_size(image_id)
        return np.stack([wkt_to_mask(self.wkt(image_id, CLASS_TYPES[c]), xmax, ymin, shape) for c in classes]).astype(
            np.uint8
        )

    def decode(self, image_id: str, bands: Sequence[str], indices: Sequence[str], classes: Sequence[str]) -> Scene:
        """Decode one scene from the TIFFs and the WKT (no cache)."""
        rgb = self.rgb(image_id).astype(np.float32)
        shape = rgb.shape[1:]
        parts, names = [], []
        m = None
        for group in bands:
            if group == "rgb":
                parts.append(rgb)
                names += ["r", "g", "b"]
                continue
            array = resize_bilinear(self.band(image_id, group.upper()), shape)
            if group == "m":
                m = array
            parts.append(array)
            names += [f"{group}{i}" for i in range(len(array))]
        if indices:
            if m is None:
                m = resize_bilinear(self.band(image_id, "M"), shape)
            parts.append(index_channels(m / M_DN_MAX, indices))  # on reflectance-like values
            names += list(indices)
        image = np.concatenate(parts).astype(np.float32)
        return Scene(image_id, image, self.mask(image_id, classes, shape), tuple(names), tuple(classes))

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
