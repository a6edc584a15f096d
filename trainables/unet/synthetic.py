"""Synthetic scenes written in exactly the DSTL layout, so demos and tests need no download.

Each scene is drawn in pixel coordinates: crop fields (some with holes), trees, ponds,
tracks, roads and buildings, each with its own spectral signature over the 8 M bands
(coastal..NIR2) and 8 SWIR (A) bands, plus illumination drift and noise. The RGB and
panchromatic images are full resolution, M is 4x and A 16x coarser, as in the challenge.
The labels are written as WKT in the challenge's geo coordinates (``grid_sizes.csv``), and the
GeoTIFFs carry the matching georeferencing (pixel size from the challenge's scaling, no CRS).
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine
from shapely.geometry import MultiPolygon, Polygon

from .dstl import CLASS_TYPES, relative_path
from .wkt import grid_scale, pixel_to_geo, rasterize_polygons, to_wkt

# reflectance in [0, 1]: M bands (coastal, blue, green, yellow, red, red edge, NIR1, NIR2)
# then a flat-ish SWIR level for the A bands
SIGNATURES: dict[str, tuple[list[float], float]] = {
    "background": ([0.20, 0.22, 0.25, 0.28, 0.30, 0.32, 0.35, 0.36], 0.40),
    "crops": ([0.08, 0.10, 0.18, 0.16, 0.12, 0.35, 0.60, 0.62], 0.30),
    "trees": ([0.05, 0.06, 0.10, 0.08, 0.05, 0.25, 0.48, 0.50], 0.18),
    "water": ([0.12, 0.16, 0.13, 0.08, 0.05, 0.03, 0.02, 0.02], 0.02),
    "tracks": ([0.30, 0.33, 0.37, 0.42, 0.46, 0.47, 0.48, 0.48], 0.55),
    "roads": ([0.30, 0.32, 0.33, 0.33, 0.33, 0.33, 0.33, 0.33], 0.45),
    "buildings": ([0.50, 0.55, 0.58, 0.60, 0.62, 0.62, 0.62, 0.62], 0.65),
}
PAINT_ORDER = ("crops", "trees", "water", "tracks", "roads", "buildings")
M_FACTOR, A_FACTOR = 4, 16
COARSER_BY = {"rgb": 1, "p": 1, "m": M_FACTOR, "a": A_FACTOR}  # band group -> grid factor
MAX_11BIT, MAX_14BIT = 2047, 16383


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _blob(cx: float, cy: float, radius: float, rng: np.random.Generator, n: int = 14):
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.7, 1.15, n)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)


def _band(size: int, width: float, rng: np.random.Generator) -> np.ndarray:
    """A straight strip crossing the scene at a random angle."""
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    centre = rng.uniform(0.2 * size, 0.8 * size, 2)
    a, b = centre - direction * 2 * size, centre + direction * 2 * size
    half = normal * width / 2
    return np.stack([a - half, b - half, b + half, a + half])


def scene_polygons(size: int, rng: np.random.Generator) -> dict[str, MultiPolygon]:
    """Pixel-coordinate polygons per class for one ``size`` x ``size`` scene (parts may overlap)."""
    s = size
    crops = []
    for _ in range(rng.integers(1, 4)):
        x0, y0 = rng.uniform(0, 0.6 * s, 2)
        w, h = rng.uniform(0.2 * s, 0.45 * s, 2)
        holes = []
        if rng.random() < 0.5:  # a hole (e.g. a farmyard) in the field
            holes.append(_rect(x0 + w / 3, y0 + h / 3, x0 + w / 2, y0 + h / 2))
        crops.append(Polygon(_rect(x0, y0, x0 + w, y0 + h), holes))
    trees = [Polygon(_blob(*rng.uniform(0, s, 2), rng.uniform(2.5, 6), rng)) for _ in range(rng.integers(4, 14))]
    water = [
        Polygon(_blob(*rng.uniform(0.15 * s, 0.85 * s, 2), rng.uniform(6, 0.15 * s), rng))
        for _ in range(rng.integers(0, 3))
    ]
    tracks = [Polygon(_band(s, rng.uniform(1.5, 2.5), rng)) for _ in range(rng.integers(0, 2))]
    roads = [Polygon(_band(s, rng.uniform(3, 5), rng)) for _ in range(rng.integers(1, 3))]
    buildings = []
    for _ in range(rng.integers(3, 10)):
        x0, y0 = rng.integers(0, s - 12, 2)
        w, h = rng.integers(4, 12, 2)
        buildings.append(Polygon(_rect(x0, y0, x0 + w, y0 + h)))
    parts = {"crops": crops, "trees": trees, "water": water, "tracks": tracks, "roads": roads, "buildings": buildings}
    return {name: MultiPolygon(polygons) for name, polygons in parts.items()}


def render(polygons: dict[str, MultiPolygon], size: int, rng: np.random.Generator):
    """Reflectance images (8 M-like bands and 1 SWIR level) at full resolution."""
    m = np.empty((8, size, size), np.float32)
    swir = np.empty((size, size), np.float32)
    m[:] = np.array(SIGNATURES["background"][0], np.float32)[:, None, None]
    swir[:] = SIGNATURES["background"][1]
    for name in PAINT_ORDER:
        inside = rasterize_polygons(polygons[name], (size, size))
        bands, level = SIGNATURES[name]
        m[:, inside] = np.array(bands, np.float32)[:, None]
        swir[inside] = level
        if name == "crops":  # rows of a crop field
            stripes = (np.arange(size) % 4 < 2)[None, :] & inside
            m[:, stripes] *= 0.9
    yy, xx = np.mgrid[0:size, 0:size] / size
    light = 1 + 0.15 * np.sin(2 * np.pi * (xx * rng.uniform(0.5, 1.5) + yy * rng.uniform(0.5, 1.5)))
    return m * light, swir * light


def _pool(array: np.ndarray, factor: int) -> np.ndarray:
    c, h, w = array.shape
    return array.reshape(c, h // factor, factor, w // factor, factor).mean(axis=(2, 4))


def _to_uint(array: np.ndarray, scale: int, noise: float, rng: np.random.Generator):
    noisy = array + rng.normal(0, noise, array.shape)
    return np.clip(np.round(noisy * scale), 0, scale).astype(np.uint16)


def write_geotiff(path: str | Path, array: np.ndarray, transform: Affine | None = None) -> Path:
    """Write (H, W) or (bands, H, W) as an uncompressed GeoTIFF, one band per plane; ``transform``
    maps pixel (column, row) to geo coordinates (none: pixel coordinates, not georeferenced)."""
    path = Path(path)
    planes = np.asarray(array)
    planes = planes[None] if planes.ndim == 2 else planes
    if planes.ndim != 3:
        raise ValueError(f"expected (H, W) or (bands, H, W), got shape {np.shape(array)}")
    count, height, width = planes.shape
    profile = {"driver": "GTiff", "count": count, "height": height, "width": width, "dtype": planes.dtype}
    if transform is not None:
        profile["transform"] = transform
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # no transform: meant to be in pixels
        with rasterio.open(path, "w", **profile, interleave="band") as out:
            out.write(planes)
    return path


def dstl_transform(xmax: float, ymin: float, shape: tuple[int, int], factor: int = 1) -> Affine:
    """Georeferencing of a grid ``factor`` times coarser than the (H, W) RGB grid, in the
    challenge's geo units (the inverse of its pixel scaling on the RGB grid)."""
    sx, sy = grid_scale(xmax, ymin, shape)
    return Affine.scale(factor / sx, factor / sy)


def write_synthetic_dstl(
    root: str | Path, *, scenes: int = 8, size: int = 128, seed: int = 0, noise: float = 0.03
) -> Path:
    """Write ``scenes`` scenes of ``size`` x ``size`` pixels into ``root`` (DSTL layout)."""
    if size % A_FACTOR:
        raise ValueError(f"scene size {size} must be a multiple of {A_FACTOR}")
    root = Path(root)
    (root / "three_band").mkdir(parents=True, exist_ok=True)
    (root / "sixteen_band").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    labels, grid = [], []
    for i in range(scenes):
        image_id = f"6{i // 25:03d}_{i % 25 // 5}_{i % 5}"
        polygons = scene_polygons(size, rng)
        m, swir = render(polygons, size, rng)
        rgb = m[[4, 2, 1]]
        a = _pool(np.repeat(swir[None], 8, axis=0), A_FACTOR)
        a *= np.linspace(0.9, 1.1, 8, dtype=np.float32)[:, None, None]  # a gentle SWIR slope
        images = {  # band group: pixels; the noise is drawn in this order
            "rgb": _to_uint(rgb, MAX_11BIT, noise, rng),
            "p": _to_uint(rgb.mean(0), MAX_11BIT, noise, rng),
            "m": _to_uint(_pool(m, M_FACTOR), MAX_11BIT, noise, rng),
            "a": _to_uint(a, MAX_14BIT, noise, rng),
        }
        xmax, ymin = rng.uniform(0.0090, 0.0094), -rng.uniform(0.0088, 0.0092)
        grid.append((image_id, f"{xmax:.6f}", f"{ymin:.6f}"))
        xmax, ymin = float(grid[-1][1]), float(grid[-1][2])  # what the reader will see
        for group, pixels in images.items():
            transform = dstl_transform(xmax, ymin, (size, size), COARSER_BY[group])
            write_geotiff(root / relative_path(image_id, group), pixels, transform)
        for name, class_type in CLASS_TYPES.items():
            geo = pixel_to_geo(polygons.get(name, MultiPolygon()), xmax, ymin, (size, size))
            labels.append((image_id, class_type, to_wkt(geo, precision=12)))
    with open(root / "train_wkt_v4.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "ClassType", "MultipolygonWKT"])
        writer.writerows(labels)
    with open(root / "grid_sizes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["", "Xmax", "Ymin"])  # as in the challenge's file
        writer.writerows(grid)
    return root


def synthetic_root(*, scenes: int = 8, size: int = 128, seed: int = 0) -> Path:
    """A shared synthetic dataset folder (made once; concurrent trials race safely).

    Lives under ``$DSTL_SYNTHETIC_DIR`` or the temporary folder.
    """
    base = Path(os.environ.get("DSTL_SYNTHETIC_DIR", Path(tempfile.gettempdir()) / "dstl-synth"))
    target = base / f"scenes{scenes}-size{size}-seed{seed}-v2"  # v2: GeoTIFFs written by rasterio
    if (target / "grid_sizes.csv").is_file():
        return target
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=base))
    write_synthetic_dstl(staging, scenes=scenes, size=size, seed=seed)
    try:
        os.rename(staging, target)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    return target
