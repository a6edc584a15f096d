"""Samples per second of the shared training loop vs a bare PyTorch loop: same model, same
batches, same process.

The bare loop is the least a training step can do: batches made in advance, then
``forward -> loss -> zero_grad -> backward + step`` (with the autocast and GradScaler the
runtime picked). It is written out here rather than shared with the loop, so that overhead
added to the loop's step shows in the ratio; only ``apply_gradients`` (backward and step,
through the scaler when there is one: plain PyTorch calls) is common. The shared loop also
makes its batches (permutes, crops, augments) and sums the loss on the device.

Measuring on a busy machine: both sides run the same number of epochs per round, enough for
a round to last ``min_round_s``; rounds are interleaved and alternate which side goes first
(so drifts hit both alike), after ``warmup`` untimed rounds. The ratio uses each side's best
round, as ``timeit`` does, since interference only ever slows a round down; the median of
the rounds' own ratios (each round's two sides run back to back) is reported too.
Validation and checkpoint time per epoch are reported separately.

    python -m trainables.throughput convnet '{"filters": 32}' --rounds 7
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .api import TrainableSpec
from .loop import Batch, Runtime, Task, apply_gradients, evaluate, prepare, save_checkpoint, train_epoch
from .registry import get, names

DEFAULT_ROUNDS = 15  # with 2-s rounds: fewer leave the best-of ratio +-5 % apart between runs here
DEFAULT_WARMUP = 1
DEFAULT_MIN_ROUND_S = 2.0  # shorter rounds are mostly noise on a shared 2-core machine
CALIBRATION_EPOCHS = 3  # bare epochs timed to size the rounds


def loop_trainables() -> list[str]:
    """Every registered trainable on the shared loop (those the probe can measure)."""
    return [name for name in names() if get(name).task]


def benchmarked() -> list[TrainableSpec]:
    """The specs that declare throughput cases (``TrainableSpec.throughput``)."""
    return [get(name) for name in loop_trainables() if get(name).throughput]


@dataclass
class ThroughputResult:
    trainable: str
    device: str
    threads: int
    precision: str
    batch_size: int
    samples_per_round: int
    epochs_per_round: int
    rounds: int
    loop_samples_per_s: float  # best round (interference only ever slows a round down)
    bare_samples_per_s: float  # best round
    ratio: float  # loop / bare, best rounds
    ratio_median: float  # median over rounds of loop / bare, the two sides of a round run back to back
    eval_and_checkpoint_s: float  # per epoch, median

    def summary(self) -> str:
        return (
            f"{self.trainable} on {self.device} ({self.threads} threads, {self.precision}, "
            f"batch {self.batch_size}): loop {self.loop_samples_per_s:,.0f} samples/s, "
            f"bare {self.bare_samples_per_s:,.0f} samples/s, ratio {self.ratio:.3f} "
            f"(medians: {self.ratio_median:.3f}; {self.rounds} rounds of {self.epochs_per_round} epochs); "
            f"validation + checkpoint {self.eval_and_checkpoint_s:.3f} s/epoch"
        )


def _bare_round(task: Task, runtime: Runtime, batches: list[Batch], scaler, epochs: int) -> float:
    """Seconds for ``epochs`` passes of the plain PyTorch step over batches made in advance."""
    model, optimizer, loss_fn = task.model, task.optimizer, task.loss
    model.train()
    runtime.synchronize()
    t0 = time.perf_counter()
    for _ in range(epochs):
        for x, y in batches:
            with runtime.autocast():
                loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            apply_gradients(loss, optimizer, scaler)
    runtime.synchronize()
    return time.perf_counter() - t0


def _loop_round(task: Task, runtime: Runtime, generator: torch.Generator, scaler, epochs: int) -> tuple[float, int]:
    """Seconds and samples for ``epochs`` epochs of the shared loop's training phase."""
    runtime.synchronize()
    seen = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        total, samples = train_epoch(task, runtime, generator, scaler)
        float(total)  # the loop's once-per-epoch sync is part of its cost
        seen += samples
    return time.perf_counter() - t0, seen


def measure_throughput(
    name: str,
    config: dict[str, Any] | None = None,
    *,
    rounds: int = DEFAULT_ROUNDS,
    warmup: int = DEFAULT_WARMUP,
    min_round_s: float = DEFAULT_MIN_ROUND_S,
) -> ThroughputResult:
    """Interleave ``rounds`` rounds of the shared loop and of the bare loop (after ``warmup``
    of each) on one model of the registered trainable ``name``; report the best rounds and the
    medians. A round is as many epochs as make the quickest calibration epoch last ``min_round_s``."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    task, runtime, _ = prepare(name, dict(config or {}))
    scaler = runtime.grad_scaler()
    generator = torch.Generator().manual_seed(0)
    batches = list(task.train.epoch(generator))  # the bare loop's batches, made in advance
    samples = sum(len(x) for x, _ in batches)
    # the quickest of a few bare epochs (they also warm the model up): a busy moment cannot shorten rounds
    epoch_s = min(_bare_round(task, runtime, batches, scaler, epochs=1) for _ in range(CALIBRATION_EPOCHS))
    epochs = max(1, math.ceil(min_round_s / max(epoch_s, 1e-9)))
    loop_rates: list[float] = []
    bare_rates: list[float] = []
    overhead: list[float] = []
    scratch = tempfile.mkdtemp(prefix="throughput-")
    for i in range(warmup + rounds):
        timed = i >= warmup
        # alternate which goes first so that drifts (heat, neighbours) hit both sides
        for side in ("bare", "loop") if i % 2 == 0 else ("loop", "bare"):
            if side == "bare":
                rate = samples * epochs / _bare_round(task, runtime, batches, scaler, epochs)
            else:
                seconds, seen = _loop_round(task, runtime, generator, scaler, epochs)
                rate = seen / seconds
            if timed:
                (bare_rates if side == "bare" else loop_rates).append(rate)
        if timed:
            t0 = time.perf_counter()
            evaluate(task, runtime)
            save_checkpoint(f"{scratch}/epoch", task, i, scaler)
            overhead.append(time.perf_counter() - t0)
    loop, bare = max(loop_rates), max(bare_rates)
    precision = str(runtime.amp_dtype).replace("torch.", "") if runtime.amp_dtype else "fp32"
    return ThroughputResult(
        trainable=name,
        device=str(runtime.device),
        threads=runtime.threads,
        precision=precision,
        batch_size=len(batches[0][0]),
        samples_per_round=samples * epochs,
        epochs_per_round=epochs,
        rounds=rounds,
        loop_samples_per_s=loop,
        bare_samples_per_s=bare,
        ratio=loop / bare,
        ratio_median=statistics.median(lr / br for lr, br in zip(loop_rates, bare_rates, strict=True)),
        eval_and_checkpoint_s=statistics.median(overhead),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trainable", choices=loop_trainables())
    parser.add_argument("config", nargs="?", default="{}", help="JSON config overrides")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
    parser.add_argument("--min-round-s", type=float, default=DEFAULT_MIN_ROUND_S, help="least seconds per round")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = measure_throughput(
        args.trainable, json.loads(args.config), rounds=args.rounds, warmup=args.warmup, min_round_s=args.min_round_s
    )
    print(json.dumps(asdict(result)) if args.json else result.summary())


if __name__ == "__main__":
    main()
