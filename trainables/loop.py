"""The shared training loop: device, precision, seeding, per-epoch report and checkpoint.

A model family's spec names its ``build_task(cfg, runtime) -> Task`` hook (model, optimizer,
loss, batches, evaluator); :func:`run_trainable`, the one training entry of every such
family, resolves the config, builds the task on a :class:`Runtime` and calls :func:`fit`.
The loop is kept lean so that its throughput matches a bare PyTorch loop (see
``trainables.throughput``): data lives on the device as tensors, batches are slices of a
once-per-epoch permutation, the running loss is summed on the device, and the host syncs
once per epoch to read every metric together.

Checkpoints are plain folders (``state.pt`` + ``meta.json``) written to a temporary place
and handed to ``reporter.report``; as with Ray Tune, the reporter must persist (copy) the
folder before it returns, because the loop deletes it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from .api import Reporter, TrialFailed, first_line, load_object
from .config import RUNTIME_DEFAULTS, Config, resolve
from .costs import ALWAYS, to_measure
from .measure import measure, peak_gpu_memory_mb
from .registry import get

STATE_FILE = "state.pt"
META_FILE = "meta.json"

Batch = tuple[Tensor, Tensor]


# ----------------------------------------------------------------------------- runtime


def cpu_threads(config: Mapping[str, Any] | None = None) -> int:
    """Threads for torch: the ``cpus`` hint, else ``OMP_NUM_THREADS``, else the CPU affinity."""
    hint = (config or {}).get("cpus")
    if hint:
        return max(1, int(hint))
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Runtime:
    """Where and how a trial computes: device, autocast dtype, memory format, threads."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    threads: int = 1

    @classmethod
    def create(cls, config: Mapping[str, Any] | None = None) -> Runtime:
        """Pick CUDA when present; on CUDA use bf16 autocast (fp16 + GradScaler on older
        cards) and channels-last. ``config`` may hold ``device`` (auto|cpu|cuda),
        ``precision`` (auto|fp32|bf16|fp16) and ``cpus``."""
        config = {**RUNTIME_DEFAULTS, **(config or {})}
        threads = cpu_threads(config)
        torch.set_num_threads(threads)
        want = config["device"] or RUNTIME_DEFAULTS["device"]
        cuda = torch.cuda.is_available() and want in ("auto", "cuda")
        if want == "cuda" and not torch.cuda.is_available():
            raise TrialFailed("device 'cuda' was asked for but CUDA is not available here")
        device = torch.device("cuda") if cuda else torch.device("cpu")
        precision = config["precision"] or RUNTIME_DEFAULTS["precision"]
        amp: torch.dtype | None = None
        if cuda and precision == "auto":
            amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        elif precision in ("bf16", "fp16"):
            amp = torch.bfloat16 if precision == "bf16" else torch.float16
        if cuda:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        return cls(device=device, amp_dtype=amp, channels_last=cuda, threads=threads)

    def prepare(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def tensor(self, array: np.ndarray | Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """Move data to the device once (images in channels-last where that is used)."""
        t = torch.as_tensor(array, dtype=dtype).to(self.device)
        if self.channels_last and t.dim() == 4 and t.is_floating_point():
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        if self.amp_dtype == torch.float16 and self.device.type == "cuda":
            return torch.amp.GradScaler("cuda")
        return None

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


# ----------------------------------------------------------------------------- batches


class Batches(Protocol):
    """A source of ``(inputs, targets)`` batches for one epoch."""

    samples: int  # how many samples one epoch yields

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]: ...


class TensorBatches:
    """Batches sliced from device tensors; shuffled once per epoch when ``shuffle``.

    ``transform(x, y, generator)`` runs on each batch (augmentation on the device).
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        transform: Callable[[Tensor, Tensor, torch.Generator], Batch] | None = None,
    ):
        if len(x) != len(y):
            raise ValueError(f"inputs and targets differ in length: {len(x)} != {len(y)}")
        if len(x) == 0:
            raise ValueError("no samples to iterate over")
        self.x, self.y = x, y
        self.batch_size = max(1, min(int(batch_size), len(x)))
        self.shuffle = shuffle
        self.transform = transform
        self.samples = len(x)

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        x, y = self.x, self.y
        if self.shuffle:
            perm = torch.randperm(len(x), generator=generator).to(x.device)
            x, y = x[perm], y[perm]
        for start in range(0, len(x), self.batch_size):
            xb, yb = x[start : start + self.batch_size], y[start : start + self.batch_size]
            if self.transform is not None:
                xb, yb = self.transform(xb, yb, generator)
            yield xb, yb


# ----------------------------------------------------------------------------- evaluation


class Evaluator(Protocol):
    """Accumulates validation statistics on the device; ``compute`` syncs once."""

    def reset(self) -> None: ...

    def update(self, outputs: Tensor, targets: Tensor) -> None: ...

    def compute(self) -> dict[str, float]: ...


@dataclass
class Task:
    """Everything the loop needs from a model family."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss: Callable[[Tensor, Tensor], Tensor]
    train: Batches
    val: Batches
    evaluator: Evaluator
    name: str = "trial"
    meta: Mapping[str, Any] = field(default_factory=dict)  # written to meta.json
    prediction_batch: int = 0  # the batch the model predicts in (``latency_batch_ms``); 0: the validation batch


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    folder: str | Path,
    task: Task,
    epoch: int,
    scaler: torch.amp.GradScaler | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "epoch": epoch,
        "model": task.model.state_dict(),
        "optimizer": task.optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    torch.save(state, folder / STATE_FILE)
    meta = {"epoch": epoch, "trainable": task.name, **dict(task.meta), **dict(extra or {})}
    (folder / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))


def read_state(folder: str | Path) -> dict[str, Any]:
    """The saved state of a checkpoint folder, loaded with ``weights_only=True``: tensors and plain
    containers only, so a checkpoint someone replaced on shared storage cannot run code here."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise TrialFailed(f"cannot resume: {path} does not exist (not a checkpoint folder?)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle.UnpicklingError for anything beyond tensors and containers
        first = (str(error).splitlines() or [""])[0]
        raise TrialFailed(f"cannot load checkpoint {path}: {type(error).__name__}: {first}") from None


def load_checkpoint(folder: str | Path, task: Task, scaler: torch.amp.GradScaler | None = None) -> int:
    """Load model/optimizer/RNG state from ``folder``; return the epoch it was saved at."""
    state = read_state(folder)
    task.model.load_state_dict(state["model"])
    task.optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # resumed on a machine with fewer GPUs
            torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["epoch"])


# ----------------------------------------------------------------------------- the loop


def apply_gradients(loss: Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    """Backward and optimizer step, through the fp16 ``GradScaler`` when there is one."""
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def train_epoch(
    task: Task, runtime: Runtime, generator: torch.Generator, scaler: torch.amp.GradScaler | None = None
) -> tuple[Tensor, int]:
    """One pass over the training batches; returns (sum of loss * batch size, samples).

    No host sync and no extra kernel per step: the (detached) losses are kept and summed,
    weighted by batch size, once at the end of the epoch.
    """
    model, optimizer, loss_fn = task.model, task.optimizer, task.loss
    model.train()
    losses: list[Tensor] = []
    sizes: list[int] = []
    for x, y in task.train.epoch(generator):
        with runtime.autocast():
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        apply_gradients(loss, optimizer, scaler)
        losses.append(loss.detach())
        sizes.append(len(x))
    if not losses:
        return torch.zeros((), device=runtime.device), 0
    weights = torch.tensor(sizes, dtype=torch.float32).to(runtime.device, non_blocking=True)
    total = (torch.stack(losses).float() * weights).sum()
    return total, sum(sizes)


@torch.no_grad()
def evaluate(task: Task, runtime: Runtime) -> dict[str, float]:
    task.model.eval()
    task.evaluator.reset()
    generator = torch.Generator().manual_seed(0)
    for x, y in task.val.epoch(generator):
        with runtime.autocast():
            out = task.model(x)
        task.evaluator.update(_float(out), y)
    return task.evaluator.compute()


def _float(out: Any) -> Any:
    if isinstance(out, Tensor):
        return out.float()
    return out


def _is_oom(error: BaseException) -> bool:
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def measure_task(task: Task, runtime: Runtime, names: tuple[str, ...] = ALWAYS) -> dict[str, float]:
    """The hardware costs of ``names`` (``trainables.costs``) of the task's model on the trial's device: one
    validation sample's shape (zeros) as a batch of 1, ``Task.prediction_batch`` as the prediction batch. The
    training is untouched (``trainables.measure``: eval mode, no random draws)."""
    first = next(iter(task.val.epoch(torch.Generator().manual_seed(0))))[0]
    sample = torch.zeros_like(first[:1])
    batch = task.prediction_batch or int(getattr(task.val, "batch_size", len(first)))
    return measure(task.model, sample, batch, names, runtime.autocast)


def _costs(task: Task, runtime: Runtime, names: tuple[str, ...]) -> dict[str, float]:
    """``measure_task``, or nothing when measuring fails: a model that cannot run fails in its own first training
    step, as it would have without the measurement (its error, its out-of-memory message), and one that can trains
    on without the costs (a search that names one as an objective then says the trial did not report it)."""
    try:
        return measure_task(task, runtime, names)
    except Exception as error:
        print(f"{task.name}: hardware costs not measured: {first_line(error)}", file=sys.stderr)
        return {}


def fit(
    task: Task,
    runtime: Runtime,
    reporter: Reporter,
    *,
    max_epochs: int,
    seed: int,
    hint: str = "lower the learning rate",
) -> dict[str, float]:
    """Train until ``max_epochs``, reporting and checkpointing after every epoch.

    Resumes from ``reporter.restore_dir()`` when it gives a folder. Raises ``TrialFailed``
    when the loss is not finite or memory runs out. Returns the last metrics reported.

    Every report carries the model's hardware costs (``trainables.costs``), measured once before the first epoch:
    ``params`` and ``macs``, the latencies when the reporter's ``measure`` names them, and on CUDA the peak memory so
    far (``gpu_memory_mb``).
    """
    scaler = runtime.grad_scaler()
    start = 0
    restore = reporter.restore_dir()
    if restore:
        start = load_checkpoint(restore, task, scaler)
    if runtime.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(runtime.device)  # this trial's peak, not an earlier one's in this process
    costs = _costs(task, runtime, (*ALWAYS, *to_measure(tuple(getattr(reporter, "measure", ())))))
    metrics: dict[str, float] = {}
    scratch = Path(tempfile.mkdtemp(prefix=f"{task.name}-ckpt-"))
    try:
        for epoch in range(start + 1, max_epochs + 1):
            # batch order depends only on (seed, epoch): a resumed trial sees the same data
            generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            try:
                t0 = time.perf_counter()
                total, seen = train_epoch(task, runtime, generator, scaler)
                train_loss = float(total) / max(seen, 1)  # the one sync of the training phase
                train_time = time.perf_counter() - t0
                if not math.isfinite(train_loss):
                    raise TrialFailed(
                        f"loss became {'NaN' if math.isnan(train_loss) else 'infinite'} at "
                        f"epoch {epoch} (train_loss={train_loss}); {hint}"
                    )
                val = evaluate(task, runtime)
            except TrialFailed:
                raise
            except RuntimeError as error:
                if not _is_oom(error):
                    raise
                if runtime.device.type == "cuda":
                    torch.cuda.empty_cache()
                batch = getattr(task.train, "batch_size", "?")
                raise TrialFailed(
                    f"out of memory at epoch {epoch} on {runtime.device} (batch_size={batch}); "
                    "reduce batch_size or the model's size"
                ) from error
            metrics = {
                "epoch": epoch,
                "train_loss": train_loss,
                **val,
                "samples_per_s": seen / max(train_time, 1e-9),
                "epoch_time_s": time.perf_counter() - t0,
                **costs,
                **peak_gpu_memory_mb(runtime.device),
            }
            folder = scratch / f"epoch_{epoch:04d}"
            save_checkpoint(folder, task, epoch, scaler)
            reporter.report(metrics, str(folder))
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return metrics


# ----------------------------------------------------------------------------- optimizers


def make_optimizer(
    params: Any,
    settings: Mapping[str, Any],
    *,
    lr: float | None = None,
    weight_decay: float = 0.0,
    device: torch.device | None = None,
) -> torch.optim.Optimizer:
    """Build ``{name: adam|adamw|sgd, lr?, momentum?, nesterov?}``; ``lr`` is the fallback
    learning rate when the dict has none. Uses fused kernels on CUDA."""
    name = settings["name"]
    rate = float(settings.get("lr", lr if lr is not None else 1e-3))
    extra: dict[str, Any] = {"fused": True} if device is not None and device.type == "cuda" else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=rate, weight_decay=weight_decay, **extra)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=rate, weight_decay=weight_decay, **extra)
    if name == "sgd":
        momentum = float(settings.get("momentum", 0.0))
        nesterov = bool(settings.get("nesterov", False)) and momentum > 0
        return torch.optim.SGD(
            params, lr=rate, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, **extra
        )
    raise ValueError(f"unknown optimizer {name!r}")


def prepare(name: str, config: Mapping[str, Any]) -> tuple[Task, Runtime, Config]:
    """Resolve ``config`` for the registered ``name``, seed, pick the runtime and build the task
    with the family's ``build_task`` hook (named by its spec)."""
    spec = get(name)
    if not spec.task:
        raise ValueError(f"trainable {name!r} does not run on the shared loop (it has no task hook)")
    cfg = resolve(name, config)
    seed_everything(cfg.seed)
    runtime = Runtime.create(cfg)
    build_task: Callable[[Config, Runtime], Task] = load_object(spec.task)
    return build_task(cfg, runtime), runtime, cfg


def restore_task(name: str, config: Mapping[str, Any], folder: str | Path) -> tuple[Task, Runtime, Config]:
    """The task of a finished trial with its model's weights from the checkpoint ``folder`` (for review
    artifacts and the logged model); the model is in eval mode."""
    task, runtime, cfg = prepare(name, config)
    task.model.load_state_dict(read_state(folder)["model"])
    task.model.eval()
    return task, runtime, cfg


def run_trainable(name: str, config: dict[str, Any], reporter: Reporter) -> dict[str, float]:
    """The training entry of every family on the shared loop: ``TrainableSpec.load`` binds ``name``,
    which leaves the ``train(config, reporter)`` of the trainable contract. Returns the last metrics."""
    task, runtime, cfg = prepare(name, config)
    return fit(task, runtime, reporter, max_epochs=cfg.max_epochs, seed=cfg.seed, hint=get(name).failure_hint)
