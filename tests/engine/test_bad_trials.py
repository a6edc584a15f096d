"""Trials that go wrong in one search: one raises, one's loss becomes NaN, one runs out of memory.

Each ends as a FAILED child run whose ``orchestrator.failure`` names the reason; the searcher
is told and the search carries on to its planned count; the search's summary (``SearchResult.failed``, the
parent run's ``failed_trials``, the printed line) counts them.

The trainable is registered here for the test: a tiny regression trained by the real shared loop
(``trainables.loop.fit``), whose model fails in its forward pass according to the fate its trial drew. Fates
are tickets claimed in a folder, once per trial (a retry keeps its trial's fate): the first trials to start
draw the failures, whatever values the searcher chose. Ray's workers import this module to run the trainable,
so what only the test needs (MLflow, the engine) is imported inside it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import trainables
from tests.spacefiles import space_doc, write_space
from trainables.config import RUNTIME_DEFAULTS, Config, resolve
from trainables.loop import Runtime, Task, TensorBatches, fit, make_optimizer

NAME = "bad_trials_regression"
HINT = "lower lr (a test trainable)"
# The fates of the first trials to start, in the order they claim a ticket; later trials train normally.
FAILURES = ("raise", "nan", "oom")
RAISED = "the model cannot take this batch (injected)"
TRIALS = 5
EPOCHS = 2

# Registered by the test (for the driver) and by ``train`` (in Ray's workers), never at import: other test
# modules walk the registry.
SPEC = trainables.TrainableSpec(
    name=NAME,
    entry=f"{__name__}:train",
    metrics=("val_loss", "train_loss", "samples_per_s", "epoch_time_s", "epoch"),
    optional={"lr": 0.05, "tickets": "", **RUNTIME_DEFAULTS},
    description="A linear regression whose forward fails as its trial's ticket says (tests only).",
    failure_hint=HINT,
)


def claim_fate(tickets: Path, config: dict[str, Any]) -> str:
    """This trial's fate: read back on a retry, else the next free ticket (taken atomically across processes)."""
    trial = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
    mine = tickets / f"trial-{trial}"
    if mine.exists():
        return mine.read_text()
    number = 0
    while True:
        try:
            os.close(os.open(tickets / f"ticket-{number}", os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            number += 1
    fate = FAILURES[number] if number < len(FAILURES) else "ok"
    mine.write_text(fate)
    return fate


class FatedLinear(nn.Module):
    """``nn.Linear`` whose forward raises, returns NaN or runs out of memory when its fate says so."""

    def __init__(self, fate: str) -> None:
        super().__init__()
        self.fate = fate
        self.linear = nn.Linear(4, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.fate == "raise":
            raise ValueError(RAISED)
        if self.fate == "oom":  # what a CUDA allocation that does not fit raises
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        out = self.linear(x)
        return out * float("nan") if self.fate == "nan" else out


class MeanSquaredError:
    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, outputs: Tensor, targets: Tensor) -> None:
        self.total += float(((outputs - targets) ** 2).sum())
        self.count += len(targets)

    def compute(self) -> dict[str, float]:
        return {"val_loss": self.total / max(self.count, 1)}


def build_task(cfg: Config, runtime: Runtime) -> Task:
    generator = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(48, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
    model = runtime.prepare(FatedLinear(claim_fate(Path(cfg["tickets"]), dict(cfg))))
    optimizer = make_optimizer(model.parameters(), {"name": "sgd", "lr": cfg.number("lr", low=0.0)})
    batches = TensorBatches(runtime.tensor(x[:32]), runtime.tensor(y[:32]), 8, shuffle=True)
    val = TensorBatches(runtime.tensor(x[32:]), runtime.tensor(y[32:]), 16)
    return Task(model, optimizer, nn.functional.mse_loss, batches, val, MeanSquaredError(), name=NAME)


def train(config: dict[str, Any], reporter: trainables.Reporter) -> None:
    """The trainable contract's entry, on the shared loop's ``fit`` (its NaN and out-of-memory handling)."""
    trainables.register(SPEC)  # in a Ray worker, which imported this module to run the trial
    cfg = resolve(NAME, config)
    runtime = Runtime.create(cfg)
    fit(build_task(cfg, runtime), runtime, reporter, max_epochs=cfg.max_epochs, seed=cfg.seed, hint=SPEC.failure_hint)


def space_text(tickets: Path) -> str:
    """The study's space: ``TRIALS`` trials of ``EPOCHS`` epochs, two at once, whose tickets are in ``tickets``."""
    return space_doc(
        "badtrials",
        trainable=NAME,
        metric="{name: val_loss, mode: min}",
        schedule=f"{{scheduler: fifo, max_epochs: {EPOCHS}}}",
        resources="{cpu: 1, gpu: 0}",
        search=f"{{algorithm: tpe, trials: {TRIALS}, startup_trials: 2, concurrency: 2, max_failures: 0}}",
        fixed=f'{{tickets: "{tickets}", cpus: 1, device: cpu}}',
        params="  lr: {loguniform: [0.01, 0.1]}\n",
    )


@pytest.mark.slow
def test_failing_trials_are_recorded_told_to_the_searcher_and_counted(
    tmp_path: Path, store_uri: str, local_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    from orchestrator.api import run_search
    from orchestrator.engine import runner
    from orchestrator.engine.runner import SearchOptions
    from orchestrator.tracking import schema
    from tests.runs import trial_runs
    from trainables import registry

    monkeypatch.setitem(registry._REGISTRY, NAME, SPEC)
    tickets = tmp_path / "tickets"
    tickets.mkdir()
    space = write_space(tmp_path / "search_spaces", space_text(tickets), study="badtrials")
    searchers: list[Any] = []
    build_searcher = runner.build_searcher
    monkeypatch.setattr(runner, "build_searcher", lambda *a: searchers.append(build_searcher(*a)) or searchers[-1])

    uri = store_uri
    lines: list[str] = []
    result = run_search(space, SearchOptions(tracking_uri=uri, storage=str(tmp_path / "ray"), live=False), lines.append)

    ok = TRIALS - len(FAILURES)
    assert (result.finished, result.failed, result.interrupted) == (ok, len(FAILURES), False)
    assert any(line.startswith(f"{ok} finished, {len(FAILURES)} failed in ") for line in lines), lines
    client = MlflowClient(uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics[schema.FAILED_TRIALS] == len(FAILURES)
    assert parent.data.metrics[schema.FINISHED_TRIALS] == ok

    runs = trial_runs(client, "badtrials")
    assert len(runs) == TRIALS, "every trial has one run"
    assert Counter(r.info.status for r in runs) == {"FINISHED": ok, "FAILED": len(FAILURES)}
    failures = {r.data.tags[schema.FAILURE] for r in runs if r.info.status == "FAILED"}
    assert failures == {  # the last line of each error, as Ray Tune records it
        f"trainables.api.TrialFailed: loss became NaN at epoch 1 (train_loss=nan); {HINT}",
        "trainables.api.TrialFailed: out of memory at epoch 1 on cpu (batch_size=8); reduce batch_size or the "
        "model's size",
        f"ValueError: {RAISED}",
    }, failures
    for run in runs:
        failed = run.info.status == "FAILED"
        assert run.data.tags[schema.STATUS] == run.info.status
        assert (schema.best_metric("val_loss") in run.data.metrics) != failed

    (searcher,) = searchers
    assert searcher.n_scored == ok, "the searcher learns from the trials that finished only"
    assert searcher.pending_at(searcher.full_budget) == [], "each failure was told: none is left pending"
    assert len(searcher.suggested_by) == TRIALS, "the search went on to its planned count"
    assert [f.read_text() for f in sorted(tickets.glob("trial-*"))].count("ok") == ok
