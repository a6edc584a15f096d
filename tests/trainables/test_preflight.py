"""Data a trial would read is checked on the driver before any trial is scheduled (``TrainableSpec.preflight``).

The convnet family's hook (``trainables/convnet/preflight.py``) against hand-made IDX folders, then the same
through ``checks.check_version`` (the space file and key named) and the real ``orchestrator run`` command.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trainables
from orchestrator.engine.checks import check_version, preflight_config, validate_with_trainables
from orchestrator.errors import OrchestratorError
from orchestrator.spaces import load_version
from tests.spacefiles import ROOT, write_space
from trainables.config import resolve
from trainables.convnet import preflight
from trainables.convnet.data import IMAGES_STEM, LABELS_STEM, load_idx_folder, write_idx

IMAGES, LABELS = 6, 4  # images of 4x4 pixels: a folder of a few hundred bytes


def idx_folder(root: Path, *, n: int = IMAGES, gz: bool = False) -> Path:
    """An MNIST-format folder of ``n`` images and labels that ``load_idx_folder`` reads."""
    folder = root / "mnist"
    folder.mkdir(exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{IMAGES_STEM}{suffix}", np.arange(n * LABELS * LABELS, dtype=np.uint8).reshape(n, 4, 4))
    write_idx(folder / f"{LABELS_STEM}{suffix}", np.arange(n, dtype=np.uint8) % 3)
    return folder


def check(data: object) -> None:
    preflight.check(resolve("convnet", {"data": data}))


def test_the_hook_is_registered_for_the_family_and_its_tiny_variant() -> None:
    assert trainables.get("convnet").preflight == "trainables.convnet.preflight:check"
    assert trainables.get("convnet_tiny").preflight == trainables.get("convnet").preflight


def test_digits_and_a_good_idx_folder_pass(tmp_path: Path) -> None:
    check("digits")
    folder = idx_folder(tmp_path)
    check({"idx": str(folder)})
    images, labels = load_idx_folder(folder)  # what the hook passed, a trial reads
    assert images.shape == (IMAGES, 1, 4, 4) and labels.shape == (IMAGES,)


def test_a_good_gzipped_folder_passes(tmp_path: Path) -> None:
    check({"idx": str(idx_folder(tmp_path, gz=True))})


def test_a_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(trainables.TrainableConfigError, match=re.escape(f"data: IDX folder {missing} does not")) as e:
        check({"idx": str(missing)})
    assert e.value.key == "data"


def test_a_missing_file(tmp_path: Path) -> None:
    folder = idx_folder(tmp_path)
    (folder / LABELS_STEM).unlink()
    with pytest.raises(trainables.TrainableConfigError, match=f"{re.escape(str(folder))}: no {LABELS_STEM} "):
        check({"idx": str(folder)})


def test_a_wrong_magic_number(tmp_path: Path) -> None:
    folder = idx_folder(tmp_path)
    images = folder / IMAGES_STEM
    images.write_bytes(b"\x12\x34" + images.read_bytes()[2:])
    wrong_magic = re.escape(f"{images}: not an IDX file (magic number 0x1234")
    with pytest.raises(trainables.TrainableConfigError, match=wrong_magic):
        check({"idx": str(folder)})


def test_a_truncated_file(tmp_path: Path) -> None:
    folder = idx_folder(tmp_path)
    images = folder / IMAGES_STEM
    images.write_bytes(images.read_bytes()[:-5])
    expected = IMAGES * LABELS * LABELS
    truncated = rf"{re.escape(str(images))}: expected {expected} bytes .* found {expected - 5} \(truncated\?\)"
    with pytest.raises(trainables.TrainableConfigError, match=truncated):
        check({"idx": str(folder)})


def test_a_corrupt_gzip_stream(tmp_path: Path) -> None:
    folder = idx_folder(tmp_path, gz=True)
    labels = folder / f"{LABELS_STEM}.gz"
    labels.write_bytes(labels.read_bytes()[:12])  # the gzip header, then nothing
    with pytest.raises(trainables.TrainableConfigError, match=f"{re.escape(str(labels))}: cannot be read"):
        check({"idx": str(folder)})


def test_images_and_labels_that_do_not_match(tmp_path: Path) -> None:
    folder = idx_folder(tmp_path)
    (folder / LABELS_STEM).write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 2) + bytes([1, 2]))
    with pytest.raises(trainables.TrainableConfigError, match=r"images \(6, 4, 4\) and labels \(2,\) do not match"):
        check({"idx": str(folder)})


def test_data_that_is_neither_digits_nor_an_idx_folder() -> None:
    with pytest.raises(trainables.TrainableConfigError, match="data must be 'digits' or"):
        check({"mnist": "/data"})


# ----------------------------------------------------------------------------- through the space file


def space_file(root: Path, folder: Path) -> Path:
    """A one-trial ``convnet_tiny`` study reading the IDX files in ``folder``."""
    return write_space(
        root / "search_spaces",
        study="idxstudy",
        trainable="convnet_tiny",
        metric="{name: val_accuracy, mode: max}",
        fixed=f"{{data: {{idx: {folder}}}}}",
        schedule="{max_epochs: 1}",
        search="{trials: 1, startup_trials: 1}",
        params="  dropout: {uniform: [0.0, 0.5], default: 0.1}\n",
    )


def test_the_config_checked_is_the_fixed_values_with_defaults(tmp_path: Path) -> None:
    cfg = preflight_config(load_version(space_file(tmp_path, tmp_path / "mnist")))
    assert cfg["data"] == {"idx": str(tmp_path / "mnist")}
    assert cfg["dropout"] == 0.1, "a searched parameter takes its declared default"
    assert cfg["subset"] == trainables.get("convnet_tiny").optional["subset"], "the rest: the trainable's defaults"


def test_check_version_names_the_file_and_the_key(tmp_path: Path) -> None:
    folder = idx_folder(tmp_path)
    path = space_file(tmp_path, folder)
    assert check_version(load_version(path)).name == "convnet_tiny"
    (folder / IMAGES_STEM).write_bytes(b"not an idx file")
    with pytest.raises(OrchestratorError) as e:
        check_version(load_version(path))
    assert str(e.value).startswith(
        f"{path}: fixed.data: trainable 'convnet_tiny': data: {folder / IMAGES_STEM}: not an IDX file"
    )


def test_space_validate_does_not_open_data_files(tmp_path: Path) -> None:
    path = space_file(tmp_path, tmp_path / "nowhere")
    report = validate_with_trainables([path])
    assert not report.problems and len(report.valid) == 1


@pytest.mark.parametrize("damage", ["missing-folder", "wrong-magic"])
def test_run_with_a_bad_idx_folder_exits_with_one_line_before_any_run(tmp_path: Path, damage: str) -> None:
    folder = idx_folder(tmp_path)
    if damage == "missing-folder":
        folder = tmp_path / "nowhere"
    else:
        labels = folder / LABELS_STEM
        labels.write_bytes(b"\x08\x08" + labels.read_bytes()[2:])
    path = space_file(tmp_path, folder)
    store = tmp_path / "store" / "mlflow.db"
    command = [
        sys.executable,
        "-m",
        "orchestrator",
        "run",
        str(path),
        "--tracking-uri",
        f"sqlite:///{store}",
        "--storage",
        str(tmp_path / "ray"),
        "--no-live",
    ]
    r = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: fixed.data: "), r.stderr
    assert ("does not exist" if damage == "missing-folder" else "not an IDX file") in lines[0]
    assert not store.exists() and not (tmp_path / "ray").exists(), "nothing was opened: no MLflow run can exist"
