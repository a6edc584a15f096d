"""DSTL-layout reading, TIFF codec, synthetic scenes, caches, index channels."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from trainables.unet import dstl, tiff
from trainables.unet.dstl import DSTLDataset, DSTLError, resize_bilinear
from trainables.unet.indices import ccci, evi, index_channels, ndwi, safe_div, savi
from trainables.unet.synthetic import scene_polygons, write_synthetic_dstl
from trainables.unet.wkt import pixel_to_geo, rasterize_polygons, to_wkt

# ----------------------------------------------------------------------------- TIFF


@pytest.mark.parametrize("shape", [(3, 17, 23), (8, 5, 6), (9, 4), (1, 3, 3)])
@pytest.mark.parametrize("dtype", ["uint16", "uint8", "float32", "int16"])
def test_builtin_tiff_round_trip(tmp_path, shape, dtype):
    array = (np.random.default_rng(0).random(shape) * 1000).astype(dtype)
    path = tiff.write_tiff(tmp_path / "a.tif", array, builtin=True)
    back = tiff.read_tiff(path, builtin=True)
    assert back.dtype == array.dtype and np.array_equal(back, array.reshape(back.shape))
    assert back.shape == (shape if len(shape) == 2 or shape[0] > 1 else shape[1:])


def test_builtin_codec_agrees_with_tifffile(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    array = (np.random.default_rng(1).random((8, 9, 7)) * 2047).astype(np.uint16)
    tiff.write_tiff(tmp_path / "ours.tif", array, builtin=True)
    assert np.array_equal(tifffile.imread(tmp_path / "ours.tif"), array)
    tifffile.imwrite(tmp_path / "theirs.tif", array, planarconfig="separate")
    assert np.array_equal(tiff.read_tiff(tmp_path / "theirs.tif", builtin=True), array)
    rgb = (np.random.default_rng(2).random((5, 6, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")  # interleaved samples
    for builtin in (False, True):
        got = tiff.read_tiff(tmp_path / "rgb.tif", builtin=builtin)
        assert np.array_equal(got, np.moveaxis(rgb, -1, 0))


def test_builtin_codec_refuses_compressed_files(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((4, 4), np.uint16), compression="zlib")
    with pytest.raises(tiff.TiffError, match="install tifffile"):
        tiff.read_tiff(tmp_path / "z.tif", builtin=True)


# ----------------------------------------------------------------------------- DSTL reader


def _write_hand_made_dstl(root, h=40, w=48):
    """One image whose building is a known 10 x 6 pixel rectangle with a 2 x 2 hole."""
    (root / "three_band").mkdir(parents=True)
    (root / "sixteen_band").mkdir()
    tiff.write_tiff(root / "three_band" / "6120_2_2.tif", np.full((3, h, w), 500, np.uint16))
    m = np.ones((8, h // 4, w // 4), np.uint16) * np.arange(1, 9, dtype=np.uint16)[:, None, None]
    tiff.write_tiff(root / "sixteen_band" / "6120_2_2_M.tif", m * 100)
    tiff.write_tiff(root / "sixteen_band" / "6120_2_2_A.tif", np.full((8, 2, 2), 9000, np.uint16))
    tiff.write_tiff(root / "sixteen_band" / "6120_2_2_P.tif", np.full((h, w), 700, np.uint16))
    xmax, ymin = 0.009188, -0.00904
    building = [
        [
            np.array([[5.0, 8.0], [15.0, 8.0], [15.0, 14.0], [5.0, 14.0]]),
            np.array([[7.0, 10.0], [9.0, 10.0], [9.0, 12.0], [7.0, 12.0]]),
        ]
    ]
    big = [[np.array([[x, 30.0 + (x % 2)] for x in np.linspace(1, 46, 3000)] + [[46.0, 38.0], [1.0, 38.0]])]]
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
    with pytest.raises(DSTLError, match="missing three_band"):
        DSTLDataset(tmp_path)
    root = _write_hand_made_dstl(tmp_path / "d")
    (root / "sixteen_band" / "6120_2_2_A.tif").unlink()
    with pytest.raises(DSTLError, match=r"6120_2_2_A\.tif"):
        DSTLDataset(root).decode("6120_2_2", ["a"], [], ["buildings"])
    with pytest.raises(DSTLError, match="no row for"):
        DSTLDataset(root).grid_size("nope")


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


def test_resize_bilinear():
    a = np.arange(4, dtype=np.float32).reshape(1, 2, 2)
    big = resize_bilinear(a, (4, 4))
    assert big.shape == (1, 4, 4) and big[0, 0, 0] == 0 and big[0, -1, -1] == 3
    assert np.allclose(big.mean(), a.mean())
    assert np.allclose(resize_bilinear(np.full((3, 5), 2.0), (7, 11)), 2.0)


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_dataset_has_the_dstl_layout(tmp_path):
    root = write_synthetic_dstl(tmp_path / "s", scenes=3, size=64, seed=5)
    data = DSTLDataset(root)
    assert len(data.image_ids()) == 3
    image_id = data.image_ids()[0]
    assert data.rgb(image_id).shape == (3, 64, 64) and data.rgb(image_id).dtype == np.uint16
    assert data.band(image_id, "M").shape == (8, 16, 16)
    assert data.band(image_id, "A").shape == (8, 4, 4)
    assert data.band(image_id, "P").shape == (1, 64, 64)
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
