"""WKT parsing, exact polygon rasterization, the DSTL coordinate scaling."""

from __future__ import annotations

import numpy as np
import pytest

from trainables.unet.wkt import (
    WKTError,
    geo_to_pixel,
    parse_wkt,
    pixel_to_geo,
    rasterize_polygons,
    to_wkt,
    wkt_to_mask,
)

SQUARE_WITH_HOLE = "POLYGON ((2 3, 10 3, 10 7, 2 7, 2 3), (4 4, 6 4, 6 6, 4 6, 4 4))"


def test_parse_polygon_multipolygon_empty_and_z():
    (poly,) = parse_wkt(SQUARE_WITH_HOLE)
    assert len(poly) == 2 and poly[0].shape == (5, 2) and poly[1][1].tolist() == [6, 4]
    multi = parse_wkt("MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5), (1e-1 2E2, -3.5 .5, 1 1)))")
    assert [len(p) for p in multi] == [1, 2] and multi[1][1][0].tolist() == [0.1, 200.0]
    assert parse_wkt("MULTIPOLYGON EMPTY") == [] and parse_wkt("POLYGON EMPTY") == []
    (z,) = parse_wkt("POLYGON Z ((0 0 1, 4 0 1, 4 4 1, 0 0 1))")
    assert z[0].tolist() == [[0, 0], [4, 0], [4, 4], [0, 0]]


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
        assert np.array_equal(rasterize_polygons([[ring, hole]], (40, 40)), expected)


def test_round_trip_through_text():
    polygons = parse_wkt(SQUARE_WITH_HOLE)
    again = parse_wkt(to_wkt(polygons))
    assert np.allclose(again[0][0], polygons[0][0]) and np.allclose(again[0][1], polygons[0][1])
    assert to_wkt([]) == "MULTIPOLYGON EMPTY"


def test_dstl_scaling_follows_the_challenge_formula():
    xmax, ymin, h, w = 0.00918, -0.00904, 100, 120
    geo = [[np.array([[0.004, -0.002], [0.008, -0.006]])]]
    (ring,) = geo_to_pixel(geo, xmax, ymin, (h, w))[0]
    assert ring[0, 0] == pytest.approx(0.004 / xmax * w * w / (w + 1))
    assert ring[0, 1] == pytest.approx(-0.002 / ymin * h * h / (h + 1))
    back = pixel_to_geo(geo_to_pixel(geo, xmax, ymin, (h, w)), xmax, ymin, (h, w))
    assert np.allclose(back[0][0], geo[0][0])


def test_wkt_to_mask_on_geo_coordinates():
    h = w = 50
    xmax, ymin = 0.0092, -0.009
    pixel_square = [[np.array([[10.0, 20.0], [30.0, 20.0], [30.0, 25.0], [10.0, 25.0]])]]
    text = to_wkt(pixel_to_geo(pixel_square, xmax, ymin, (h, w)), precision=15)
    mask = wkt_to_mask(text, xmax, ymin, (h, w))
    assert mask.sum() == 20 * 5 and mask[20:25, 10:30].all()
