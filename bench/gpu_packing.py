"""GPU packing: K trials of the shared training loop on one GPU, as Ray places trials with fractional GPUs.

``resources: {gpu: 1/K}`` lets Ray start K trial processes that all see the same device; nothing divides the
GPU between them (no memory limit, no MPS). This benchmark does the same: K spawned processes, each running
``trainables.loop.fit`` (the shared loop: train, validate, checkpoint and report every epoch) on the task a
trial builds, with the trial's threads (the space's ``resources.cpu``):

* the ConvNet at the demo's sizes: ``search_spaces/convnet_digits/v1.yaml``'s fixed values and defaults, the
  family's ``build_task`` as a trial calls it;
* the U-Net at a realistic size: ``search_spaces/unet_dstl/v2.yaml``'s fixed values and defaults with patch
  256, base 32 filters, depth 5, on 24-channel scenes made in memory (the GPU machine has no rasterio to
  read scenes), through ``trainables.unet.task.task_from_arrays``, the function a trial's ``build_task``
  ends with.

After their warm-up epochs all K run through one timed window; each process's rate counts the epochs it
finished inside it. Per K: aggregate training samples/s, per-trial epoch time (train + validation +
checkpoint), GPU utilisation (NVML: the share of time a kernel ran, sampled every 0.1 s) and memory (NVML:
device memory used during the window less what was used before the trials started; each trial's torch peak
too), per-trial start-up (process start to task built: imports, CUDA context, data, model) and trials per hour
(a trial = the space's ``max_epochs`` epochs) packed vs one trial per GPU. Then the realistic U-Net alone on
the GPU: FP32 against channels_last, bf16 autocast and torch.compile (training samples/s). Without a GPU the
same runs on CPU cores (labelled CPU) and every GPU figure is printed as not measured.

Needs torch, numpy, PyYAML and the project's ``trainables`` (+ ``nvidia-ml-py`` for GPU utilisation and
memory); no ray, mlflow or rasterio, so it runs on a GPU machine from the working tree:

    PYTHONPATH=. python3 -m bench.gpu_packing --quick     # about 4 minutes on one H100 (4-s windows)
    PYTHONPATH=. python3 -m bench.gpu_packing             # 8-s windows
    .venv/bin/python -m bench.gpu_packing --quick         # no GPU: CPU rows (K = 1, 2), GPU rows not measured
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import multiprocessing as mp
import os
import queue
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench import common

CONVNET_SPACE = common.ROOT / "search_spaces" / "convnet_digits" / "v1.yaml"
UNET_SPACE = common.ROOT / "search_spaces" / "unet_dstl" / "v2.yaml"

# the U-Net sizes: "gpu" is the realistic one; "cpu" fits 2 cores; "tiny" is for the smoke test.
# samples_per_epoch is lowered from the spec's 512 so that 8 packed trials finish epochs inside a window.
UNET_SIZES: dict[str, dict[str, Any]] = {
    "gpu": {"patch": 256, "base_filters": 32, "depth": 5, "samples_per_epoch": 256, "scenes": 8, "scene_size": 512},
    "cpu": {"patch": 64, "base_filters": 8, "depth": 3, "samples_per_epoch": 128, "scenes": 4, "scene_size": 128},
    "tiny": {
        "patch": 32,
        "base_filters": 4,
        "depth": 2,
        "convs_per_block": 1,
        "samples_per_epoch": 16,
        "batch_size": 8,
        "scenes": 4,
        "scene_size": 64,
        "classes": ["buildings", "water"],
    },
}
# the ConvNet runs at the demo's sizes on GPU and CPU alike; "tiny" is its spec's tiny variant
CONVNET_SIZES: dict[str, dict[str, Any]] = {
    "gpu": {},
    "cpu": {},
    "tiny": {"subset": 300, "conv_layers": 1, "filters": 4, "fc_width": 16, "batch_size": 32},
}
BAND_COUNTS = {"rgb": 3, "m": 8, "a": 8, "p": 1}  # trainables.unet.dstl.BANDS (that module needs rasterio)

GPU_KS = (1, 2, 4, 8)
CPU_KS = (1, 2)
WINDOW_S = {"gpu": (4.0, 8.0), "cpu": (3.0, 6.0), "tiny": (0.3, 0.3)}  # (quick, full) timed seconds per run
MIN_WINDOW_EPOCHS = 3  # a window lasts at least this many of the slowest warm-up epoch
MAX_WINDOW_STRETCH = 10  # ... and stays open (up to this many times as long) until every trial ended an epoch in it
WARMUP_EPOCHS = 2  # the first does cuDNN's autotuning (and compiles, with torch.compile)
NVML_EVERY_S = 0.1
START_TIMEOUT_S = 600.0  # spawn to ready (imports, CUDA, data, warm-up epochs; compiling takes a minute)

PACKING_GOAL = 2.5  # trials per hour of PACKING_GOAL_K ConvNet trials on one GPU / one trial per GPU
PACKING_GOAL_K = 4
PRECISION_GOAL = 1.5  # the realistic U-Net's best setting / FP32, training samples/s
NOT_MEASURED = "not measured: no GPU was lent (CUDA is not available here)"


@dataclass(frozen=True)
class Variant:
    """How a trial computes: autocast dtype, memory format, torch.compile. ``None`` in a job means the
    runtime's own choice (``Runtime.create``: on CUDA bf16 autocast + channels_last, on CPU FP32)."""

    name: str
    label: str
    precision: str  # the trial's ``precision`` key: fp32 | bf16
    channels_last: bool
    compile: bool = False


VARIANTS = (
    Variant("fp32", "FP32 (TF32 allowed, NCHW)", "fp32", False),
    Variant("fp32+cl", "FP32 + channels_last (the runtime's precision: fp32 on CUDA)", "fp32", True),
    Variant("bf16", "bf16 autocast (NCHW)", "bf16", False),
    Variant("bf16+cl", "bf16 autocast + channels_last (the runtime's auto on CUDA)", "bf16", True),
    Variant("bf16+cl+compile", "bf16 autocast + channels_last + torch.compile", "bf16", True, True),
)
BASELINE_VARIANT = "fp32"


@dataclass(frozen=True)
class Case:
    """One model at one size, as the trials of its space would run it."""

    model: str  # a registered trainable on the shared loop: convnet | unet
    label: str
    config: dict[str, Any]  # the trial's config: the space's fixed values and defaults, then the size's
    trial_epochs: int  # the space's schedule.max_epochs: a whole trial, for trials per hour
    cpus: int  # torch threads per trial
    space_gpu: float  # the space's resources.gpu (0: the space asks for no GPU)


@dataclass(frozen=True)
class Job:
    """What one spawned trial process runs."""

    model: str
    config: dict[str, Any]
    index: int
    warmup_epochs: int
    spawned: float  # time.monotonic() in the parent just before the process started
    variant: Variant | None = None


# --------------------------------------------------------------------------- cases


def space_config(path: Any, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], int, float, float]:
    """A shipped space's trial config at its defaults (fixed values, then each parameter's default, then
    ``overrides``), its trial length in epochs and its per-trial CPUs and GPU share."""
    from orchestrator.spaces import load_version

    version = load_version(path)
    config = {**version.fixed, **version.params.defaults(), **overrides}
    resources = version.resources
    return config, version.schedule.max_epochs, resources.cpu, resources.gpu


def cases(size: str, on_cpu: bool) -> dict[str, Case]:
    """The ConvNet (demo sizes) and the U-Net (``size``: gpu = realistic) as their spaces' trials run them.
    On CPU each trial gets one thread (K = 2 trials fill 2 cores)."""
    out = {}
    config, epochs, cpus, gpu = space_config(CONVNET_SPACE, CONVNET_SIZES[size])
    shape = f"filters {config['filters']}, fc {config['fc_width']}, batch {config['batch_size']}"
    out["convnet"] = Case(
        "convnet",
        f"ConvNet, the demo's sizes (convnet_digits/v1 defaults: {shape})" if size != "tiny" else "ConvNet, tiny",
        config,
        epochs,
        1 if on_cpu else max(1, int(cpus)),
        gpu,
    )
    config, epochs, cpus, gpu = space_config(UNET_SPACE, UNET_SIZES[size])
    shape = (
        f"patch {config['patch']}, base {config['base_filters']} filters, depth {config['depth']}, "
        f"batch {config['batch_size']}, {config['samples_per_epoch']} crops/epoch"
    )
    what = {"gpu": "realistic size", "cpu": "CPU size", "tiny": "tiny"}[size]
    out["unet"] = Case(
        "unet",
        f"U-Net, {what} (unet_dstl/v2 defaults: {shape})",
        config,
        epochs,
        1 if on_cpu else max(1, int(cpus)),
        gpu,
    )
    return out


def channels(config: Mapping[str, Any]) -> int:
    """Input channels of a U-Net trial: its band groups' bands, then one per index."""
    return sum(BAND_COUNTS[group] for group in config["bands"]) + len(config["indices"])


def synthetic_scenes(config: Mapping[str, Any], seed: int = 0) -> tuple[Any, Any, Any, Any]:
    """Standardized scenes and masks made in memory, shaped as the trial's would be: (train_x, train_y, val_x,
    val_y), images (N, channels, S, S) float32 and masks (N, classes, S, S) uint8 of 16-pixel blocks; the
    first channels carry the masks (so the loss can fall). A quarter of the scenes (at least one) validate."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n, size = int(config["scenes"]), int(config["scene_size"])
    classes = len(config["classes"])
    block = 16 if size % 16 == 0 else 1
    coarse = rng.random((n, classes, size // block, size // block)) < 0.2
    masks = coarse.repeat(block, axis=2).repeat(block, axis=3).astype(np.uint8)
    images = rng.standard_normal((n, channels(config), size, size), dtype=np.float32)
    images[:, :classes] += masks
    n_val = max(1, n // 4)
    return images[n_val:], masks[n_val:], images[:n_val], masks[:n_val]


# --------------------------------------------------------------------------- one trial process


class WindowClosed(Exception):
    """The timed window is over: ends ``fit`` in a benchmark process."""


class WindowReporter:
    """The trial's reporter: times every epoch (report to report: train, validation and checkpoint), signals
    the parent after the warm-up epochs, waits for the common window to open, counts each epoch it ends
    (``counted``) and ends ``fit`` at the first report after the window is closed (``closed``)."""

    def __init__(
        self,
        warmup_epochs: int,
        built: float,
        wait_for_window: Callable[[list[float]], float],
        closed: Callable[[], bool],
        counted: Callable[[], None] = lambda: None,
    ):
        self.warmup_epochs = warmup_epochs
        self.wait_for_window = wait_for_window
        self.closed = closed
        self.counted = counted
        self.last = built
        self.warmup_s: list[float] = []
        self.epochs: list[tuple[float, float, float]] = []  # (start, end, training samples/s from fit)
        self.start = math.inf

    def restore_dir(self) -> str | None:
        return None

    def report(self, metrics: Mapping[str, float], checkpoint_dir: str | None = None) -> None:
        now = time.monotonic()
        if len(self.warmup_s) < self.warmup_epochs:
            self.warmup_s.append(now - self.last)
            self.last = now
            if len(self.warmup_s) == self.warmup_epochs:
                self.start = self.wait_for_window(self.warmup_s)
                self.last = time.monotonic()
            return
        self.epochs.append((self.last, now, float(metrics["samples_per_s"])))
        self.last = now
        self.counted()
        if self.closed():
            raise WindowClosed


def build_task(job: Job) -> tuple[Any, Any, Any]:
    """The trial's task and runtime as ``trainables.loop.prepare`` makes them (resolve, seed,
    ``Runtime.create``, the family's ``build_task``), but for the U-Net from scenes made in memory, and with
    the job's variant (precision, memory format, torch.compile) where it has one."""
    import torch

    from trainables.api import load_object
    from trainables.config import resolve
    from trainables.loop import Runtime, seed_everything
    from trainables.registry import get

    config = dict(job.config)
    if job.variant is not None:
        config["precision"] = job.variant.precision
    cfg = resolve(job.model, config)
    seed_everything(cfg.seed)
    runtime = Runtime.create(cfg)
    if job.variant is not None:
        runtime = dataclasses.replace(runtime, channels_last=job.variant.channels_last)
    if job.model == "unet":
        from trainables.unet.task import task_from_arrays

        task = task_from_arrays(cfg, runtime, *synthetic_scenes(cfg, seed=job.index), cfg["classes"])
    else:
        task = load_object(get(job.model).task)(cfg, runtime)
    if job.variant is not None and job.variant.compile:
        task.model = torch.compile(task.model)
    return task, runtime, cfg


def _trial_process(job: Job, messages: Any, go: Any, window: Any, stop: Any, counts: Any) -> None:
    """A spawned trial: build its task, run the shared loop's ``fit`` until the window closes, send what it
    measured (or the error that ended it) to the parent."""
    try:
        import torch

        from trainables.loop import fit

        task, runtime, cfg = build_task(job)
        built = time.monotonic()

        def wait_for_window(warmup_s: list[float]) -> float:
            messages.put(("ready", job.index, {"warmup_s": warmup_s}))
            go.wait()
            time.sleep(max(0.0, window[0] - time.monotonic()))
            return window[0]

        def counted() -> None:
            counts[job.index] += 1  # only this process writes its entry

        reporter = WindowReporter(job.warmup_epochs, built, wait_for_window, stop.is_set, counted)
        with contextlib.suppress(WindowClosed):
            fit(task, runtime, reporter, max_epochs=10**9, seed=cfg.seed)
        cuda = runtime.device.type == "cuda"
        messages.put(
            (
                "done",
                job.index,
                {
                    "startup_s": built - job.spawned,
                    "warmup_s": reporter.warmup_s,
                    "epochs": reporter.epochs,
                    "samples_per_epoch": task.train.samples,
                    "device": torch.cuda.get_device_name(runtime.device)
                    if cuda
                    else f"CPU ({runtime.threads} threads)",
                    "amp": str(runtime.amp_dtype).replace("torch.", "") if runtime.amp_dtype else "fp32",
                    "channels_last": runtime.channels_last,
                    "peak_allocated_mib": torch.cuda.max_memory_allocated(runtime.device) / 2**20 if cuda else None,
                    "peak_reserved_mib": torch.cuda.max_memory_reserved(runtime.device) / 2**20 if cuda else None,
                },
            )
        )
    except BaseException as error:  # the parent ends the run and prints the reason in its row
        first = (str(error).splitlines() or [""])[0][:300]
        messages.put(("error", job.index, f"{type(error).__name__}: {first}"))


# --------------------------------------------------------------------------- NVML


class Nvml:
    """GPU utilisation and memory of the device the trials use, through ``nvidia-ml-py`` (``pynvml``)."""

    def __init__(self, pynvml: Any, handle: Any):
        self.pynvml, self.handle = pynvml, handle

    @classmethod
    def open(cls) -> tuple[Nvml | None, str]:
        """The first visible device (``CUDA_VISIBLE_DEVICES``' first entry), or ``None`` and why not."""
        try:
            import pynvml
        except ImportError:
            return None, "not measured: nvidia-ml-py is not installed (pip install nvidia-ml-py: the gpu-bench extra)"
        try:
            pynvml.nvmlInit()
            first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
            if first.isdigit():
                handle = pynvml.nvmlDeviceGetHandleByIndex(int(first))
            else:
                handle = pynvml.nvmlDeviceGetHandleByUUID(first)
            name = pynvml.nvmlDeviceGetName(handle)
        except pynvml.NVMLError as error:
            return None, f"not measured: NVML: {error}"
        return cls(pynvml, handle), name.decode() if isinstance(name, bytes) else str(name)

    def memory_used_mib(self) -> float | None:
        try:
            return self.pynvml.nvmlDeviceGetMemoryInfo(self.handle).used / 2**20
        except self.pynvml.NVMLError:  # not supported on this device or driver: left out, not guessed
            return None

    def utilization(self) -> int | None:
        try:
            return int(self.pynvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)
        except self.pynvml.NVMLError:
            return None

    def sample_until(self, end: float) -> list[tuple[float, int | None, float | None]]:
        """(time, utilisation %, memory used MiB) every ``NVML_EVERY_S`` until ``end`` (time.monotonic)."""
        samples = []
        while (now := time.monotonic()) < end:
            samples.append((now, self.utilization(), self.memory_used_mib()))
            time.sleep(min(NVML_EVERY_S, max(0.0, end - time.monotonic())))
        return samples


# --------------------------------------------------------------------------- running K trials together


def run_together(
    jobs: Sequence[Job], window_s: float, nvml: Nvml | None, start_timeout_s: float = START_TIMEOUT_S
) -> dict[str, Any]:
    """Spawn one process per job (all see the same device), wait until each has run its warm-up epochs, open
    one window for all, sample NVML through it, and return what each measured: ``{"trials": [...], "window":
    (start, end), "nvml": [...], "memory_before_mib": ...}`` or ``{"error": ...}``.

    The window lasts at least ``window_s`` and ``MIN_WINDOW_EPOCHS`` of the slowest warm-up epoch, and stays
    open until every trial has ended an epoch inside it (at most ``MAX_WINDOW_STRETCH`` times as long): the
    trials keep running until the parent closes it, so all K compete for the device to its end."""
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    go, stop = ctx.Event(), ctx.Event()
    window = ctx.Array("d", 1)
    counts = ctx.Array("i", len(jobs))
    before = nvml.memory_used_mib() if nvml else None
    processes = []
    for job in jobs:
        job = dataclasses.replace(job, spawned=time.monotonic())
        process = ctx.Process(target=_trial_process, args=(job, messages, go, window, stop, counts), daemon=True)
        process.start()
        processes.append(process)
    try:
        ready = _collect(messages, processes, "ready", time.monotonic() + start_timeout_s)
        if "error" in ready:
            return ready
        slowest = max(max(r["warmup_s"][-1:] or [0.0]) for r in ready["trials"])
        length = max(window_s, MIN_WINDOW_EPOCHS * slowest)
        start = time.monotonic() + 0.05
        window[0] = start
        go.set()
        samples = nvml.sample_until(start + length) if nvml else _sleep_until(start + length)
        while min(counts) < 1 and time.monotonic() < start + MAX_WINDOW_STRETCH * length:
            if any(not p.is_alive() for p in processes):
                break
            samples += (
                nvml.sample_until(time.monotonic() + NVML_EVERY_S) if nvml else _sleep_until(time.monotonic() + 0.05)
            )
        end = time.monotonic()
        stop.set()
        done = _collect(messages, processes, "done", time.monotonic() + start_timeout_s)
        if "error" in done:
            return done
        return {"trials": done["trials"], "window": (start, end), "nvml": samples, "memory_before_mib": before}
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():  # stuck (an error elsewhere ended the run): ours to end
                process.terminate()
                process.join(timeout=10)


def _sleep_until(end: float) -> list[Any]:
    time.sleep(max(0.0, end - time.monotonic()))
    return []


def _collect(messages: Any, processes: Sequence[Any], kind: str, deadline: float) -> dict[str, Any]:
    """One ``kind`` message from each process, in job order; ``{"error": ...}`` at the first error, when a
    process died without a word, or at ``deadline``."""
    got: dict[int, dict[str, Any]] = {}
    while len(got) < len(processes):
        try:
            what, index, payload = messages.get(timeout=1.0)
        except queue.Empty:
            dead = [i for i, p in enumerate(processes) if i not in got and not p.is_alive()]
            if dead:
                time.sleep(0.5)  # a message may still be on its way
                if messages.empty():
                    return {"error": f"trial process {dead[0]} ended (exit code {processes[dead[0]].exitcode})"}
            if time.monotonic() > deadline:
                return {"error": f"timed out waiting for {kind} from {len(processes) - len(got)} trial process(es)"}
            continue
        if what == "error":
            return {"error": f"trial {index}: {payload}"}
        if what == kind:
            got[index] = payload
    return {"trials": [got[i] for i in range(len(processes))]}


# --------------------------------------------------------------------------- figures


def trial_figures(trial: Mapping[str, Any], window: tuple[float, float]) -> dict[str, Any] | None:
    """One process's epochs inside the window: count, mean epoch seconds, samples/s over them (all its
    epochs' samples over the time from the window's start to the end of its last epoch inside the window),
    median training-phase samples/s (fit's own ``samples_per_s``). ``None`` when no epoch ended inside."""
    start, end = window
    inside = [e for e in trial["epochs"] if e[1] <= end]
    if not inside:
        return None
    span = inside[-1][1] - start
    return {
        "epochs": len(inside),
        "epoch_s": span / len(inside),
        "samples_per_s": len(inside) * trial["samples_per_epoch"] / span,
        "train_samples_per_s": statistics.median(e[2] for e in inside),
    }


def summarize(case: Case, k: int, run: Mapping[str, Any]) -> dict[str, Any]:
    """A table row for K trials run together: aggregate rates, per-trial epoch time and start-up, trials per
    hour (a trial = ``case.trial_epochs`` epochs; with and without its start-up), GPU utilisation and memory."""
    if "error" in run:
        return {"k": k, "error": run["error"]}
    per = [trial_figures(t, run["window"]) for t in run["trials"]]
    if any(p is None for p in per):
        return {"k": k, "error": "a trial finished no epoch inside the window (raise --window-s)"}
    figures = [p for p in per if p is not None]
    startups = [t["startup_s"] for t in run["trials"]]
    row: dict[str, Any] = {
        "k": k,
        "device": run["trials"][0]["device"],
        "amp": run["trials"][0]["amp"],
        "channels_last": run["trials"][0]["channels_last"],
        "window_s": run["window"][1] - run["window"][0],
        "epochs_in_window": [p["epochs"] for p in figures],
        "aggregate_samples_per_s": sum(p["samples_per_s"] for p in figures),
        "epoch_s": statistics.median(p["epoch_s"] for p in figures),
        "train_samples_per_s": statistics.median(p["train_samples_per_s"] for p in figures),
        "startup_s": statistics.median(startups),
        "first_epoch_s": statistics.median(t["warmup_s"][0] for t in run["trials"]),
        "trials_per_hour": sum(3600 / (case.trial_epochs * p["epoch_s"]) for p in figures),
        "trials_per_hour_with_startup": sum(
            3600 / (s + case.trial_epochs * p["epoch_s"]) for s, p in zip(startups, figures, strict=True)
        ),
        "peak_reserved_mib": _max_or_none(t["peak_reserved_mib"] for t in run["trials"]),
    }
    utilization = [s[1] for s in run["nvml"] if s[1] is not None]
    memory = [s[2] for s in run["nvml"] if s[2] is not None]
    row["nvml_samples"] = len(run["nvml"])
    if utilization:
        row["gpu_util_pct"] = statistics.mean(utilization)
    if memory:
        row["gpu_memory_used_mib"] = max(memory)
        if run["memory_before_mib"] is not None:
            row["gpu_memory_trials_mib"] = row["gpu_memory_used_mib"] - run["memory_before_mib"]
            row["gpu_memory_per_trial_mib"] = row["gpu_memory_trials_mib"] / k
    return row


def _max_or_none(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's aggregate samples/s and trials per hour over those of K = 1 (one trial per device)."""
    one = next((r for r in rows if r["k"] == 1 and "error" not in r), None)
    for row in rows:
        if one is None or "error" in row:
            continue
        row["x_samples_per_s"] = row["aggregate_samples_per_s"] / one["aggregate_samples_per_s"]
        row["x_trials_per_hour"] = row["trials_per_hour"] / one["trials_per_hour"]
        row["x_trials_per_hour_with_startup"] = (
            row["trials_per_hour_with_startup"] / one["trials_per_hour_with_startup"]
        )


class Budget:
    """The seconds the whole benchmark may take: a run that would start after them is skipped and its row
    says so, and every row is written out as it ends, so a device command with a hard limit keeps its figures."""

    def __init__(self, seconds: float, save: Callable[[], None] = lambda: None):
        self.end = time.monotonic() + seconds
        self.save = save

    def spent(self) -> bool:
        return time.monotonic() >= self.end

    def start_timeout(self) -> float:
        """How long a run may wait for its trials' warm-up: the budget left, at least a minute."""
        return min(START_TIMEOUT_S, max(60.0, self.end - time.monotonic()))


SKIPPED = "not measured: the time budget (--budget-s) was spent"


def packing(
    case: Case, ks: Sequence[int], window_s: float, nvml: Nvml | None, budget: Budget, rows: list[dict[str, Any]]
) -> None:
    """K trials of ``case`` together for each K, a row each (appended to ``rows`` as it ends)."""
    for k in ks:
        if budget.spent():
            rows.append({"k": k, "error": SKIPPED})
            continue
        print(f"{case.model}: {k} trial(s) together ...", flush=True)
        # each trial its own seed (its own batches and initial weights), as the trials of a search have
        jobs = [Job(case.model, {**case.config, "cpus": case.cpus, "seed": i}, i, WARMUP_EPOCHS, 0.0) for i in range(k)]
        rows.append(summarize(case, k, run_together(jobs, window_s, nvml, budget.start_timeout())))
        add_ratios(rows)
        budget.save()


def precision(
    case: Case,
    variants: Sequence[Variant],
    window_s: float,
    nvml: Nvml | None,
    budget: Budget,
    rows: list[dict[str, Any]],
) -> None:
    """One trial alone per variant, a row each (appended to ``rows``); training samples/s (fit's, median over
    the window's epochs) against the baseline variant's."""
    for variant in variants:
        if budget.spent():
            rows.append({"variant": variant.name, "label": variant.label, "k": 1, "error": SKIPPED})
            continue
        print(f"{case.model}: {variant.label} ...", flush=True)
        config = {**case.config, "cpus": case.cpus}
        warmup = WARMUP_EPOCHS + (1 if variant.compile else 0)
        run = run_together([Job(case.model, config, 0, warmup, 0.0, variant)], window_s, nvml, budget.start_timeout())
        rows.append({"variant": variant.name, "label": variant.label, **summarize(case, 1, run)})
        base = next((r for r in rows if r["variant"] == BASELINE_VARIANT and "error" not in r), None)
        for row in rows:
            if base is not None and "error" not in row:
                row["x_fp32"] = row["train_samples_per_s"] / base["train_samples_per_s"]
        budget.save()


def goals(out: Mapping[str, Any]) -> dict[str, Any]:
    """The two goals, measured only on a GPU: ``met`` is None (with a note) where they were not measured."""
    gpu = out["device"] == "cuda"
    result: dict[str, Any] = {}
    rows = out["packing"].get("convnet", {}).get("rows", [])
    at_k = next((r for r in rows if r["k"] == PACKING_GOAL_K), None)
    row = at_k if at_k is not None and "x_trials_per_hour" in at_k else None
    why_not = f"not measured: no K={PACKING_GOAL_K} ConvNet row with a K=1 row beside it"
    if at_k is not None and "error" in at_k:
        why_not = _failure(at_k["error"])
    result["packing"] = {
        "target": PACKING_GOAL,
        "k": PACKING_GOAL_K,
        "x_trials_per_hour": row["x_trials_per_hour"] if row else None,
        "x_trials_per_hour_with_startup": row["x_trials_per_hour_with_startup"] if row else None,
        "met": (row["x_trials_per_hour"] >= PACKING_GOAL) if (gpu and row) else None,
        "note": None if gpu and row else (NOT_MEASURED if not gpu else why_not),
    }
    prows = [r for r in out["precision"].get("rows", []) if "x_fp32" in r]
    best = max(prows, key=lambda r: r["x_fp32"]) if prows else None
    result["precision"] = {
        "target": PRECISION_GOAL,
        "best": best["variant"] if best else None,
        "x_fp32": best["x_fp32"] if best else None,
        "met": (best["x_fp32"] >= PRECISION_GOAL) if (gpu and best) else None,
        "note": None if gpu and best else (NOT_MEASURED if not gpu else "not measured: no setting beside an FP32 row"),
    }
    return result


# --------------------------------------------------------------------------- tables


def report(out: Mapping[str, Any]) -> None:
    gpu = out["device"] == "cuda"
    where = out["gpu"] if gpu else f"CPU ({common.cpu_count()} cores), not a GPU"
    if not gpu:
        print(f"\nGPU packing: {NOT_MEASURED}; the rows below are CPU processes, one thread each.")
    for part in out["packing"].values():
        headers = [
            "K",
            "samples/s, all trials",
            "x K=1",
            "epoch s",
            "train samples/s per trial",
            "GPU util %",
            "GPU MiB per trial",
            "start-up s",
            "trials/h",
            "x one per device",
            "trials/h incl. start-up",
            "x incl. start-up",
        ]
        rows = []
        for r in part["rows"]:
            if "error" in r:
                rows.append([r["k"], _failure(r["error"]), *[None] * (len(headers) - 2)])
                continue
            rows.append(
                [
                    r["k"],
                    r["aggregate_samples_per_s"],
                    r.get("x_samples_per_s"),
                    r["epoch_s"],
                    r["train_samples_per_s"],
                    r.get("gpu_util_pct") if gpu else "-",
                    r.get("gpu_memory_per_trial_mib") if gpu else "-",
                    r["startup_s"],
                    r["trials_per_hour"],
                    r.get("x_trials_per_hour"),
                    r["trials_per_hour_with_startup"],
                    r.get("x_trials_per_hour_with_startup"),
                ]
            )
        title = (
            f"{part['label']}: {part['cpus']} CPU thread(s) per trial, a trial = {part['trial_epochs']} epochs, "
            f"space asks gpu: {part['space_gpu']} — {where}"
        )
        common.print_table(headers, rows, title)
    print(
        "(epoch s: one trial's epoch, train + validation + checkpoint, median over trials; GPU MiB per trial: NVML "
        "device memory used in the window less before, / K, CUDA contexts included; trials/h: trials of the "
        "space's max_epochs epochs, summed over the K; incl. start-up: each trial's process start to task built)"
    )
    if gpu and out.get("nvml_note"):
        print(f"GPU utilisation and memory: {out['nvml_note']}")
    prec = out["precision"]
    if prec.get("rows"):
        rows = [
            [r["label"], _failure(r["error"]), None, None, None]
            if "error" in r
            else [r["label"], r["train_samples_per_s"], r.get("x_fp32"), r["epoch_s"], r["peak_reserved_mib"]]
            for r in prec["rows"]
        ]
        common.print_table(
            ["setting", "train samples/s", "x FP32", "epoch s", "torch peak MiB"],
            rows,
            f"{prec['label']}: one trial alone — {where}",
        )
    else:
        print(f"\nPrecision settings (U-Net, FP32 vs channels_last, bf16 autocast, torch.compile): {prec['note']}")
    g = out["goal"]
    p, q = g["packing"], g["precision"]
    print(
        f"\ngoal: {p['k']} ConvNet trials on one GPU >= {p['target']} x the trials per hour of one trial per GPU: "
        + (_verdict(p["met"], p["x_trials_per_hour"]) if p["note"] is None else p["note"])
        + (f" (incl. start-up: {common.fmt(p['x_trials_per_hour_with_startup'])})" if p["note"] is None else "")
    )
    print(
        f"goal: the realistic U-Net's best precision setting >= {q['target']} x FP32's samples/s: "
        + (_verdict(q["met"], q["x_fp32"]) + f" ({q['best']})" if q["note"] is None else q["note"])
    )


def _failure(error: str) -> str:
    return error if error.startswith("not measured") else f"failed: {error}"


def _verdict(met: bool | None, value: float | None) -> str:
    return f"{'met' if met else 'NOT met'} ({common.fmt(value)})"


# --------------------------------------------------------------------------- main


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--models", default="convnet,unet", help="comma-separated: convnet, unet (default %(default)s)")
    p.add_argument("--ks", help="trials per device, comma-separated (default 1,2,4,8 on a GPU; 1,2 on CPU)")
    p.add_argument("--window-s", type=float, help="least timed seconds per run (default: 4 quick, 8 full; CPU 3, 6)")
    p.add_argument(
        "--variants",
        help=f"U-Net precision settings, comma-separated, of {', '.join(v.name for v in VARIANTS)} "
        "(default: all on a GPU; none on CPU, where they are not measured)",
    )
    p.add_argument("--device", choices=("auto", "cpu"), default="auto", help="cpu: measure CPU rows even on a GPU")
    p.add_argument(
        "--size", choices=("auto", "gpu", "cpu", "tiny"), default="auto", help="model sizes (auto: by device)"
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=480.0,
        help="runs that would start after this many seconds are skipped, marked not measured (default %(default)s)",
    )
    args = common.parse_args(p, argv)

    import torch  # the parent only asks whether CUDA is there; the trials initialise it in their processes

    cuda = args.device == "auto" and torch.cuda.is_available()
    size = args.size if args.size != "auto" else ("gpu" if cuda else "cpu")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - {"convnet", "unet"})
    if unknown:
        p.error(f"--models: unknown {', '.join(unknown)} (expected convnet, unet)")
    ks = _ints(args.ks) if args.ks else list(GPU_KS if cuda else [k for k in CPU_KS if k <= common.cpu_count()])
    window_s = args.window_s or WINDOW_S[size if size == "tiny" else ("gpu" if cuda else "cpu")][0 if args.quick else 1]
    by_name = {v.name: v for v in VARIANTS}
    if args.variants is None:
        variants = list(VARIANTS) if cuda else []
    else:
        names = [n.strip() for n in args.variants.split(",") if n.strip()]
        bad = [n for n in names if n not in by_name]
        if bad:
            p.error(f"--variants: unknown {', '.join(bad)} (expected some of {', '.join(by_name)})")
        variants = [by_name[n] for n in names]
    if cuda:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "0")  # one GPU, as Ray gives each packed trial
    nvml, nvml_note = Nvml.open() if cuda else (None, NOT_MEASURED)
    all_cases = cases(size, on_cpu=not cuda)
    out: dict[str, Any] = {
        "device": "cuda" if cuda else "cpu",
        "gpu": nvml_note if nvml else None,
        "nvml_note": None if nvml else nvml_note,
        "torch": torch.__version__,
        "cuda_version": torch.version.cuda,
        "size": size,
        "ks": ks,
        "window_s": window_s,
        "warmup_epochs": WARMUP_EPOCHS,
        "packing": {},
        "precision": {},
    }
    path = args.out or common.RESULTS / "gpu_packing.json"

    def save() -> None:
        """The figures so far, in case the command is stopped before its end (common.finish overwrites them).
        No machine facts: reading the GPU's name through torch would start CUDA in this process."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = {"benchmark": "gpu_packing", "mode": "quick" if args.quick else "full", "partial": True, **out}
        path.write_text(json.dumps(partial, indent=2, default=str) + "\n")

    budget = Budget(args.budget_s, save)
    for name in models:
        case = all_cases[name]
        out["packing"][name] = {
            "label": case.label,
            "config": case.config,
            "trial_epochs": case.trial_epochs,
            "cpus": case.cpus,
            "space_gpu": case.space_gpu,
            "rows": [],
        }
        packing(case, ks, window_s, nvml, budget, out["packing"][name]["rows"])
    unet = all_cases["unet"]
    if variants and "unet" in models:
        out["precision"] = {"label": unet.label, "baseline": BASELINE_VARIANT, "rows": []}
        precision(unet, variants, window_s, nvml, budget, out["precision"]["rows"])
    else:
        out["precision"] = {"note": NOT_MEASURED if not cuda else "not measured: no --variants or no unet in --models"}
    if cuda and out["gpu"] is None:
        out["gpu"] = next(
            (r["device"] for part in out["packing"].values() for r in part["rows"] if "device" in r), "CUDA device"
        )
    out["goal"] = goals(out)
    report(out)
    return common.finish("gpu_packing", args.quick, out, path)


if __name__ == "__main__":
    main()
