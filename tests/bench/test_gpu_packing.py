"""bench.gpu_packing: its figures from timed epochs, its cases against the shipped spaces, and a whole run on
CPU (tiny sizes, K = 1, 2) with the packages the GPU machine lacks made unimportable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench import common, gpu_packing

ROOT = Path(__file__).resolve().parents[2]


def _run(window: tuple[float, float], *trials: list[tuple[float, float]], startup: float = 2.0) -> dict:
    """A run as ``run_together`` returns it: each trial's epochs as (start, end), 100 samples an epoch."""
    return {
        "window": window,
        "trials": [
            {
                "epochs": [(s, e, 1000.0) for s, e in epochs],
                "samples_per_epoch": 100,
                "startup_s": startup,
                "warmup_s": [0.5, 0.1],
                "device": "CPU (1 threads)",
                "amp": "fp32",
                "channels_last": False,
                "peak_reserved_mib": None,
            }
            for epochs in trials
        ],
        "nvml": [],
        "memory_before_mib": None,
    }


def _case(trial_epochs: int = 10) -> gpu_packing.Case:
    return gpu_packing.Case("convnet", "ConvNet", {}, trial_epochs, 1, 0.0)


def test_figures_count_only_the_epochs_that_end_inside_the_window() -> None:
    # trial 0: epochs of 1 s, the fourth ends after the window; trial 1: epochs of 2 s
    run = _run((0.0, 3.5), [(0, 1), (1, 2), (2, 3), (3, 4)], [(0, 2), (2, 4)])
    row = gpu_packing.summarize(_case(), 2, run)
    assert row["epochs_in_window"] == [3, 1]
    assert row["aggregate_samples_per_s"] == pytest.approx(300 / 3 + 100 / 2)
    assert row["epoch_s"] == pytest.approx(1.5)  # median of the trials' mean epochs (1 s, 2 s)
    # trials of 10 epochs: 360 + 180 an hour; with 2 s of start-up each: 3600/12 + 3600/22
    assert row["trials_per_hour"] == pytest.approx(360 + 180)
    assert row["trials_per_hour_with_startup"] == pytest.approx(3600 / 12 + 3600 / 22)
    assert "gpu_util_pct" not in row


def test_ratios_are_against_one_trial_per_device_and_a_trial_without_epochs_is_an_error() -> None:
    one = gpu_packing.summarize(_case(), 1, _run((0.0, 4.0), [(0, 1), (1, 2), (2, 3), (3, 4)]))
    four = gpu_packing.summarize(_case(), 4, _run((0.0, 4.0), *[[(0, 2), (2, 4)]] * 4))
    late = gpu_packing.summarize(_case(), 2, _run((0.0, 1.0), [(0, 0.5)], [(0, 2)]))
    rows = [one, four, late]
    gpu_packing.add_ratios(rows)
    assert one["x_trials_per_hour"] == 1.0
    assert four["x_trials_per_hour"] == pytest.approx(2.0)  # 4 trials at half the speed each
    assert four["x_samples_per_s"] == pytest.approx(2.0)
    assert "error" in late and "x_trials_per_hour" not in late


def test_nvml_samples_give_utilisation_and_memory_per_trial() -> None:
    run = _run((0.0, 2.0), [(0, 1), (1, 2)], [(0, 1), (1, 2)])
    run["nvml"] = [(0.0, 40, 3000.0), (0.1, 60, 5000.0), (0.2, None, None)]
    run["memory_before_mib"] = 1000.0
    row = gpu_packing.summarize(_case(), 2, run)
    assert (
        row["gpu_util_pct"] == 50 and row["gpu_memory_trials_mib"] == 4000 and row["gpu_memory_per_trial_mib"] == 2000
    )


def test_goals_are_not_measured_without_a_gpu_and_judged_on_one() -> None:
    rows = [
        {"k": 1, "x_trials_per_hour": 1.0},
        {"k": 4, "x_trials_per_hour": 2.7, "x_trials_per_hour_with_startup": 3.1},
    ]
    precision = {"rows": [{"variant": "fp32", "x_fp32": 1.0}, {"variant": "bf16+cl", "x_fp32": 1.4}]}
    out = {"device": "cpu", "packing": {"convnet": {"rows": rows}}, "precision": precision}
    goal = gpu_packing.goals(out)
    assert goal["packing"]["met"] is None and goal["packing"]["note"] == gpu_packing.NOT_MEASURED
    assert goal["precision"]["met"] is None and "not measured" in goal["precision"]["note"]
    goal = gpu_packing.goals({**out, "device": "cuda"})
    assert goal["packing"]["met"] is True and goal["packing"]["x_trials_per_hour"] == 2.7
    assert goal["precision"]["met"] is False and goal["precision"]["best"] == "bf16+cl"


def test_runs_past_the_budget_are_skipped_and_say_so() -> None:
    saved: list[int] = []
    budget = gpu_packing.Budget(0.0, lambda: saved.append(1))
    rows: list[dict] = []
    gpu_packing.packing(_case(), [1, 4], 0.1, None, budget, rows)  # nothing is started
    assert [r["k"] for r in rows] == [1, 4] and all(r["error"] == gpu_packing.SKIPPED for r in rows)
    goal = gpu_packing.goals({"device": "cuda", "packing": {"convnet": {"rows": rows}}, "precision": {}})
    assert goal["packing"]["met"] is None and goal["packing"]["note"] == gpu_packing.SKIPPED
    assert goal["precision"]["met"] is None and goal["precision"]["note"].startswith("not measured")
    assert not saved  # nothing ran, nothing to write


def test_without_a_gpu_nvml_says_why_it_measured_nothing() -> None:
    nvml, note = gpu_packing.Nvml.open()  # nvidia-ml-py missing, or no NVIDIA driver here
    assert nvml is None and note.startswith("not measured: ")


def test_cases_are_the_shipped_spaces_at_their_defaults() -> None:
    cases = gpu_packing.cases("gpu", on_cpu=False)
    convnet, unet = cases["convnet"], cases["unet"]
    # the demo's ConvNet: convnet_digits/v1's defaults, a trial of its 12 epochs, its 1 CPU
    assert convnet.config["filters"] == 20 and convnet.config["batch_size"] == 64 and convnet.config["data"] == "digits"
    assert convnet.trial_epochs == 12 and convnet.cpus == 1
    assert (unet.config["patch"], unet.config["base_filters"], unet.config["depth"]) == (256, 32, 5)
    assert unet.trial_epochs == 40 and unet.cpus == 2 and unet.space_gpu == 0.5
    assert gpu_packing.cases("cpu", on_cpu=True)["unet"].cpus == 1


def test_in_memory_scenes_have_the_channels_of_the_shipped_bands_and_indices() -> None:
    from trainables.unet.dstl import BANDS, channel_names

    assert gpu_packing.BAND_COUNTS == BANDS
    config = gpu_packing.cases("gpu", on_cpu=False)["unet"].config
    assert gpu_packing.channels(config) == len(channel_names(config["bands"], config["indices"])) == 24
    tiny = {**config, **gpu_packing.UNET_SIZES["tiny"]}
    train_x, train_y, val_x, val_y = gpu_packing.synthetic_scenes(tiny)
    assert train_x.shape == (3, 24, 64, 64) and val_x.shape == (1, 24, 64, 64)
    assert train_y.shape == (3, 2, 64, 64) and val_y.shape == (1, 2, 64, 64) and train_y.dtype.name == "uint8"
    assert 0 < train_y.mean() < 1


class Reporter:
    def __init__(self) -> None:
        self.reports: list[dict] = []

    def report(self, metrics: dict, checkpoint_dir: str | None = None) -> None:
        self.reports.append(dict(metrics))

    def restore_dir(self) -> None:
        return None


@pytest.mark.slow
def test_a_trial_task_from_in_memory_scenes_trains_on_the_shared_loop() -> None:
    from trainables.loop import fit

    config = {**gpu_packing.cases("tiny", on_cpu=True)["unet"].config, "cpus": 1}
    variant = next(v for v in gpu_packing.VARIANTS if v.name == "fp32+cl")
    task, runtime, cfg = gpu_packing.build_task(gpu_packing.Job("unet", config, 0, 1, 0.0, variant))
    assert runtime.channels_last and runtime.amp_dtype is None and runtime.device.type == "cpu"
    reporter = Reporter()
    fit(task, runtime, reporter, max_epochs=2, seed=cfg.seed)
    assert [r["epoch"] for r in reporter.reports] == [1, 2] and all(r["samples_per_s"] > 0 for r in reporter.reports)
    assert 0.0 <= reporter.reports[-1]["val_jaccard"] <= 1.0


@pytest.mark.slow
def test_the_convnet_trial_is_the_family_task_and_the_window_ends_fit() -> None:
    from trainables.loop import fit

    config = {**gpu_packing.cases("tiny", on_cpu=True)["convnet"].config, "cpus": 1}
    task, runtime, cfg = gpu_packing.build_task(gpu_packing.Job("convnet", config, 0, 1, 0.0))
    assert task.name == "convnet" and task.train.samples == 240  # 300 digits less a fifth for validation
    waited: list[list[float]] = []
    end: list[float] = []
    counted: list[int] = []

    def wait_for_window(warmup_s: list[float]) -> float:
        waited.append(list(warmup_s))
        end.append(time.monotonic() + 0.2)
        return time.monotonic()

    def closed() -> bool:
        return time.monotonic() >= end[0]

    reporter = gpu_packing.WindowReporter(1, time.monotonic(), wait_for_window, closed, lambda: counted.append(1))
    with pytest.raises(gpu_packing.WindowClosed):
        fit(task, runtime, reporter, max_epochs=10**6, seed=cfg.seed)
    assert len(waited) == 1 and len(waited[0]) == 1  # after the one warm-up epoch
    assert len(counted) == len(reporter.epochs) >= 1
    assert reporter.epochs[-1][1] >= end[0] > reporter.epochs[0][0] >= reporter.start


# the packages the GPU machine lacks: the bench (and its trial processes) must not import them
BLOCKED = ("ray", "mlflow", "rasterio", "shapely", "hyperopt", "optuna", "pyarrow", "kubernetes", "torchinfo")


@pytest.mark.slow
def test_a_whole_run_on_cpu_without_the_packages_the_gpu_machine_lacks(tmp_path: Path) -> None:
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""
            import contextlib, sys

            with contextlib.suppress(ImportError):  # the test suite's watcher of starts (tests/startwatch)
                import startwatch

            class Blocked:
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in {BLOCKED!r}:
                        raise ModuleNotFoundError(f"{{name}} is not on the GPU machine")
                    return None

            sys.meta_path.insert(0, Blocked())
            """
        )
    )
    paths = [str(blocker), str(ROOT), os.environ.get("PYTHONPATH", "")]  # the blocker's sitecustomize comes first
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}
    blocked = subprocess.run([sys.executable, "-c", "import rasterio"], env=env, capture_output=True, text=True)
    assert blocked.returncode != 0 and "not on the GPU machine" in blocked.stderr  # the blocker works
    out = tmp_path / "gpu_packing.json"
    # the U-Net (the ConvNet's trial runs in-process above): K = 1, 2 and one precision setting
    argv = ["--quick", "--size", "tiny", "--models", "unet", "--ks", "1,2", "--window-s", "0.3", "--variants", "bf16"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_packing", *argv, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.rstrip().splitlines()[-1].startswith("RESULT ")
    result = common.parse_result_line(done.stdout)
    assert result["device"] == "cpu" and result["gpu"] is None
    rows = result["packing"]["unet"]["rows"]
    assert [r["k"] for r in rows] == [1, 2] and all("error" not in r for r in rows), rows
    assert all(r["aggregate_samples_per_s"] > 0 and r["trials_per_hour"] > 0 for r in rows)
    assert rows[0]["x_trials_per_hour"] == 1.0 and len(rows[1]["epochs_in_window"]) == 2
    assert json.loads(out.read_text())["packing"]["unet"]["rows"] == rows
    (precision,) = result["precision"]["rows"]
    assert (
        precision["variant"] == "bf16" and precision["amp"] == "bfloat16" and "x_fp32" not in precision
    )  # no FP32 row
    assert result["goal"]["packing"]["met"] is None and result["goal"]["precision"]["met"] is None
    assert gpu_packing.NOT_MEASURED in done.stdout and "CPU (" in done.stdout
