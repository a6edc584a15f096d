"""Fixtures for the trainables: a fake reporter that copies checkpoints as Ray Tune does,
and a per-session folder for generated synthetic DSTL data."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest


class FakeReporter:
    """Collects reports; copies each checkpoint folder (the loop deletes its own)."""

    def __init__(self, storage: Path, restore: str | None = None):
        self.storage = storage
        self.restore = restore
        self.reports: list[dict[str, float]] = []
        self.checkpoints: list[Path] = []

    def report(self, metrics: Mapping[str, float], checkpoint_dir: str | None = None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir is not None:
            target = self.storage / f"checkpoint_{len(self.checkpoints):04d}"
            shutil.copytree(checkpoint_dir, target)
            self.checkpoints.append(target)

    def restore_dir(self) -> str | None:
        return self.restore

    @property
    def epochs(self) -> list[int]:
        return [int(r["epoch"]) for r in self.reports]


@pytest.fixture
def make_reporter(tmp_path: Path):
    counter = iter(range(1_000_000))

    def make(restore: str | Path | None = None) -> FakeReporter:
        folder = tmp_path / f"reporter_{next(counter)}"
        folder.mkdir()
        return FakeReporter(folder, None if restore is None else str(restore))

    return make


@pytest.fixture
def reporter(make_reporter) -> FakeReporter:
    return make_reporter()


@pytest.fixture
def full_and_resumed(make_reporter):
    """``run(train, config, stop)``: train ``config`` to its end, and again stopped after ``stop``
    epochs then resumed from the last checkpoint; returns the two reporters (full, resumed)."""

    def run(train, config: dict, stop: int) -> tuple[FakeReporter, FakeReporter]:
        full = make_reporter()
        train(config, full)
        first = make_reporter()
        train({**config, "max_epochs": stop}, first)
        resumed = make_reporter(restore=first.checkpoints[-1])
        train(config, resumed)
        return full, resumed

    return run


@pytest.fixture(autouse=True, scope="session")
def _synthetic_data_dir(tmp_path_factory):
    """Generated DSTL scenes go to a per-session folder, not the shared temporary one."""
    folder = tmp_path_factory.mktemp("dstl-synth")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DSTL_SYNTHETIC_DIR", str(folder))
        yield folder
