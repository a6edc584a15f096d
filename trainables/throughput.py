"""Samples per second of the shared training loop vs a bare PyTorch loop, same model, same
batches, same process, interleaved rounds (so machine noise hits both alike); the ratio uses each
side's best round, as ``timeit`` does, since interference only ever slows a round down.

The bare loop is the least a training step can do: batches made in advance, then
``forward -> loss -> zero_grad -> backward -> step`` (with the same autocast and scaler
the runtime picked). The shared loop also permutes / crops / augments its batches and sums
the loss on the device. Validation and checkpoint time per epoch are reported separately.

    python -m trainables.throughput convnet '{"filters": 32}' --rounds 5
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .config import resolve
from .loop import Runtime, Task, evaluate, save_checkpoint, seed_everything, train_epoch

FAMILIES = {
    "convnet": "trainables.convnet.trainable",
    "convnet_tiny": "trainables.convnet.trainable",
    "unet": "trainables.unet.trainable",
    "unet_tiny": "trainables.unet.trainable",
}


@dataclass
class ThroughputResult:
    trainable: str
    device: str
    threads: int
    precision: str
    batch_size: int
    samples_per_round: int
    rounds: int
    loop_samples_per_s: float  # best round (interference only ever slows a round down)
    bare_samples_per_s: float  # best round
    ratio: float  # loop / bare, best rounds
    ratio_median: float  # loop / bare, median rounds
    eval_and_checkpoint_s: float  # per epoch, median

    def summary(self) -> str:
        return (
            f"{self.trainable} on {self.device} ({self.threads} threads, {self.precision}, "
            f"batch {self.batch_size}): loop {self.loop_samples_per_s:,.0f} samples/s, "
            f"bare {self.bare_samples_per_s:,.0f} samples/s, ratio {self.ratio:.3f} "
            f"(medians: {self.ratio_median:.3f}); "
            f"validation + checkpoint {self.eval_and_checkpoint_s:.3f} s/epoch"
        )


def build(name: str, config: dict[str, Any]) -> tuple[Task, Runtime]:
    if name not in FAMILIES:
        raise KeyError(f"no throughput support for {name!r}; known: {', '.join(FAMILIES)}")
    cfg = resolve(name, config)
    seed_everything(cfg.seed)
    runtime = Runtime.create(cfg)
    return importlib.import_module(FAMILIES[name]).build_task(cfg, runtime), runtime


def _bare_round(task: Task, runtime: Runtime, batches: list, scaler) -> float:
    model, optimizer, loss_fn = task.model, task.optimizer, task.loss
    model.train()
    runtime.synchronize()
    t0 = time.perf_counter()
    for x, y in batches:
        with runtime.autocast():
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
    runtime.synchronize()
    return time.perf_counter() - t0


def _loop_round(task: Task, runtime: Runtime, generator, scaler) -> tuple[float, int]:
    runtime.synchronize()
    t0 = time.perf_counter()
    total, seen = train_epoch(task, runtime, generator, scaler)
    float(total)  # the loop's once-per-epoch sync is part of its cost
    return time.perf_counter() - t0, seen


def measure_throughput(
    name: str, config: dict[str, Any] | None = None, *, rounds: int = 5, warmup: int = 1
) -> ThroughputResult:
    """Interleave ``rounds`` epochs of the shared loop and of the bare loop (after
    ``warmup`` of each) on one model; report the best rounds and the medians."""
    task, runtime = build(name, dict(config or {}))
    scaler = runtime.grad_scaler()
    generator = torch.Generator().manual_seed(0)
    batches = list(task.train.epoch(generator))  # the bare loop's batches, made in advance
    samples = sum(len(x) for x, _ in batches)
    loop_rates, bare_rates, overhead = [], [], []
    scratch = tempfile.mkdtemp(prefix="throughput-")
    for i in range(warmup + rounds):
        # alternate which goes first so that drifts (heat, neighbours) hit both sides
        order = ("bare", "loop") if i % 2 == 0 else ("loop", "bare")
        for side in order:
            if side == "bare":
                seconds = _bare_round(task, runtime, batches, scaler)
                rate = samples / seconds
                target = bare_rates
            else:
                seconds, seen = _loop_round(task, runtime, generator, scaler)
                rate = seen / seconds
                target = loop_rates
            if i >= warmup:
                target.append(rate)
        if i >= warmup:
            t0 = time.perf_counter()
            evaluate(task, runtime)
            save_checkpoint(f"{scratch}/epoch", task, i, scaler)
            overhead.append(time.perf_counter() - t0)
    loop, bare = max(loop_rates), max(bare_rates)
    median = statistics.median(loop_rates) / statistics.median(bare_rates)
    precision = str(runtime.amp_dtype).replace("torch.", "") if runtime.amp_dtype else "fp32"
    return ThroughputResult(
        trainable=name,
        device=str(runtime.device),
        threads=runtime.threads,
        precision=precision,
        batch_size=len(batches[0][0]),
        samples_per_round=samples,
        rounds=rounds,
        loop_samples_per_s=loop,
        bare_samples_per_s=bare,
        ratio=loop / bare,
        ratio_median=median,
        eval_and_checkpoint_s=statistics.median(overhead),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trainable", choices=sorted(FAMILIES))
    parser.add_argument("config", nargs="?", default="{}", help="JSON config overrides")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = measure_throughput(args.trainable, json.loads(args.config), rounds=args.rounds, warmup=args.warmup)
    print(json.dumps(asdict(result)) if args.json else result.summary())


if __name__ == "__main__":
    main()
