"""WKT parsing, exact polygon rasterization, the DSTL coordinate scaling, mask -> WKT."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon

from trainables.unet.wkt import (
    WKTError,
    geo_to_pixel,
    grid_scale,
    mask_to_polygons,
    mask_to_wkt,
    parse_wkt,
    pixel_to_geo,
    rasterize_polygons,
    to_wkt,
    wkt_to_mask,
)

SQUARE_WITH_HOLE = "POLYGON ((2 3, 10 3, 10 7, 2 7, 2 3), (4 4, 6 4, 6 6, 4 6, 4 4))"


def test_parse_polygon_multipolygon_empty_and_z():
    (poly,) = parse_wkt(SQUARE_WITH_HOLE).geoms
    assert len(poly.interiors) == 1 and len(poly.exterior.coords) == 5 and poly.interiors[0].coords[1] == (6, 4)
    multi = parse_wkt("MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5), (1e-1 2E2, -3.5 .5, 1 1)))")
    assert [len(p.interiors) for p in multi.geoms] == [0, 1] and multi.geoms[1].interiors[0].coords[0] == (0.1, 200.0)
    assert parse_wkt("MULTIPOLYGON EMPTY").is_empty and parse_wkt("POLYGON EMPTY").is_empty
    (z,) = parse_wkt("POLYGON Z ((0 0 1, 4 0 1, 4 4 1, 0 0 1))").geoms
    assert list(z.exterior.coords) == [(0, 0), (4, 0), (4, 4), (0, 0)] and not z.has_z


@pytest.mark.parametrize("bad", ["POINT (1 2)", "POLYGON ((0 0, 1 1", "POLYGON ((0 0, 1 1)) x", "POLYGON ((a b))"])
def test_parse_errors(bad):
    with pytest.raises((WKTError, ValueError)):
        parse_wkt(bad)


def test_rectangle_and_hole_pixel_counts_are_exact():
    mask = rasterize_polygons(parse_wkt(SQUARE_WITH_HOLE), (12, 12))
    assert mask.sum() == 8 * 4 - 2 * 2
    assert mask[3:7, 2:10].sum() == 28 and not mask[4:6, 4:6].any()
    rect_only = rasterize_polygons(parse_wkt("POLYGON ((2 3, 10 3, 10 7, 2 7))"), (12, 12))
    assert rect_only.sum() == 32 and rect_only[3:7, 2:10].all()


def test_triangle_counts_pixel_centres():
    # centre (c + .5, r + .5) inside x + y < 10.5  <=>  c + r <= 9: 55 pixels
    mask = rasterize_polygons(parse_wkt("POLYGON ((0 0, 10.5 0, 0 10.5, 0 0))"), (20, 20))
    assert mask.sum() == 55
    rows, cols = np.nonzero(mask)
    assert (rows + cols).max() == 9


def test_multipolygon_parts_clipping_and_orientation():
    text = (
        "MULTIPOLYGON (((0 0, 3 0, 3 3, 0 3, 0 0)), ((10 10, 10 6, 6 6, 6 10, 10 10)), "
        "((-5 -5, 2 -5, 2 1, -5 1, -5 -5)))"
    )
    mask = rasterize_polygons(parse_wkt(text), (8, 8))
    # 9 + the clockwise square clipped to 2x2; the part reaching outside is clipped to
    # rows 0 and columns 0-1 and overlaps the first square: parts are unioned, not XORed
    assert mask.sum() == 9 + 4 and mask[0, :3].all()
    assert mask[6:8, 6:8].all()


def test_against_shapely_on_random_polygons():
    shapely = pytest.importorskip("shapely")
    rng = np.random.default_rng(0)
    checked = 0
    while checked < 20:
        angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
        radii = rng.uniform(4, 14, 9)
        ring = np.stack([20 + radii * np.cos(angles), 20 + radii * np.sin(angles)], 1)
        hole = (ring - 20) * 0.2 + 20
        polygon = shapely.Polygon(ring, [hole])
        if not polygon.is_valid:
            continue
        checked += 1
        ys, xs = np.mgrid[0:40, 0:40] + 0.5
        expected = shapely.contains_xy(polygon, xs, ys)
        assert np.array_equal(rasterize_polygons(polygon, (40, 40)), expected)


def test_round_trip_through_text():
    polygons = parse_wkt(SQUARE_WITH_HOLE)
    again = parse_wkt(to_wkt(polygons))
    assert again.equals_exact(polygons, 0) and to_wkt(polygons).startswith("MULTIPOLYGON (((2 3, 10 3")
    assert to_wkt(MultiPolygon()) == "MULTIPOLYGON EMPTY"


def test_dstl_scaling_follows_the_challenge_formula():
    xmax, ymin, h, w = 0.00918, -0.00904, 100, 120
    geo = Polygon([(0.004, -0.002), (0.008, -0.006), (0.004, -0.006)])
    ring = shapely.get_coordinates(geo_to_pixel(geo, xmax, ymin, (h, w)))
    assert ring[0, 0] == pytest.approx(0.004 / xmax * w * w / (w + 1))
    assert ring[0, 1] == pytest.approx(-0.002 / ymin * h * h / (h + 1))
    back = pixel_to_geo(geo_to_pixel(geo, xmax, ymin, (h, w)), xmax, ymin, (h, w))
    assert np.allclose(shapely.get_coordinates(back), shapely.get_coordinates(geo))


def test_dstl_scaling_against_hand_computed_values():
    # W = 4: W' = 16 / 5 = 3.2; H = 3: H' = 9 / 4 = 2.25; Xmax = 0.008, Ymin = -0.009
    assert grid_scale(0.008, -0.009, (3, 4)) == pytest.approx((400.0, -250.0))
    # x = 0.002 -> 0.002 / 0.008 * 3.2 = 0.8; y = -0.0045 -> 0.5 * 2.25 = 1.125; (Xmax, Ymin) -> (W', H')
    geo = Polygon([(0.002, -0.0045), (0.008, -0.0045), (0.008, -0.009)])
    pixels = shapely.get_coordinates(geo_to_pixel(geo, 0.008, -0.009, (3, 4)))
    assert np.allclose(pixels[:3], [[0.8, 1.125], [3.2, 1.125], [3.2, 2.25]], rtol=0, atol=1e-12)


def test_wkt_to_mask_on_geo_coordinates():
    h = w = 50
    xmax, ymin = 0.0092, -0.009
    pixel_square = Polygon([(10.0, 20.0), (30.0, 20.0), (30.0, 25.0), (10.0, 25.0)])
    text = to_wkt(pixel_to_geo(pixel_square, xmax, ymin, (h, w)), precision=15)
    mask = wkt_to_mask(text, xmax, ymin, (h, w))
    assert mask.sum() == 20 * 5 and mask[20:25, 10:30].all()


# ----------------------------------------------------------------------------- mask -> WKT


def _disc(shape: tuple[int, int], cy: float, cx: float, radius: float) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    return (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2


def _synthetic_masks() -> dict[str, np.ndarray]:
    shape = (96, 128)
    ring = _disc(shape, 48, 64, 30) & ~_disc(shape, 48, 64, 14)  # a ring with a hole
    rectangles = np.zeros(shape, bool)
    rectangles[5:25, 8:40] = rectangles[60:90, 90:97] = True
    several = _disc(shape, 20, 20, 9) | _disc(shape, 70, 30, 12) | _disc(shape, 40, 100, 16)
    several[80:92, 100:124] = True
    holes = np.ones(shape, bool)  # a field with two farmyards, touching the scene's edges
    holes[30:40, 30:50] = holes[60:75, 80:90] = False
    disc = _disc(shape, 50, 60, 25)
    return {"disc": disc, "rectangles": rectangles, "ring": ring, "several": several, "holes": holes}


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("name", list(_synthetic_masks()))
def test_mask_to_wkt_round_trip_keeps_the_mask(name):
    mask = _synthetic_masks()[name]
    xmax, ymin = 0.00918, -0.00904
    text = mask_to_wkt(mask, xmax, ymin)
    assert text.startswith("MULTIPOLYGON") and parse_wkt(text).is_valid
    again = wkt_to_mask(text, xmax, ymin, mask.shape)
    assert _jaccard(mask, again) >= 0.99, name
    exact = wkt_to_mask(mask_to_wkt(mask, xmax, ymin, tolerance=0), xmax, ymin, mask.shape)
    assert np.array_equal(exact, mask), name  # the pixel outlines themselves rasterize back exactly


def test_mask_to_polygons_simplifies_and_keeps_parts_and_holes():
    masks = _synthetic_masks()
    several = mask_to_polygons(masks["several"])
    assert len(several.geoms) == 4 and several.is_valid
    (ring,) = mask_to_polygons(masks["ring"]).geoms
    assert len(ring.interiors) == 1 and ring.area == pytest.approx(masks["ring"].sum(), rel=0.01)
    vertices = [len(mask_to_polygons(masks["disc"], t).geoms[0].exterior.coords) for t in (0, 0.5, 1.0)]
    assert vertices[0] > vertices[1] > vertices[2] and vertices[0] * 0.8 > vertices[1]
    assert mask_to_polygons(np.zeros((4, 4), bool)).is_empty
    assert mask_to_wkt(np.zeros((4, 4), bool), 0.009, -0.009) == "MULTIPOLYGON EMPTY"


def test_mask_to_wkt_writes_dstl_geo_coordinates():
    mask = np.zeros((50, 40), bool)
    mask[10:20, 4:8] = True  # pixel corners (4, 10) .. (8, 20)
    xmax, ymin = 0.0092, -0.009
    sx, sy = grid_scale(xmax, ymin, mask.shape)
    coords = shapely.get_coordinates(parse_wkt(mask_to_wkt(mask, xmax, ymin)))
    assert coords[:, 0].min() == pytest.approx(4 / sx, abs=1e-8)
    assert coords[:, 0].max() == pytest.approx(8 / sx, abs=1e-8)
    assert coords[:, 1].max() == pytest.approx(10 / sy, abs=1e-8)  # Ymin < 0: rows go down to negative y
    assert coords[:, 1].min() == pytest.approx(20 / sy, abs=1e-8)
