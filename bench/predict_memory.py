"""Peak memory and tiles/s of ``orchestrator predict`` on a scene whose full array would not fit the budget.

A synthetic DSTL-layout scene is written window by window (never whole in memory): RGB and P on the
full grid, M 4x and A 16x coarser, tiled and deflate-compressed, with simple noise-free structures
(blocks, waves, wet zones). Its full input stack (24 float32 channels on the RGB grid: the four band
groups and four indices) is ``24 * 4 * size**2`` bytes: 1.6 GB at the full size of 4096. A small
untrained U-Net (a few filters, bilinear up-sampling; memory and speed do not depend on its weights)
is logged with ``mlflow.pytorch`` (pt2, with its prediction metadata) into a SQLite store, and
``orchestrator predict`` runs on the scene in a child process, whose peak RSS the kernel reports
(``os.wait4``). Side by side: the scene's full-array size, the child's peak RSS on the large scene
and on a small one (the fixed cost of the interpreter, torch, mlflow and GDAL), and tiles/s on the
CPU and, when torch sees one, on the GPU (named). The masks' polygons cost memory and time by their
number of vertices, not by the scene's size: an untrained network with transposed convolutions draws
a checkerboard of one-pixel specks (hundreds of thousands of polygons per class on a 2048 scene), which
would measure shapely rather than ``predict``; with bilinear up-sampling on the noise-free scene its
masks follow the structures. D4 averaging is off for the large scene (8x the
forward passes, the same memory); the identity check runs with D4 on.

The identity check predicts a small synthetic scene with the command and compares its masks with the
threshold of ``trainables.unet.blend.predict_blended`` over the whole scene decoded in memory
(``DSTLDataset.decode``), standardized, and run through the loaded model.

    python -m bench.predict_memory --quick    # a 1024 x 1024 scene: the same steps in about a minute
    python -m bench.predict_memory            # a 4096 x 4096 scene (1.6 GB as a float32 stack)
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench import common

GOAL_PEAK_RSS_BYTES = 2**30  # peak RSS of predict under 1 GiB ...
GOAL_SCENE_BYTES = 1.5e9  # ... on a scene whose full float32 stack is at least 1.5 GB (full mode)
BANDS = ["rgb", "m", "a", "p"]
INDICES = ["ndwi", "evi", "savi", "ccci"]
CLASSES = ["buildings", "water"]
PATCH = 64
WRITE_ROWS = 256  # rows of the RGB grid generated and written at a time
IMAGE_ID = "6100_0_0"
XMAX, YMIN = 0.00918, -0.00904  # a DSTL-like grid_sizes.csv row
IDENTITY_SIZE = 128
MASK_BOUNDARY = 1e-5  # probabilities this close to 0.5 may round either way in two float32 computations


# --------------------------------------------------------------------------- a large scene, by window


def _signal(rows: np.ndarray, cols: np.ndarray, band: int) -> np.ndarray:
    """Reflectance-like values in [0, 1] at RGB-grid coordinates: gentle waves, 48-pixel blocks every
    160 pixels (buildings), wet zones of 700 pixels, a band-dependent tint; deterministic."""
    y, x = np.meshgrid(rows, cols, indexing="ij")
    value = 0.3 + 0.08 * np.sin(x / 41.0 + band) * np.cos(y / 57.0)
    built = ((x % 160) < 48) & ((y % 160) < 48)
    wet = ((x // 700 + y // 700) % 3) == 0
    value = np.where(built, 0.6 + 0.01 * band, value)
    value = np.where(wet & ~built, 0.05 + 0.004 * band, value)
    return value.astype(np.float32)


def write_large_scene(root: Path, size: int) -> Path:
    """A DSTL-layout folder with one ``size`` x ``size`` scene, written ``WRITE_ROWS`` rows at a time."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window

    from trainables.unet.dstl import BANDS as BAND_COUNTS
    from trainables.unet.dstl import relative_path
    from trainables.unet.synthetic import COARSER_BY, MAX_11BIT, MAX_14BIT, dstl_transform

    for group, factor in COARSER_BY.items():
        side, bands = size // factor, BAND_COUNTS[group]
        path = root / relative_path(IMAGE_ID, group)
        path.parent.mkdir(parents=True, exist_ok=True)
        profile = {
            "driver": "GTiff",
            "count": bands,
            "height": side,
            "width": side,
            "dtype": "uint16",
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
            "transform": dstl_transform(XMAX, YMIN, (size, size), factor),
        }
        scale = MAX_14BIT if group == "a" else MAX_11BIT
        step = max(1, WRITE_ROWS // factor)
        with warnings.catch_warnings(), rasterio.open(path, "w", **profile) as out:
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            for row in range(0, side, step):
                rows = np.arange(row, min(side, row + step)) * factor + factor // 2
                cols = np.arange(side) * factor + factor // 2
                block = np.stack([_signal(rows, cols, band) for band in range(bands)])
                pixels = np.clip(np.round(block * scale), 0, scale).astype(np.uint16)
                out.write(pixels, window=Window(0, row, side, len(rows)))
    with open(root / "grid_sizes.csv", "w", newline="") as f:
        csv.writer(f).writerows([["", "Xmax", "Ymin"], [IMAGE_ID, XMAX, YMIN]])
    (root / "train_wkt_v4.csv").write_text("ImageId,ClassType,MultipolygonWKT\n")
    return root / relative_path(IMAGE_ID, "rgb")


def full_stack_bytes(size: int) -> int:
    from trainables.unet.dstl import channel_names

    return len(channel_names(BANDS, INDICES)) * 4 * size * size


# --------------------------------------------------------------------------- the model


def log_small_unet(root: Path, dstl_root: Path) -> tuple[str, str]:
    """An untrained 2-level U-Net with 4 filters, its head's biases set so that about a third of a
    sample strip is in each class, logged and registered; (tracking URI, model URI)."""
    import torch
    from mlflow.tracking import MlflowClient
    from rasterio.windows import Window

    from orchestrator.models.metadata import prediction_metadata
    from orchestrator.models.register import log_pytorch_model
    from trainables.unet.dstl import DSTLDataset, channel_names
    from trainables.unet.model import UNet, UNetShape

    dataset = DSTLDataset(dstl_root)
    width = dataset.grid_shape(IMAGE_ID)[1]
    sample = dataset.read_window(IMAGE_ID, Window(0, 0, width, PATCH), BANDS, INDICES)
    mean, std = sample.mean(axis=(1, 2)), np.maximum(sample.std(axis=(1, 2)), 1e-6)
    torch.manual_seed(0)
    network = UNet(
        UNetShape(
            len(mean),
            len(CLASSES),
            depth=2,
            base_filters=4,
            growth=2.0,
            kernel=3,
            convs_per_block=1,
            batch_norm=False,
            activation="relu",
            dropout=0.0,
            upsampling="bilinear",
        )
    ).eval()
    x = torch.as_tensor((sample - mean[:, None, None]) / std[:, None, None])[None, :, :, : width // PATCH * PATCH]
    with torch.no_grad():
        logits = network(x).flatten(2)[0]
        network.head.bias -= logits.quantile(2 / 3, dim=1)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("predict-bench", (root / "artifacts").as_uri())).info.run_id
    config = {"bands": BANDS, "indices": INDICES, "classes": CLASSES, "patch": PATCH}
    meta = {
        "channels": list(channel_names(BANDS, INDICES)),
        "classes": CLASSES,
        "mean": mean,
        "std": std,
        "patch": PATCH,
    }
    example = np.zeros((2, len(mean), PATCH, PATCH), np.float32)
    with common.swallow_stdout():
        info = log_pytorch_model(
            uri, network, example, run_id, "predict-bench", prediction_metadata("unet", config, meta)
        )
    return uri, f"models:/predict-bench/{info.registered_model_version}"


# --------------------------------------------------------------------------- predict in a child


def predict_in_child(tracking_uri: str, model_uri: str, scene: Path, out: Path, *options: str) -> dict[str, Any]:
    """``orchestrator predict`` in a child process: its peak RSS (``os.wait4``), tiles, seconds and tiles/s."""
    command = [
        sys.executable,
        "-m",
        "orchestrator",
        "predict",
        model_uri,
        "--images",
        str(scene),
        "--out",
        str(out),
        "--tracking-uri",
        tracking_uri,
        "--no-live",
        *options,
    ]
    with common.Timer() as timer:
        child = subprocess.Popen(command, cwd=common.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = child.stdout.read() if child.stdout else ""
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"orchestrator predict failed ({child.returncode}):\n{output[-3000:]}")
    tiles = int(re.search(r": (\d+) tiles, D4", output).group(1))  # type: ignore[union-attr]
    device = re.search(r", on (.+?): \d+ tiles", output).group(1)  # type: ignore[union-attr]
    seconds, rate = map(float, re.search(r"in ([\d.]+)s \(([\d.]+) tiles/s\)", output).groups())  # type: ignore[union-attr]
    return {
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "tiles": tiles,
        "device": device,
        "predict_s": seconds,
        "tiles_per_s": rate,
        "wall_s": timer.s,
        "options": list(options),
    }


# --------------------------------------------------------------------------- identity


def identity_check(tracking_uri: str, model_uri: str, root: Path) -> dict[str, Any]:
    """The command's masks on a small scene against ``predict_blended`` of the whole scene in memory (D4 on)."""
    import mlflow.pytorch
    import rasterio
    import torch

    from orchestrator.tracking.mlflow_store import fluent_tracking_uri
    from trainables.unet.blend import predict_blended
    from trainables.unet.dstl import DSTLDataset
    from trainables.unet.synthetic import write_synthetic_dstl

    dstl = write_synthetic_dstl(root / "small", scenes=1, size=IDENTITY_SIZE, seed=3)
    dataset = DSTLDataset(dstl)
    image_id = dataset.image_ids()[0]
    child = predict_in_child(tracking_uri, model_uri, dstl, root / "small-out")
    with fluent_tracking_uri(tracking_uri):
        model = mlflow.pytorch.load_model(model_uri)
        task = mlflow.models.get_model_info(model_uri).metadata["task"]
    mean, std = (np.asarray(task[key], np.float32)[:, None, None] for key in ("mean", "std"))
    image = (dataset.decode(image_id, BANDS, INDICES, []).image - mean) / std

    @torch.no_grad()
    def predictor(tiles: np.ndarray) -> np.ndarray:
        return torch.sigmoid(model(torch.as_tensor(tiles))).numpy()

    probabilities = predict_blended(image, predictor, PATCH, overlap=0.5, d4_average=True)
    with rasterio.open(root / "small-out" / f"{image_id}.tif") as raster:
        masks = raster.read()
    expected = (probabilities >= 0.5).astype(np.uint8)
    if "water" in task["classes"]:  # the default water_over_buildings rule
        expected[task["classes"].index("buildings")] &= 1 - expected[task["classes"].index("water")]
    decided = np.abs(probabilities - 0.5) > MASK_BOUNDARY
    differing = int(np.count_nonzero((masks != expected) & decided))
    return {
        "scene": f"{IDENTITY_SIZE}x{IDENTITY_SIZE}",
        "d4": True,
        "pixels_compared": int(decided.sum()),
        "pixels_at_the_threshold": int((~decided).sum()),
        "pixels_differing": differing,
        "masked_fraction": float(expected.mean()),
        "identical": differing == 0,
        "peak_rss_bytes": child["peak_rss_bytes"],
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--size", type=int, help="side of the large scene in RGB pixels (default: 1024 quick, 4096 full)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass (default %(default)s)")
    args = common.parse_args(p, argv, sizes={"size": (1024, 4096)})
    import torch

    out: dict[str, Any] = {"size": args.size, "patch": PATCH, "batch_size": args.batch_size, "d4_large_scene": False}
    with common.scratch_dir("predict") as root:
        with common.Timer() as timer:
            scene = write_large_scene(root / "dstl", args.size)
        out["scene"] = {
            "pixels": f"{args.size}x{args.size}",
            "full_stack_bytes": full_stack_bytes(args.size),
            "files_bytes": sum(f.stat().st_size for f in (root / "dstl").rglob("*.tif")),
            "write_s": timer.s,
        }
        print(f"scene {args.size}x{args.size} written in {timer.s:.1f}s", flush=True)
        tracking_uri, model_uri = log_small_unet(root, root / "dstl")
        runs = {
            "cpu": predict_in_child(
                tracking_uri,
                model_uri,
                scene,
                root / "out-cpu",
                "--no-d4",
                "--device",
                "cpu",
                "--batch-size",
                str(args.batch_size),
            )
        }
        if torch.cuda.is_available():
            runs["cuda"] = predict_in_child(
                tracking_uri,
                model_uri,
                scene,
                root / "out-cuda",
                "--no-d4",
                "--device",
                "cuda",
                "--batch-size",
                str(args.batch_size),
            )
        out["runs"] = runs
        out["identity"] = identity_check(tracking_uri, model_uri, root)
    out["goal"] = {
        "peak_rss_bytes_max": GOAL_PEAK_RSS_BYTES,
        "scene_bytes_min": GOAL_SCENE_BYTES,
        "scene_large_enough": out["scene"]["full_stack_bytes"] >= GOAL_SCENE_BYTES,
        "met": all(run["peak_rss_bytes"] < GOAL_PEAK_RSS_BYTES for run in runs.values())
        and out["identity"]["identical"],
    }
    report(out)
    return common.finish("predict_memory", args.quick, out, args.out)


def report(out: dict[str, Any]) -> None:
    mib = 2**20
    rows = [
        [
            device,
            run["device"],
            out["scene"]["pixels"],
            out["scene"]["full_stack_bytes"] / mib,
            run["peak_rss_bytes"] / mib,
            run["peak_rss_bytes"] / out["scene"]["full_stack_bytes"],
            run["tiles"],
            run["tiles_per_s"],
            run["predict_s"],
        ]
        for device, run in out["runs"].items()
    ]
    identity = out["identity"]
    rows.append(
        [
            "small scene",
            "cpu",
            identity["scene"],
            full_stack_bytes(IDENTITY_SIZE) / mib,
            identity["peak_rss_bytes"] / mib,
            None,
            None,
            None,
            None,
        ]
    )
    headers = [
        "run",
        "device",
        "scene",
        "full stack MiB",
        "peak RSS MiB",
        "RSS / stack",
        "tiles",
        "tiles/s",
        "predict s",
    ]
    common.print_table(headers, rows, "orchestrator predict: peak RSS of the child process")
    print(
        f"\nidentity vs predict_blended in memory (D4): {identity['pixels_differing']} of "
        f"{identity['pixels_compared']} pixels differ ({identity['pixels_at_the_threshold']} at the threshold "
        "not compared)"
    )
    g = out["goal"]
    print(
        f"goal: peak RSS < {g['peak_rss_bytes_max'] / mib:.0f} MiB and identical masks: "
        f"{'met' if g['met'] else 'NOT met'}; scene >= 1.5 GB as a float32 stack: {g['scene_large_enough']}"
    )


if __name__ == "__main__":
    main()
