"""WKT (multi)polygons -> masks, without shapely: a small parser and an even-odd scanline
fill in numpy; plus the DSTL challenge's geo <-> pixel coordinate scaling.

A pixel (row r, column c) is inside when its centre (c + 0.5, r + 0.5) is inside the
polygon (even-odd rule over exterior and holes), so an axis-aligned rectangle from (x0, y0)
to (x1, y1) with integer corners covers exactly (x1 - x0) * (y1 - y0) pixels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

Ring = np.ndarray  # (n, 2) float64 x, y; closed or not
Polygon = list[Ring]  # exterior first, then holes
MultiPolygon = list[Polygon]

_TOKEN = re.compile(r"\s*(\(|\)|,|[A-Za-z]+|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


class WKTError(ValueError):
    pass


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise WKTError(f"unexpected text at {pos}: {text[pos : pos + 20]!r}")
        tokens.append(match.group(1))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class _Parser:
    def __init__(self, tokens: list[str]):
        self.tokens, self.i = tokens, 0

    def peek(self) -> str:
        return self.tokens[self.i] if self.i < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if expected is not None and token.upper() != expected:
            raise WKTError(f"expected {expected!r}, found {token or 'the end'!r}")
        self.i += 1
        return token

    def ring(self) -> Ring:
        self.take("(")
        points = []
        while True:
            x, y = float(self.take()), float(self.take())
            while self.peek() not in (",", ")"):  # Z or M values: ignored
                if not self.peek():
                    raise WKTError("the geometry ends inside a ring")
                self.take()
            points.append((x, y))
            if self.take() == ")":
                break
        return np.asarray(points, dtype=np.float64)

    def polygon(self) -> Polygon:
        self.take("(")
        rings = [self.ring()]
        while self.take() == ",":
            rings.append(self.ring())
        return rings


def parse_wkt(text: str) -> MultiPolygon:
    """Parse POLYGON / MULTIPOLYGON (also EMPTY, and Z/M coordinates) into polygons."""
    parser = _Parser(_tokens(text))
    kind = parser.take().upper()
    while parser.peek().upper() in ("Z", "M", "ZM"):
        parser.take()
    if parser.peek().upper() == "EMPTY":
        return []
    if kind == "POLYGON":
        polygons = [parser.polygon()]
    elif kind == "MULTIPOLYGON":
        parser.take("(")
        polygons = [parser.polygon()]
        while parser.take() == ",":
            polygons.append(parser.polygon())
    else:
        raise WKTError(f"only POLYGON and MULTIPOLYGON are supported, got {kind!r}")
    if parser.peek():
        raise WKTError(f"unexpected {parser.peek()!r} after the geometry")
    return polygons


def to_wkt(polygons: MultiPolygon, precision: int = 8) -> str:
    """Write polygons as a MULTIPOLYGON (rings closed)."""
    if not polygons:
        return "MULTIPOLYGON EMPTY"

    def ring(points: np.ndarray) -> str:
        pts = np.asarray(points, dtype=np.float64)
        if len(pts) and not np.array_equal(pts[0], pts[-1]):
            pts = np.vstack([pts, pts[:1]])
        return "(" + ", ".join(f"{x:.{precision}g} {y:.{precision}g}" for x, y in pts) + ")"

    return "MULTIPOLYGON (" + ", ".join("(" + ", ".join(ring(r) for r in poly) + ")" for poly in polygons) + ")"


def rasterize(rings: Sequence[np.ndarray], shape: tuple[int, int], groups: Sequence[int] | None = None) -> np.ndarray:
    """Fill rings (pixel coordinates x, y) into a bool mask of ``shape`` (H, W).

    Rings of one group (one polygon: exterior and holes) combine by the even-odd rule;
    groups are unioned (``groups[i]`` is ring i's polygon; all one polygon by default).
    Vectorized: every edge contributes its crossings with pixel-centre rows; per (group,
    row) the sorted crossings pair up into spans, which a difference array fills.
    """
    h, w = shape
    groups = [0] * len(rings) if groups is None else list(groups)
    edges, owners = [], []
    for ring, group in zip(rings, groups, strict=True):
        pts = np.asarray(ring, dtype=np.float64)
        if len(pts) < 3:
            continue
        edges.append(np.hstack([pts, np.roll(pts, -1, axis=0)]))
        owners.append(np.full(len(pts), group, dtype=np.int64))
    if not edges:
        return np.zeros((h, w), dtype=bool)
    e, owner = np.vstack(edges), np.concatenate(owners)
    keep = e[:, 1] != e[:, 3]  # horizontal edges never cross a row centre
    (x0, y0, x1, y1), owner = e[keep].T, owner[keep]
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    # rows r with lo <= r + 0.5 < hi (half-open: a vertex is counted once)
    first = np.clip(np.ceil(lo - 0.5), 0, h).astype(np.int64)
    last = np.clip(np.ceil(hi - 0.5), 0, h).astype(np.int64)
    counts = np.maximum(last - first, 0)
    if counts.sum() == 0:
        return np.zeros((h, w), dtype=bool)
    edge = np.repeat(np.arange(len(counts)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = first[edge] + offsets
    yc = rows + 0.5
    xs = x0[edge] + (yc - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    order = np.lexsort((xs, rows, owner[edge]))
    rows, xs = rows[order], xs[order]
    # each (group, row) holds an even number of crossings: pairs (0, 1), (2, 3), ...
    span_rows, starts, ends = rows[0::2], xs[0::2], xs[1::2]
    c0 = np.clip(np.ceil(starts - 0.5), 0, w).astype(np.int64)  # first centre >= start
    c1 = np.clip(np.ceil(ends - 0.5), 0, w).astype(np.int64)  # first centre >= end
    diff = np.zeros((h, w + 1), dtype=np.int32)
    np.add.at(diff, (span_rows, c0), 1)
    np.add.at(diff, (span_rows, c1), -1)
    return np.cumsum(diff[:, :w], axis=1) > 0  # covered by at least one polygon's span


def rasterize_polygons(polygons: MultiPolygon, shape: tuple[int, int]) -> np.ndarray:
    """A multipolygon (pixel coordinates) to a bool mask; polygons are unioned, so even
    overlapping (invalid) parts, as some DSTL labels have, fill correctly."""
    rings = [ring for polygon in polygons for ring in polygon]
    groups = [i for i, polygon in enumerate(polygons) for _ in polygon]
    return rasterize(rings, shape, groups)


# ----------------------------------------------------------------------------- DSTL scaling


def geo_to_pixel(polygons: MultiPolygon, xmax: float, ymin: float, shape: tuple[int, int]):
    """The challenge's scaling: x' = x / Xmax * W * W / (W + 1), y' = y / Ymin * H * H/(H+1)."""
    h, w = shape
    sx, sy = w * w / (w + 1) / xmax, h * h / (h + 1) / ymin
    return [[ring * np.array([sx, sy]) for ring in polygon] for polygon in polygons]


def pixel_to_geo(polygons: MultiPolygon, xmax: float, ymin: float, shape: tuple[int, int]):
    """The inverse of :func:`geo_to_pixel`."""
    h, w = shape
    sx, sy = w * w / (w + 1) / xmax, h * h / (h + 1) / ymin
    return [[ring / np.array([sx, sy]) for ring in polygon] for polygon in polygons]


def wkt_to_mask(text: str, xmax: float, ymin: float, shape: tuple[int, int]) -> np.ndarray:
    """A DSTL ``MultipolygonWKT`` cell to a bool mask on an (H, W) image grid."""
    return rasterize_polygons(geo_to_pixel(parse_wkt(text), xmax, ymin, shape), shape)
