"""Refine's trials: per-epoch histories from the runs' history tags, the metric history read only without one."""

from __future__ import annotations

from typing import Any

from orchestrator.evolution.trials import scored_trials
from orchestrator.spaces import parse_version
from orchestrator.tracking.mlflow_store import TrialRow
from tests.spacefiles import space_doc

SPACE = space_doc("s", schedule="{scheduler: SCHEDULER, max_epochs: 3}")


class _Store:
    """What ``scored_trials`` reads: the study's rows, and a metric history per run (recorded)."""

    uri = "sqlite:///unused.db"

    def __init__(self, rows: list[TrialRow], histories: dict[str, dict[int, float]]):
        self.rows, self.histories, self.read = rows, histories, []

    def trials(self, study: str) -> list[TrialRow]:
        return self.rows

    def metric_history(self, run_id: str, key: str) -> dict[int, float]:
        self.read.append((run_id, key))
        return self.histories[run_id]


def _row(run_id: str, x: float, history: dict[str, Any]) -> TrialRow:
    return TrialRow(
        run_id=run_id,
        study="s",
        version=1,
        space_hash="",
        trial_id=run_id,
        status="FINISHED",
        config={"x": x},
        metrics={"loss": x**2},
        start_time=None,
        end_time=None,
        parent_run_id="",
        history=history,
    )


def test_histories_come_from_the_tag_and_only_untagged_runs_are_read() -> None:
    rows = [_row("tagged", 0.5, {"loss": {1: 0.9, 3: 0.25}}), _row("untagged", 0.1, {})]
    store = _Store(rows, {"untagged": {1: 0.5, 2: 0.2, 3: 0.01}})
    trials = scored_trials(store, parse_version(SPACE.replace("SCHEDULER", "asha")))  # type: ignore[arg-type]
    assert [t.history for t in trials] == [{1: 0.9, 3: 0.25}, {1: 0.5, 2: 0.2, 3: 0.01}]
    assert store.read == [("untagged", "loss")]


def test_fifo_reads_no_history() -> None:
    store = _Store([_row("untagged", 0.1, {})], {})
    trials = scored_trials(store, parse_version(SPACE.replace("SCHEDULER", "fifo")))  # type: ignore[arg-type]
    assert [t.history for t in trials] == [{}] and store.read == []
