"""``orchestrator predict`` (issue 14): windowed whole-scene prediction against the in-memory reference.

Untrained tiny U-Nets (their weights fixed by a seed) are logged with ``mlflow.pytorch`` in the ``pt2``
format with their prediction metadata into a SQLite store, and small synthetic DSTL scenes are predicted
through the command line. The written masks must equal, pixel for pixel, the threshold of
``predict_blended`` over the whole standardized scene computed with the original (eager) module; the
WKT must rasterize back to the masks; per-class models must stack into the same output as one model.
The slow test runs a real tiny search and predicts with the model it registered.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio import features
from rasterio.windows import Window

from orchestrator.cli import main
from orchestrator.models.metadata import ModelMetadata, ModelMetadataError, prediction_metadata
from orchestrator.production import rules as post
from tests.plugin import SqliteTemplate
from tests.spacefiles import write_space
from trainables.unet.blend import predict_blended
from trainables.unet.dstl import CLASS_TYPES, DSTLDataset, channel_names
from trainables.unet.synthetic import write_synthetic_dstl
from trainables.unet.wkt import wkt_to_mask

BANDS = ["rgb", "m", "a", "p"]
INDICES = ["ndwi", "evi"]
CLASSES = ["buildings", "water"]  # in class type order
PATCH = 32
SCENE = 80  # not a multiple of the patch or of the step: the last windows are flush with the edge
BOUNDARY = 1e-5  # probabilities this close to the threshold may flip between two float32 computations
MIN_WKT_AGREEMENT = 0.97  # of pixels, mask vs its WKT rasterized back (outlines are simplified by 0.5 px)


# --------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Registered:
    uri: str
    root: Path  # a DSTL-layout folder with two scenes
    mean: np.ndarray
    std: np.ndarray
    network: Any  # the eager U-Net every logged model is made of
    both: str  # models:/ URI of the U-Net predicting CLASSES
    per_class: dict[str, str]  # class -> models:/ URI of a one-class model (the U-Net's output channel)
    other_scaling: str  # the water channel with other mean/std (a second standardized input)


def one_class(network: Any, channel: int, shift: float = 0.0) -> Any:
    """A per-class model: ``network``'s output ``channel`` for inputs ``shift`` below what it was made for."""
    import torch

    class Channel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.network(x + shift)[:, channel : channel + 1]

    return Channel().eval()


def unet(in_channels: int, classes: int, seed: int = 0) -> Any:
    import torch

    from trainables.unet.model import UNet, UNetShape

    torch.manual_seed(seed)
    shape = UNetShape(
        in_channels,
        classes,
        depth=2,
        base_filters=4,
        growth=2.0,
        kernel=3,
        convs_per_block=1,
        batch_norm=False,
        activation="relu",
        dropout=0.0,
        upsampling="transpose",
    )
    return UNet(shape).eval()


def balanced(network: Any, image: np.ndarray) -> Any:
    """``network`` with its head's biases moved so that about half of ``image``'s pixels are in each class
    (an untrained network may put nearly every pixel in a class)."""
    import torch

    with torch.no_grad():
        width = image.shape[2] // PATCH * PATCH
        logits = network(torch.as_tensor(image[None, :, :PATCH, :width].copy()))
        network.head.bias -= logits.flatten(2).median(dim=2).values[0]
    return network


def log_model(
    uri: str, run_id: str, name: str, module: Any, classes: Sequence[str], mean: np.ndarray, std: np.ndarray
) -> str:
    from orchestrator.models.register import log_pytorch_model

    config = {"bands": BANDS, "indices": INDICES, "classes": list(classes), "patch": PATCH}
    meta = {
        "channels": list(channel_names(BANDS, INDICES)),
        "classes": list(classes),
        "mean": mean,
        "std": std,
        "patch": PATCH,
    }
    example = np.zeros((2, len(mean), PATCH, PATCH), np.float32)
    info = log_pytorch_model(uri, module, example, run_id, name, prediction_metadata("unet", config, meta))
    return f"models:/{name}/{info.registered_model_version}"


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory, sqlite_template: SqliteTemplate) -> Registered:
    """Synthetic scenes and, in a SQLite store, the network's models: both classes, each class, a shifted one."""
    from mlflow.tracking import MlflowClient

    base = tmp_path_factory.mktemp("predict")
    root = write_synthetic_dstl(base / "dstl", scenes=2, size=SCENE, seed=5)
    dataset = DSTLDataset(root)
    stack = np.concatenate([whole_scene(dataset, i) for i in dataset.image_ids()], axis=2)
    mean, std = stack.mean(axis=(1, 2)).astype(np.float32), stack.std(axis=(1, 2)).astype(np.float32)
    uri = sqlite_template.copy(base)
    client = MlflowClient(uri)
    experiment = client.create_experiment("predict", artifact_location=(base / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    network = balanced(unet(len(mean), len(CLASSES)), (stack - mean[:, None, None]) / std[:, None, None])
    per_class = {
        name: log_model(uri, run_id, f"unet-{name}", one_class(network, k), [name], mean, std)
        for k, name in enumerate(CLASSES)
    }
    both = log_model(uri, run_id, "unet", network, CLASSES, mean, std)
    # the water channel for inputs standardized with a mean 1 std higher (1 lower): the same probabilities
    other = log_model(uri, run_id, "unet-water-shifted", one_class(network, 1, shift=1.0), ["water"], mean + std, std)
    return Registered(uri, root, mean, std, network, both, per_class, other)


def whole_scene(dataset: DSTLDataset, image_id: str) -> np.ndarray:
    height, width = dataset.grid_shape(image_id)
    return dataset.read_window(image_id, Window(0, 0, width, height), BANDS, INDICES)


def reference(registered: Registered, image_id: str, d4: bool = True) -> np.ndarray:
    """Probabilities of the whole standardized scene in memory with the eager network (no windows)."""
    import torch

    image = (whole_scene(DSTLDataset(registered.root), image_id) - registered.mean[:, None, None]) / registered.std[
        :, None, None
    ]

    @torch.no_grad()
    def predictor(tiles: np.ndarray) -> np.ndarray:
        return torch.sigmoid(registered.network(torch.as_tensor(tiles))).numpy()

    return predict_blended(image, predictor, PATCH, overlap=0.5, d4_average=d4)


def scene_paths(registered: Registered) -> list[Path]:
    return sorted((registered.root / "three_band").glob("*.tif"))


Predict = Callable[..., tuple[int, str, str]]


@pytest.fixture
def predict(registered: Registered, capsys: pytest.CaptureFixture[str]) -> Predict:
    """``orchestrator predict`` in this process: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(["predict", *args, "--tracking-uri", registered.uri, "--no-live"])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def masks_of(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """A written GeoTIFF's bands and its profile, with the band descriptions."""
    with rasterio.open(path) as raster:
        return raster.read(), {**raster.profile, "descriptions": raster.descriptions}


def submission(out: Path) -> list[list[str]]:
    with open(out / "submission.csv", newline="") as f:
        return list(csv.reader(f))


def assert_masks_equal(masks: np.ndarray, probabilities: np.ndarray) -> None:
    decided = np.abs(probabilities - 0.5) > BOUNDARY
    assert decided.mean() > 0.99
    np.testing.assert_array_equal(masks[decided], (probabilities >= 0.5)[decided])


# --------------------------------------------------------------------------- the command


def test_windowed_masks_equal_the_whole_scene_prediction(
    registered: Registered, predict: Predict, tmp_path: Path
) -> None:
    code, out, err = predict(
        registered.both, "--images", str(registered.root), "--out", str(tmp_path), "--rule", "water_over_buildings=off"
    )
    assert code == 0, err
    ids = [p.stem for p in scene_paths(registered)]
    assert re.search(r": (\d+)/\1 tiles$", out, re.MULTILINE)  # plain progress lines, the last one at the end
    for image_id in ids:
        masks, profile = masks_of(tmp_path / f"{image_id}.tif")
        with rasterio.open(registered.root / "three_band" / f"{image_id}.tif") as source:
            assert profile["transform"] == source.transform and profile["crs"] == source.crs
        assert profile["descriptions"] == tuple(CLASSES) and profile["dtype"] == "uint8"
        assert profile["tiled"] and profile["compress"] == "deflate"
        probabilities = reference(registered, image_id)
        assert 0.05 < (probabilities >= 0.5).mean() < 0.95  # the masks are not trivial
        assert_masks_equal(masks, probabilities)
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_submission_has_every_class_of_every_scene_and_its_wkt_draws_the_masks(
    registered: Registered, predict: Predict, tmp_path: Path
) -> None:
    code, _, err = predict(registered.both, "--images", str(scene_paths(registered)[0]), "--out", str(tmp_path))
    assert code == 0, err
    rows = submission(tmp_path)
    image_id = scene_paths(registered)[0].stem
    assert rows[0] == ["ImageId", "ClassType", "MultipolygonWKT"]
    assert [(r[0], int(r[1])) for r in rows[1:]] == [(image_id, t) for t in CLASS_TYPES.values()]
    masks, _ = masks_of(tmp_path / f"{image_id}.tif")
    xmax, ymin = DSTLDataset(registered.root).grid_size(image_id)
    cells = {int(r[1]): r[2] for r in rows[1:]}
    for name, class_type in CLASS_TYPES.items():
        if name not in CLASSES:
            assert cells[class_type] == "MULTIPOLYGON EMPTY"
            continue
        mask = masks[CLASSES.index(name)].astype(bool)
        drawn = wkt_to_mask(cells[class_type], xmax, ymin, mask.shape)
        assert mask.any() and (drawn == mask).mean() > MIN_WKT_AGREEMENT


def test_per_class_models_stack_into_the_output_of_one_model(
    registered: Registered, predict: Predict, tmp_path: Path
) -> None:
    image = str(scene_paths(registered)[0])
    assert predict(registered.both, "--images", image, "--out", str(tmp_path / "one"), "--no-d4")[0] == 0
    # given water first: the output is in class type order all the same
    uris = [registered.per_class["water"], registered.per_class["buildings"]]
    assert predict(*uris, "--images", image, "--out", str(tmp_path / "two"), "--no-d4")[0] == 0
    # the water model on its own standardization: a second input strip, the same probabilities
    shifted = [registered.other_scaling, registered.per_class["buildings"]]
    assert predict(*shifted, "--images", image, "--out", str(tmp_path / "shifted"), "--no-d4")[0] == 0
    name = f"{Path(image).stem}.tif"
    one, _ = masks_of(tmp_path / "one" / name)
    two, profile = masks_of(tmp_path / "two" / name)
    shifted_masks, _ = masks_of(tmp_path / "shifted" / name)
    assert profile["descriptions"] == tuple(CLASSES)
    np.testing.assert_array_equal(one, two)
    assert (one != shifted_masks).mean() < 1e-3  # equal up to float32 rounding at the threshold
    assert submission(tmp_path / "one") == submission(tmp_path / "two")


def test_water_over_buildings_removes_buildings_under_water(
    registered: Registered, predict: Predict, tmp_path: Path
) -> None:
    image = str(scene_paths(registered)[0])
    name = f"{Path(image).stem}.tif"
    assert (
        predict(
            registered.both,
            "--images",
            image,
            "--out",
            str(tmp_path / "off"),
            "--no-d4",
            "--rule",
            "water_over_buildings=off",
        )[0]
        == 0
    )
    assert predict(registered.both, "--images", image, "--out", str(tmp_path / "on"), "--no-d4")[0] == 0  # the default
    (buildings_off, water_off), _ = masks_of(tmp_path / "off" / name)
    (buildings_on, water_on), _ = masks_of(tmp_path / "on" / name)
    assert (buildings_off & water_off).sum() > 0  # something to remove
    np.testing.assert_array_equal(water_on, water_off)
    np.testing.assert_array_equal(buildings_on, buildings_off & (1 - water_off))


def test_min_area_drops_small_objects_only(registered: Registered, predict: Predict, tmp_path: Path) -> None:
    image = str(scene_paths(registered)[0])
    name = f"{Path(image).stem}.tif"
    assert predict(registered.both, "--images", image, "--out", str(tmp_path / "all"), "--no-d4")[0] == 0
    assert (
        predict(
            registered.both,
            "--images",
            image,
            "--out",
            str(tmp_path / "big"),
            "--no-d4",
            "--rule",
            "min_area=12",
            "--rule",
            "min_area.water=0",
        )[0]
        == 0
    )
    (buildings, water), _ = masks_of(tmp_path / "all" / name)
    (big_buildings, big_water), _ = masks_of(tmp_path / "big" / name)
    np.testing.assert_array_equal(big_water, water)  # the class's own value wins over the global one
    areas = [shape_area(g) for g, _ in features.shapes(buildings, mask=buildings.astype(bool))]
    assert min(areas) < 12  # there were small objects
    kept = [shape_area(g) for g, _ in features.shapes(big_buildings, mask=big_buildings.astype(bool))]
    assert kept and min(kept) >= 12  # holes count: the pixels of an object, not its outline
    assert not np.any(big_buildings & (1 - buildings))  # nothing added
    assert big_buildings.sum() == buildings.sum() - sum(a for a in areas if a < 12)


def shape_area(geometry: dict[str, Any]) -> int:
    """Pixels of a GeoJSON polygon from ``rasterio.features.shapes`` (pixel coordinates)."""
    import shapely.geometry

    return round(shapely.geometry.shape(geometry).area)


def test_bad_paths_and_models_are_one_line_each(registered: Registered, predict: Predict, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(registered.root, broken)
    first, second = (path.stem for path in scene_paths(registered))
    (broken / "sixteen_band" / f"{first}_M.tif").unlink()
    (broken / "sixteen_band" / f"{second}_P.tif").write_bytes(b"not a tiff")
    elsewhere = tmp_path / "scene.tif"
    elsewhere.write_bytes(b"")
    code, _, err = predict(
        registered.both,
        "--images",
        str(broken),
        "--images",
        str(elsewhere),
        "--images",
        str(tmp_path / "missing.tif"),
        "--images",
        str(broken / "sixteen_band"),
        "--out",
        str(tmp_path / "out"),
    )
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 5 and "Traceback" not in err
    assert f"{first}_M.tif" in lines[0] and "missing" in lines[0]
    assert f"{second}_P.tif" in lines[1] and "unreadable" in lines[1]
    assert "not a DSTL-layout scene" in lines[2] and "no such file" in lines[3]
    assert "sixteen_band: a folder without three_band/" in lines[4]
    assert not (tmp_path / "out").exists()  # nothing is written before every input is checked

    code, _, err = predict(
        "models:/no-such-model/1",
        registered.per_class["water"],
        registered.other_scaling,
        "--images",
        str(registered.root),
        "--out",
        str(tmp_path / "out"),
    )
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 2 and "Traceback" not in err
    assert lines[0].startswith("error: models:/no-such-model/1: cannot read the model")
    assert "class 'water' is also predicted by" in lines[1]


# --------------------------------------------------------------------------- metadata and rules


def test_metadata_is_checked_with_the_uri_in_the_message() -> None:
    meta = {
        "channels": list(channel_names(["rgb"], [])),
        "classes": ["trees"],
        "mean": [0, 0, 0],
        "std": [1, 1, 1],
        "patch": 16,
    }
    good = prediction_metadata("unet", {"bands": ["rgb"], "indices": []}, {**meta, "mean": np.zeros(3)})
    parsed = ModelMetadata.from_dict("models:/m/1", good)
    assert parsed.classes == ("trees",) and parsed.input.channels == 3 and parsed.patch == 16
    for broken, message in [
        (None, "no prediction metadata"),
        ({**good, "task": {**meta, "std": [1, 0, 1]}}, "standard deviation"),
        ({**good, "task": {**meta, "classes": ["lakes"]}}, "unknown class 'lakes'"),
        ({**good, "config": {"bands": ["rgb", "m"], "indices": []}}, "do not match"),
        ({**good, "task": {k: v for k, v in meta.items() if k != "mean"}}, "'mean'"),
    ]:
        with pytest.raises(ModelMetadataError, match=message) as error:
            ModelMetadata.from_dict("models:/m/1", broken)
        assert str(error.value).startswith("models:/m/1: ")


def test_rules_parse_from_texts_over_the_defaults() -> None:
    default = post.DEFAULT_RULES
    assert post.parse_rules([]) == default and default.water_over_buildings and default.min_area == 0
    rules = post.parse_rules(["water_over_buildings=off", "min_area=20,min_area.trees=5"])
    assert rules == post.Rules(False, 20, {"trees": 5})
    assert rules.min_area_of("trees") == 5 and rules.min_area_of("buildings") == 20
    for text, message in [
        ("min_area=-1", ">= 0"),
        ("min_area.lakes=3", "unknown class"),
        ("sieve", "unknown rule"),
        ("water_over_buildings=maybe", "on or off"),
    ]:
        with pytest.raises(post.RuleError, match=message):
            post.parse_rules([text])


def test_pixel_rule_and_small_objects() -> None:
    classes = ("buildings", "structures", "water")
    masks = np.zeros((3, 4, 4), np.uint8)
    masks[0, :2] = masks[1, :, :2] = 1
    masks[2, 1:3, 1:3] = 1
    out = post.apply_pixel_rules(masks.copy(), classes, post.Rules())
    assert out[0].sum() == 8 - 2 and out[1].sum() == 8 - 2 and not np.any(out[:2] & out[2])
    kept_all = post.apply_pixel_rules(masks.copy(), classes, post.Rules(water_over_buildings=False))
    np.testing.assert_array_equal(kept_all, masks)

    mask = np.zeros((16, 16), np.uint8)
    mask[1:3, 1:3] = 1  # 4 pixels
    mask[5:15, 5:15] = 1  # 100 pixels less a 1-pixel hole and a 3x3 hole with a 1-pixel object inside
    mask[6, 6] = 0
    mask[9:12, 9:12] = 0
    mask[10, 10] = 1
    kept = post.remove_small_objects(mask, 5)
    expected = mask.copy()
    expected[1:3, 1:3] = expected[10, 10] = 0
    np.testing.assert_array_equal(kept, expected)
    np.testing.assert_array_equal(post.remove_small_objects(mask, 0), mask)


# --------------------------------------------------------------------------- a real search's model


TINY_SEARCH = {
    "trainable": "unet_tiny",
    "metric": "{name: val_jaccard, mode: max}",
    "fixed": None,
    "schedule": "{scheduler: fifo, max_epochs: 1}",
    "resources": "{cpu: 1, gpu: 0}",
    "search": "{trials: 1, startup_trials: 1}",
    "params": "  lr: {loguniform: [1.0e-3, 1.0e-2]}\n",
}


@pytest.mark.slow
def test_the_model_a_search_registers_predicts_a_scene(
    tmp_path: Path, store_uri: str, local_ray: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.api import run_search
    from orchestrator.engine.runner import SearchOptions
    from orchestrator.models.metadata import read_model_metadata

    space = write_space(tmp_path, study="predict_search", **TINY_SEARCH)
    uri = store_uri
    options = SearchOptions(tracking_uri=uri, storage=str(tmp_path / "ray"), live=False, review_artifacts=False)
    result = run_search(space, options, echo=lambda _: None)
    assert result.finished == 1
    model = "models:/predict_search/1"
    metadata = read_model_metadata(model, uri)
    assert metadata.trainable == "unet_tiny" and metadata.classes == ("buildings", "water")
    assert metadata.patch == 32 and metadata.config["lr"] == pytest.approx(result.best_config["lr"])
    root = write_synthetic_dstl(tmp_path / "dstl", scenes=1, size=64, seed=9)
    try:
        main(
            [
                "predict",
                model,
                "--images",
                str(root),
                "--out",
                str(tmp_path / "out"),
                "--tracking-uri",
                uri,
                "--no-live",
                "--no-d4",
            ]
        )
    except SystemExit as exit_:
        assert exit_.code in (0, None), capsys.readouterr().err
    masks, profile = masks_of(next((tmp_path / "out").glob("*.tif")))
    assert masks.shape == (2, 64, 64) and profile["descriptions"] == ("buildings", "water")
    assert len(submission(tmp_path / "out")) == 1 + len(CLASS_TYPES)


def test_progress_counts_tiles_as_lines_or_a_bar() -> None:
    from orchestrator.production.predict import TileProgress

    lines: list[str] = []
    with TileProgress(95, lines.append, live=False) as progress:
        for _ in range(19):
            progress.advance(5, "scene")
    assert lines[0] == "scene: 5/95 tiles" and lines[-1] == "scene: 95/95 tiles" and 9 <= len(lines) <= 11
    with TileProgress(10, lines.append, live=True) as bar:
        bar.advance(10, "scene")
    assert bar.done == 10 and lines[-1] == "scene: 95/95 tiles"  # the bar prints no lines
