"""DSTL-layout reading (rasterio, by window), errors, synthetic scenes, caches, index channels."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from rasterio.windows import Window
from shapely.geometry import Polygon

from trainables.unet import dstl
from trainables.unet.data import ChannelMoments, load_scenes
from trainables.unet.dstl import DSTLDataset, DSTLError
from trainables.unet.indices import ccci, evi, index_channels, ndwi, safe_div, savi
from trainables.unet.synthetic import scene_polygons, write_geotiff, write_synthetic_dstl
from trainables.unet.wkt import pixel_to_geo, rasterize_polygons, to_wkt

# ----------------------------------------------------------------------------- DSTL reader


def _write_hand_made_dstl(root, h=40, w=48):
    """One image whose building is a known 10 x 6 pixel rectangle with a 2 x 2 hole."""
    (root / "three_band").mkdir(parents=True)
    (root / "sixteen_band").mkdir()
    write_geotiff(root / "three_band" / "6120_2_2.tif", np.full((3, h, w), 500, np.uint16))
    m = np.ones((8, h // 4, w // 4), np.uint16) * np.arange(1, 9, dtype=np.uint16)[:, None, None]
    write_geotiff(root / "sixteen_band" / "6120_2_2_M.tif", m * 100)
    write_geotiff(root / "sixteen_band" / "6120_2_2_A.tif", np.full((8, 2, 2), 9000, np.uint16))
    write_geotiff(root / "sixteen_band" / "6120_2_2_P.tif", np.full((h, w), 700, np.uint16))
    xmax, ymin = 0.009188, -0.00904
    building = Polygon([(5.0, 8.0), (15.0, 8.0), (15.0, 14.0), (5.0, 14.0)], [[(7, 10), (9, 10), (9, 12), (7, 12)]])
    big = Polygon([(x, 30.0 + (x % 2)) for x in np.linspace(1, 46, 3000)] + [(46.0, 38.0), (1.0, 38.0)])
    with open(root / "train_wkt_v4.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "ClassType", "MultipolygonWKT"])
        writer.writerow(["6120_2_2", 1, to_wkt(pixel_to_geo(building, xmax, ymin, (h, w)), 15)])
        writer.writerow(["6120_2_2", 3, to_wkt(pixel_to_geo(big, xmax, ymin, (h, w)), 15)])
        writer.writerow(["6120_2_2", 5, "MULTIPOLYGON EMPTY"])
    with open(root / "grid_sizes.csv", "w", newline="") as f:
        f.write(f",Xmax,Ymin\n6120_2_2,{xmax},{ymin}\n")
    return root


def test_reader_decodes_bands_indices_and_exact_masks(tmp_path):
    data = DSTLDataset(_write_hand_made_dstl(tmp_path / "d"))
    assert data.image_ids() == ["6120_2_2"]
    assert data.grid_size("6120_2_2") == (0.009188, -0.00904)
    scene = data.decode("6120_2_2", ["rgb", "m", "a", "p"], ["ndwi", "evi"], ["buildings", "roads", "trees"])
    assert scene.image.shape == (3 + 8 + 8 + 1 + 2, 40, 48) and scene.image.dtype == np.float32
    assert scene.channels[:3] == ("r", "g", "b") and scene.channels[-2:] == ("ndwi", "evi")
    assert np.allclose(scene.image[3:11, 0, 0], np.arange(1, 9) * 100)  # M resized, constant
    assert np.allclose(scene.image[11], 9000) and np.allclose(scene.image[19], 700)
    green, nir = 300 / 2047, 700 / 2047
    assert np.allclose(scene.image[20], (green - nir) / (green + nir), atol=1e-5)
    buildings, roads, trees = scene.mask
    assert buildings.sum() == 10 * 6 - 2 * 2 and buildings[8:14, 5:15].sum() == 56
    assert roads.sum() > 0 and trees.sum() == 0
    assert scene.mask.dtype == np.uint8


def test_reader_errors_name_the_folder_and_file(tmp_path):
    with pytest.raises(DSTLError, match="no such dataset folder"):
        DSTLDataset(tmp_path / "absent")
    with pytest.raises(DSTLError, match="missing three_band"):
        DSTLDataset(tmp_path)
    root = _write_hand_made_dstl(tmp_path / "d")
    (root / "sixteen_band" / "6120_2_2_A.tif").unlink()
    with pytest.raises(DSTLError, match=r"missing image .*6120_2_2_A\.tif"):
        DSTLDataset(root).decode("6120_2_2", ["a"], [], ["buildings"])
    with pytest.raises(DSTLError, match="no row for"):
        DSTLDataset(root).grid_size("nope")


def _cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "sixteen_band/6120_2_2_M.tif").write_bytes(b"II*\0 not a tiff"), "unreadable GeoTIFF"),
        (lambda root: _cut_in_half(root / "sixteen_band/6120_2_2_M.tif"), "truncated"),
        (
            lambda root: write_geotiff(root / "sixteen_band/6120_2_2_M.tif", np.zeros((3, 10, 12), np.uint16)),
            "3 bands, expected 8",
        ),
        (lambda root: (root / "grid_sizes.csv").write_text(",Xmax,Ymin\n6120_2_2,0.009\n"), "ImageId,Xmax,Ymin"),
    ],
)
def test_damaged_files_are_one_line_errors_naming_the_file(tmp_path, damage, message):
    root = _write_hand_made_dstl(tmp_path / "d")
    damage(root)
    with pytest.raises(DSTLError, match=message) as error:
        DSTLDataset(root).decode("6120_2_2", ["rgb", "m"], [], ["buildings"])
    assert "\n" not in str(error.value) and str(root) in str(error.value)
    with pytest.raises(DSTLError, match=message):  # the header check finds it too, without decoding
        DSTLDataset(root).check_scene("6120_2_2", ["m"], [])


def test_coarse_bands_are_resampled_bilinearly_on_read(tmp_path):
    root = _write_hand_made_dstl(tmp_path / "d", h=4, w=4)
    write_geotiff(root / "sixteen_band/6120_2_2_A.tif", np.tile(np.array([[0, 8], [16, 24]], np.uint16), (8, 1, 1)))
    a = DSTLDataset(root).read_window("6120_2_2", Window(0, 0, 4, 4), ["a"], [])[0]
    # 2 -> 4: output centres at source positions -0.25, 0.25, 0.75, 1.25, clamped to [0, 1]:
    # weights 0, .25, .75, 1 -> columns 0, 2, 6, 8 (step 8 across), rows 0, 4, 12, 16 (step 16 down)
    expected = np.array([0, 4, 12, 16])[:, None] + np.array([0, 2, 6, 8])[None, :]
    assert np.allclose(a, expected)


def test_windows_read_only_their_part_and_match_the_whole_scene(tmp_path, monkeypatch):
    root = write_synthetic_dstl(tmp_path / "s", scenes=2, size=64, seed=1)
    data = DSTLDataset(root)
    image_id = data.image_ids()[0]
    args = (["rgb", "m", "a", "p"], ["ndwi", "evi"])
    whole = data.decode(image_id, *args, ["buildings"])
    crop = data.read_window(image_id, Window(13, 21, 30, 17), *args)
    assert np.allclose(crop, whole.image[:, 21:38, 13:43], atol=1e-3)
    seen = []
    real = dstl._read_resampled

    def spy(source, grid, window):
        seen.append(window.height)
        return real(source, grid, window)

    monkeypatch.setattr(dstl, "_read_resampled", spy)
    monkeypatch.setattr(dstl, "WINDOW_ROWS", 10)
    blocks = data.decode(image_id, *args, ["buildings"])
    assert max(seen) == 10 and sum(seen) == 64 * 4  # 4 files, 7 windows each, none larger than 10 rows
    assert np.allclose(blocks.image, whole.image, atol=1e-3) and np.array_equal(blocks.mask, whole.mask)


def test_split_and_channel_statistics(tmp_path):
    root = write_synthetic_dstl(tmp_path / "s", scenes=5, size=48, seed=2)
    split = load_scenes(
        root, bands=["rgb", "m"], indices=["ndwi"], classes=["water"], validation_fraction=0.4, split_seed=3
    )
    train, val = [s.image_id for s in split.train], [s.image_id for s in split.val]
    assert len(val) == 2 and sorted(train + val) == DSTLDataset(root).image_ids()
    assert (train, val) == DSTLDataset(root).split(0.4, 3) and DSTLDataset(root).split(0.4, 4) != (train, val)
    stacked = np.concatenate([s.image.reshape(len(s.image), -1) for s in split.train], axis=1).astype(np.float64)
    assert np.allclose(split.mean, stacked.mean(axis=1), rtol=1e-6)
    assert np.allclose(split.std, stacked.std(axis=1), rtol=1e-5)
    with pytest.raises(DSTLError, match="at least 2 labelled images"):
        load_scenes(
            write_synthetic_dstl(tmp_path / "one", scenes=1, size=48),
            bands=["rgb"],
            indices=[],
            classes=["water"],
            validation_fraction=0.4,
            split_seed=0,
        )


def test_channel_moments_merge_images_of_different_sizes():
    rng = np.random.default_rng(0)
    images = [rng.normal(1000, 30, (3, h, w)).astype(np.float32) for h, w in [(5, 7), (11, 3), (2, 2)]]
    moments = ChannelMoments()
    for image in images:
        moments.add(image)
    flat = np.concatenate([i.reshape(3, -1) for i in images], axis=1).astype(np.float64)
    assert np.allclose(moments.mean, flat.mean(axis=1)) and np.allclose(moments.std, flat.std(axis=1), rtol=1e-5)


def test_scene_cache_in_memory_and_on_disk(tmp_path, monkeypatch):
    root = _write_hand_made_dstl(tmp_path / "d")
    args = ("6120_2_2", ["rgb"], ["savi"], ["buildings"])
    first = DSTLDataset(root).scene(*args)
    assert DSTLDataset(root).scene(*args) is first  # the in-process cache
    (cached,) = (root / ".cache").glob("6120_2_2-*.npz")
    dstl.clear_memory_cache()

    def no_decoding(*_args):
        raise AssertionError("decoded again instead of reading the .npz cache")

    monkeypatch.setattr(DSTLDataset, "decode", no_decoding)
    again = DSTLDataset(root).scene(*args)
    assert again is not first and np.array_equal(again.image, first.image)
    assert np.array_equal(again.mask, first.mask) and again.channels == first.channels
    dstl.clear_memory_cache()
    (root / "train_wkt_v4.csv").touch()  # new labels: the old cache entry no longer applies
    with pytest.raises(AssertionError, match="decoded again"):
        DSTLDataset(root).scene(*args)
    assert cached.exists()


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_dataset_has_the_dstl_layout(tmp_path):
    root = write_synthetic_dstl(tmp_path / "s", scenes=3, size=64, seed=5)
    data = DSTLDataset(root)
    assert len(data.image_ids()) == 3
    image_id = data.image_ids()[0]
    assert data.header(image_id, "rgb") == dstl.Header(3, 64, 64, "uint16")
    assert data.header(image_id, "m") == dstl.Header(8, 16, 16, "uint16")
    assert data.header(image_id, "a") == dstl.Header(8, 4, 4, "uint16")
    assert data.header(image_id, "p") == dstl.Header(1, 64, 64, "uint16")
    with data.open(image_id, "m") as m:  # georeferenced in the challenge's units, on the RGB grid's area
        xmax, ymin = data.grid_size(image_id)
        assert m.bounds.right == pytest.approx(xmax * 65 / 64) and m.bounds.bottom == pytest.approx(ymin * 65 / 64)
    with open(root / "train_wkt_v4.csv") as f:
        assert len(list(csv.reader(f))) == 1 + 3 * 10
    assert (root / "grid_sizes.csv").read_text().startswith(",Xmax,Ymin")


def test_synthetic_masks_match_the_drawn_polygons(tmp_path):
    root = write_synthetic_dstl(tmp_path / "s", scenes=2, size=64, seed=7)
    polygons = scene_polygons(64, np.random.default_rng(7))  # the first scene's drawing
    scene = DSTLDataset(root).decode(
        DSTLDataset(root).image_ids()[0], ["rgb"], [], ["buildings", "roads", "trees", "crops"]
    )
    for mask, name in zip(scene.mask, scene.classes, strict=True):
        drawn = rasterize_polygons(polygons[name], (64, 64))
        assert (mask.astype(bool) != drawn).sum() <= 2, name
        assert drawn.sum() > 0, name


def test_synthetic_classes_differ_spectrally(tmp_path):
    root = write_synthetic_dstl(tmp_path / "s", scenes=2, size=64, seed=3)
    data = DSTLDataset(root)
    scene = data.decode(data.image_ids()[0], ["rgb", "m"], ["ndwi"], ["crops", "buildings"])
    crops, buildings = scene.mask.astype(bool)
    nir = scene.channels.index("m6")
    assert scene.image[nir][crops & ~buildings].mean() > scene.image[2][crops & ~buildings].mean()
    assert scene.image[0][buildings].mean() > scene.image[0][~buildings & ~crops].mean()


# ----------------------------------------------------------------------------- indices


def _bands(**values):
    m = np.zeros((8, 1, 1))
    order = ["coastal", "blue", "green", "yellow", "red", "rededge", "nir1", "nir2"]
    for name, value in values.items():
        m[order.index(name)] = value
    return m


def test_index_formulas():
    m = _bands(blue=0.1, green=0.3, red=0.2, rededge=0.4, nir1=0.6)
    assert ndwi(m).item() == pytest.approx((0.3 - 0.6) / (0.3 + 0.6))
    assert evi(m).item() == pytest.approx(2.5 * (0.6 - 0.2) / (0.6 + 6 * 0.2 - 7.5 * 0.1 + 1))
    assert savi(m).item() == pytest.approx(1.5 * (0.6 - 0.2) / (0.6 + 0.2 + 0.5))
    assert ccci(m).item() == pytest.approx(((0.6 - 0.4) / (0.6 + 0.4)) / ((0.6 - 0.2) / (0.6 + 0.2)))


def test_indices_never_produce_nan_or_inf():
    zeros = np.zeros((8, 3, 3))
    out = index_channels(zeros, ["ndwi", "evi", "savi", "ccci", "ndvi"])
    assert out.shape == (5, 3, 3) and np.isfinite(out).all()
    near = _bands(blue=0.2, red=0.25, nir1=0.25000001)  # CCCI's denominator ~ 0
    assert np.isfinite(index_channels(near, ["ccci"])).all()
    assert safe_div(np.array([1.0]), np.array([0.0])).tolist() == [0.0]
