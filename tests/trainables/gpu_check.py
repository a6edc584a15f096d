"""Checks of the CUDA paths, for a machine with a GPU (not collected by pytest).

    python tests/trainables/gpu_check.py

Prints one JSON line per check: throughput of the shared loop vs a bare loop (the cases the
registered specs declare), a digits training run, fp16 + GradScaler, and a real out-of-memory -> TrialFailed.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from trainables import TrialFailed, create
from trainables.throughput import benchmarked, measure_throughput


class Reporter:
    def __init__(self):
        self.reports = []

    def report(self, metrics, checkpoint_dir=None):
        self.reports.append(dict(metrics))

    def restore_dir(self):
        return None


def emit(check: str, **values) -> None:
    print(json.dumps({"check": check, **values}), flush=True)


def main() -> None:
    emit("device", cuda=torch.cuda.is_available(), gpu=torch.cuda.get_device_name(0), torch=torch.__version__)
    for spec in benchmarked():  # the throughput cases each family's spec declares
        for size, config in spec.throughput.items():
            result = measure_throughput(spec.name, dict(config), rounds=7, warmup=2)
            emit("throughput", size=size, config=config, **asdict(result))
    reporter = Reporter()
    start = time.perf_counter()
    config = {"filters": 32, "fc_width": 256, "max_epochs": 12, "seed": 0}
    create("convnet")(config, reporter)
    emit("convnet_digits", seconds=time.perf_counter() - start, last=reporter.reports[-1])
    reporter = Reporter()
    create("convnet_tiny")({"precision": "fp16", "max_epochs": 2}, reporter)
    emit("fp16_gradscaler", last=reporter.reports[-1])
    reporter = Reporter()
    start = time.perf_counter()
    create("unet")({"max_epochs": 6, "samples_per_epoch": 1024, "lr": 3e-3}, reporter)
    emit("unet_synthetic", seconds=time.perf_counter() - start, last=reporter.reports[-1])
    try:
        create("unet")(
            {"samples_per_epoch": 20000, "batch_size": 20000, "base_filters": 64, "max_epochs": 1},
            Reporter(),
        )
        emit("oom", raised=None)
    except TrialFailed as error:
        emit("oom", raised=str(error), free_after=torch.cuda.mem_get_info()[0])


if __name__ == "__main__":
    main()
