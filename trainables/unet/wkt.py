"""WKT multipolygons <-> masks with shapely and ``rasterio.features``, and the DSTL challenge's
geo <-> pixel coordinate scaling.

Geometries are shapely ``MultiPolygon``s (a ``POLYGON`` is read as a one-part multipolygon).
Pixel coordinates put pixel (row i, column j) over [j, j + 1) x [i, i + 1); a pixel is inside
when its centre (j + 0.5, i + 0.5) is (``all_touched=False``), so an axis-aligned rectangle
with integer corners from (x0, y0) to (x1, y1) covers exactly (x1 - x0) * (y1 - y0) pixels.
Within a polygon, exterior and holes combine by the even-odd rule; the parts of a multipolygon
are unioned, so overlapping (invalid) parts, as some DSTL labels have, still fill correctly.
"""

from __future__ import annotations

import numpy as np
import shapely
from rasterio import features
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

# simplification of mask outlines (pixels): the staircase of pixel edges becomes straight
# lines that stay within this distance of it; 0 keeps the exact pixel outline
DEFAULT_SIMPLIFY_TOLERANCE = 0.5
# decimals of coordinates written in DSTL geo units: a pixel of a 3349-pixel scene (Xmax ~
# 0.0092) is ~2.7e-6, so 8 decimals place vertices within ~0.004 pixel
GEO_DECIMALS = 8


class WKTError(ValueError):
    pass


def as_multipolygon(geometry: BaseGeometry) -> MultiPolygon:
    """The polygonal parts of ``geometry`` as one ``MultiPolygon`` (empty for an empty one).

    Points and lines are refused (``WKTError``), except inside a collection, where the
    lower-dimensional leftovers of repairing a geometry are dropped."""
    if isinstance(geometry, MultiPolygon):
        return geometry
    if isinstance(geometry, Polygon):
        return MultiPolygon([geometry]) if not geometry.is_empty else MultiPolygon()
    if geometry.is_empty:
        return MultiPolygon()
    if geometry.geom_type != "GeometryCollection":
        raise WKTError(f"only POLYGON and MULTIPOLYGON are supported, got {geometry.geom_type.upper()}")
    return MultiPolygon([p for part in geometry.geoms if part.area > 0 for p in as_multipolygon(part).geoms])


def parse_wkt(text: str) -> MultiPolygon:
    """Parse POLYGON / MULTIPOLYGON (also EMPTY and Z coordinates, which are dropped); rings
    left open are closed."""
    try:
        geometry = shapely.from_wkt(text, on_invalid="fix")
    except GEOSException as error:
        raise WKTError(f"unreadable WKT ({error})") from None
    if geometry is None:  # what "fix" returns for text it cannot parse
        raise WKTError(f"unreadable WKT: {text[:60]!r}")
    return as_multipolygon(shapely.force_2d(geometry))


def to_wkt(geometry: BaseGeometry, precision: int = GEO_DECIMALS) -> str:
    """Write a (multi)polygon as a MULTIPOLYGON, coordinates rounded to ``precision`` decimals."""
    return shapely.to_wkt(as_multipolygon(geometry), rounding_precision=precision, trim=True, output_dimension=2)


def rasterize_polygons(geometry: BaseGeometry, shape: tuple[int, int]) -> np.ndarray:
    """A (multi)polygon in pixel coordinates to a bool mask of ``shape`` (H, W), by pixel centre."""
    parts = [part for part in as_multipolygon(geometry).geoms if not part.is_empty]
    if not parts:
        return np.zeros(shape, dtype=bool)
    # one shape per part: rasterio burns each on its own, which unions overlapping parts
    burned = features.rasterize([(part, 1) for part in parts], out_shape=shape, all_touched=False, dtype=np.uint8)
    return burned.astype(bool)


def mask_to_polygons(mask: np.ndarray, tolerance: float = DEFAULT_SIMPLIFY_TOLERANCE) -> MultiPolygon:
    """The inverse of :func:`rasterize_polygons`: a bool (H, W) mask to a valid multipolygon in
    pixel coordinates, its pixel outlines simplified within ``tolerance`` pixels."""
    inside = np.asarray(mask, dtype=bool)
    if not inside.any():
        return MultiPolygon()
    outlines = [shapely.geometry.shape(g) for g, _ in features.shapes(inside.astype(np.uint8), mask=inside)]
    exact = shapely.union_all(outlines)  # 4-connected regions: parts touch at most at corners
    # one simplification of all the linework keeps neighbouring parts from crossing
    simplified = shapely.simplify(exact, tolerance, preserve_topology=True) if tolerance > 0 else exact
    return as_multipolygon(shapely.make_valid(simplified, method="structure", keep_collapsed=False))


# ----------------------------------------------------------------------------- DSTL scaling


def grid_scale(xmax: float, ymin: float, shape: tuple[int, int]) -> tuple[float, float]:
    """Pixels per geo unit (x, y) of the challenge's scaling on an (H, W) grid:
    x' = x / Xmax * W', y' = y / Ymin * H' with W' = W * W / (W + 1), H' = H * H / (H + 1)."""
    h, w = shape
    return w * w / (w + 1) / xmax, h * h / (h + 1) / ymin


def geo_to_pixel(geometry: BaseGeometry, xmax: float, ymin: float, shape: tuple[int, int]) -> MultiPolygon:
    """DSTL geo coordinates (``grid_sizes.csv``'s Xmax, Ymin) to pixel coordinates on (H, W)."""
    scale = np.array(grid_scale(xmax, ymin, shape))
    return as_multipolygon(shapely.transform(geometry, lambda xy: xy * scale))


def pixel_to_geo(geometry: BaseGeometry, xmax: float, ymin: float, shape: tuple[int, int]) -> MultiPolygon:
    """The inverse of :func:`geo_to_pixel`."""
    scale = np.array(grid_scale(xmax, ymin, shape))
    return as_multipolygon(shapely.transform(geometry, lambda xy: xy / scale))


def wkt_to_mask(text: str, xmax: float, ymin: float, shape: tuple[int, int]) -> np.ndarray:
    """A DSTL ``MultipolygonWKT`` cell to a bool mask on an (H, W) image grid."""
    return rasterize_polygons(geo_to_pixel(parse_wkt(text), xmax, ymin, shape), shape)


def mask_to_wkt(
    mask: np.ndarray,
    xmax: float,
    ymin: float,
    tolerance: float = DEFAULT_SIMPLIFY_TOLERANCE,
    precision: int = GEO_DECIMALS,
) -> str:
    """A bool (H, W) mask to a DSTL ``MultipolygonWKT`` cell (geo coordinates, the submission's
    layout): the inverse of :func:`wkt_to_mask`, outlines simplified within ``tolerance`` pixels."""
    geometry = pixel_to_geo(mask_to_polygons(mask, tolerance), xmax, ymin, np.shape(mask))
    return to_wkt(geometry, precision)
