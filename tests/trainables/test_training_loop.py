"""The shared loop: metrics, checkpoints, resume, NaN and out-of-memory handling, threads."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from trainables import TrialFailed, create
from trainables.loop import (
    META_FILE,
    STATE_FILE,
    Runtime,
    Task,
    TensorBatches,
    cpu_threads,
    fit,
)

TINY = {"max_epochs": 4, "seed": 3, "subset": 200}


@pytest.mark.slow
def test_reports_every_epoch_with_all_metrics(reporter):
    create("convnet_tiny")({**TINY, "max_epochs": 2}, reporter)
    assert reporter.epochs == [1, 2]
    for report in reporter.reports:
        assert {"epoch", "train_loss", "val_loss", "val_accuracy", "samples_per_s"} <= set(report)
        assert 0 <= report["val_accuracy"] <= 1
    state = reporter.checkpoints[-1]
    assert (state / STATE_FILE).is_file()
    assert json.loads((state / META_FILE).read_text())["epoch"] == 2


@pytest.mark.slow
def test_resume_continues_the_epoch_count_and_the_same_curve(full_and_resumed):
    full, resumed = full_and_resumed(create("convnet_tiny"), TINY, stop=2)
    assert resumed.epochs == [3, 4]
    for got, want in zip(resumed.reports, full.reports[2:], strict=True):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
        assert got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-5)


def test_resume_from_a_folder_without_state_fails_clearly(make_reporter, tmp_path):
    with pytest.raises(TrialFailed, match="cannot resume"):
        create("convnet_tiny")(TINY, make_reporter(restore=tmp_path))


class Boom(nn.Module):
    """Linear, but its output turns NaN (or raises) from the ``after``-th forward on."""

    def __init__(self, after: int, error: Exception | None = None):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.calls, self.after, self.error = 0, after, error

    def forward(self, x):
        self.calls += 1
        out = self.linear(x)
        if self.training and self.calls > self.after:
            if self.error is not None:
                raise self.error
            return out * float("nan")
        return out


class Accuracy:
    def reset(self):
        self.n = 0

    def update(self, out, y):
        self.n += len(y)

    def compute(self):
        return {"val_accuracy": 1.0}


def _task(model: nn.Module) -> Task:
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    return Task(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        nn.functional.cross_entropy,
        TensorBatches(x, y, 8, shuffle=True),
        TensorBatches(x, y, 16),
        Accuracy(),
    )


def test_nan_loss_raises_trial_failed_naming_the_epoch(reporter):
    with pytest.raises(TrialFailed, match="loss became NaN at epoch 2"):
        fit(_task(Boom(after=5)), Runtime(torch.device("cpu")), reporter, max_epochs=4, seed=0)
    assert reporter.epochs == [1]


@pytest.mark.slow
def test_nan_from_a_huge_learning_rate_is_a_trial_failure(reporter):
    config = {**TINY, "optimizer": {"name": "sgd", "lr": 1e12, "momentum": 0.9}}
    with pytest.raises(TrialFailed, match=r"loss became (NaN|infinite) at epoch \d+.*optimizer.lr"):
        create("convnet_tiny")(config, reporter)


def test_out_of_memory_becomes_trial_failed(reporter):
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(TrialFailed, match=r"out of memory at epoch 1 .*batch_size=8.*reduce"):
        fit(_task(Boom(after=0, error=oom)), Runtime(torch.device("cpu")), reporter, max_epochs=2, seed=0)


def test_other_errors_are_not_hidden(reporter):
    with pytest.raises(RuntimeError, match="shape mismatch"):
        fit(
            _task(Boom(after=0, error=RuntimeError("shape mismatch"))),
            Runtime(torch.device("cpu")),
            reporter,
            max_epochs=1,
            seed=0,
        )


def test_threads_follow_the_cpus_hint_then_the_environment(monkeypatch):
    assert cpu_threads({"cpus": 3}) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert cpu_threads({}) == 5
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_threads({}) >= 1


def test_runtime_on_cpu_uses_fp32_and_no_scaler():
    runtime = Runtime.create({"cpus": 1, "device": "cpu"})
    assert runtime.device.type == "cpu" and runtime.amp_dtype is None
    assert runtime.grad_scaler() is None and not runtime.channels_last
    assert Runtime.create({"cpus": 1, "precision": "bf16"}).amp_dtype == torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_asking_for_cuda_without_cuda_fails_clearly():
    with pytest.raises(TrialFailed, match="CUDA is not available"):
        Runtime.create({"device": "cuda"})
