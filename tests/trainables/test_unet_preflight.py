"""The unet preflight hook: every file a trial would read, checked from headers before any trial runs."""

from __future__ import annotations

import numpy as np
import pytest

from trainables.api import TrainableConfigError, load_object
from trainables.config import resolve
from trainables.registry import get
from trainables.unet import dstl
from trainables.unet.preflight import check
from trainables.unet.synthetic import write_geotiff, write_synthetic_dstl


@pytest.fixture
def folder(tmp_path):
    return write_synthetic_dstl(tmp_path / "dstl", scenes=3, size=48, seed=4)


def _cfg(data, **overrides):
    return resolve("unet", {"data": str(data), **overrides})


def _first_image(folder) -> str:
    return dstl.DSTLDataset(folder).image_ids()[0]


def test_registered_for_the_unet_family():
    assert load_object(get("unet").preflight) is check and load_object(get("unet_tiny").preflight) is check


def test_synthetic_and_a_complete_folder_pass(folder):
    check(resolve("unet", {"data": "synthetic"}))
    check(_cfg(folder))


def test_missing_folder(tmp_path):
    with pytest.raises(TrainableConfigError, match=r"data: .*absent: no such dataset folder") as error:
        check(_cfg(tmp_path / "absent"))
    assert error.value.key == "data"


def test_missing_scene_file(folder):
    (folder / "sixteen_band" / f"{_first_image(folder)}_A.tif").unlink()
    with pytest.raises(TrainableConfigError, match=r"missing image .*_A\.tif"):
        check(_cfg(folder))
    check(_cfg(folder, bands=["rgb", "m", "p"]))  # a trial without the A bands does not read it


def test_truncated_tiff_is_found_from_the_header(folder, monkeypatch):
    path = folder / "sixteen_band" / f"{_first_image(folder)}_M.tif"
    path.write_bytes(path.read_bytes()[:-100])

    def no_pixels(*_args, **_kwargs):
        raise AssertionError("the preflight read pixel data")

    monkeypatch.setattr(dstl.DatasetReader, "read", no_pixels)
    with pytest.raises(TrainableConfigError, match=r"_M\.tif: truncated GeoTIFF"):
        check(_cfg(folder))
    with pytest.raises(TrainableConfigError, match=r"_M\.tif: truncated GeoTIFF"):  # read by the index channels
        check(_cfg(folder, bands=["rgb"]))
    check(_cfg(folder, bands=["rgb"], indices=[]))


def test_corrupt_tiff(folder):
    (folder / "three_band" / f"{_first_image(folder)}.tif").write_bytes(b"MM\0*" + bytes(64))
    with pytest.raises(TrainableConfigError, match=r"\.tif: unreadable GeoTIFF"):
        check(_cfg(folder))


def test_wrong_band_count(folder):
    write_geotiff(folder / "sixteen_band" / f"{_first_image(folder)}_P.tif", np.zeros((2, 48, 48), np.uint16))
    with pytest.raises(TrainableConfigError, match=r"_P\.tif: 2 bands, expected 1"):
        check(_cfg(folder))


def test_missing_grid_row_and_too_few_images(folder):
    image_id = _first_image(folder)
    grid = folder / "grid_sizes.csv"
    grid.write_text("".join(line for line in grid.read_text().splitlines(True) if not line.startswith(image_id)))
    with pytest.raises(TrainableConfigError, match=f"grid_sizes.csv: no row for {image_id}"):
        check(_cfg(folder))
    labels = folder / "train_wkt_v4.csv"
    labels.write_text(labels.read_text().splitlines(True)[0])
    with pytest.raises(TrainableConfigError, match="at least 2 labelled images"):
        check(_cfg(folder))
