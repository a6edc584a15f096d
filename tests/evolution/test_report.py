"""report: the leaderboard across versions, from trial rows, search runs and the version files."""

from __future__ import annotations

import json

from orchestrator.evolution.report import SearchInfo, build_report, render_report
from orchestrator.tracking.mlflow_store import TrialRow
from tests.evolution.records import two_versions

V1, V2 = two_versions("lb")


def row(i: int, version: int, loss: float | None, status: str = "FINISHED", best: float | None = None) -> TrialRow:
    metrics = {} if loss is None else {"loss": loss}
    if best is not None:
        metrics["best_loss"] = best
    return TrialRow(f"r{i:02d}", "lb", version, "h", str(i), status, {"x": i / 10}, metrics, 0, 1, "p")


ROWS = [row(1, 1, 0.5), row(2, 1, 0.3, best=0.25), row(3, 1, None, "FAILED"), row(4, 2, 0.2), row(5, 2, 0.4)]
SEARCHES = [
    SearchInfo(1, 10, {"carried": 0, "dropped": 0}),
    SearchInfo(2, 20, {"carried": 1, "dropped": 2, "dropped_by_reason": {"x outside the new range": 2}}),
    SearchInfo(2, 30, {"carried": 2, "dropped": 1, "dropped_by_reason": {"x outside the new range": 1}}),
]


def test_best_trials_carry_and_changes_per_version() -> None:
    report = build_report("lb", ROWS, SEARCHES, {1: V1, 2: V2})
    v1, v2 = report.versions
    assert (v1.trials, v1.finished, v1.failed, v1.best, v1.best_config) == (3, 2, 1, 0.25, {"x": 0.2})
    assert (v2.trials, v2.best, v2.searches, v2.carried, v2.dropped) == (2, 0.2, 2, 2, 1)  # the latest search
    assert v2.changes == ["added y", "narrowed x"] and v1.changes == []
    assert report.best is v2 and v2.hash == V2.short_hash


def test_renders_a_table_markdown_and_json() -> None:
    report = build_report("lb", ROWS, SEARCHES, {1: V1, 2: V2})
    table = render_report(report, "table")
    assert table.splitlines()[0] == "lb: 2 version(s), 5 trial(s), loss (min); best 0.2 in v2"
    assert "0.2 *" in table and "1 (x outside the new range: 1)" in table
    markdown = render_report(report, "markdown")
    assert "| v2 | " + V2.short_hash + " | 2 | 2 | 0 | 0.2 * | 2 | 1 (x outside the new range: 1) |" in markdown
    data = json.loads(render_report(report, "json"))
    assert data["best_version"] == 2 and [v["best"] for v in data["versions"]] == [0.25, 0.2]


def test_without_files_the_versions_and_metric_come_from_the_store() -> None:
    searches = [SearchInfo(1, 10, {}, V1.metric)]
    report = build_report("lb", ROWS, searches)
    assert [v.version for v in report.versions] == [1, 2] and report.metric == V1.metric
    assert all(v.changes == [] for v in report.versions) and report.versions[0].hash == "h"
