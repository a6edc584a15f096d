"""The carry preview of space diff --tracking-uri: every trial of the study, sorted as warm start sorts it."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.evolution.preview import carry_preview, render_carry
from orchestrator.tracking import ledger
from orchestrator.tracking.mlflow_store import MlflowStore
from tests.evolution.records import record_search, two_versions

V1, V2 = two_versions("pv")


def test_counts_carried_defaulted_and_dropped_by_reason(store: MlflowStore, tmp_path: Path) -> None:
    record_search(store, V1, [({"x": 0.1}, {1: 0.3}), ({"x": 0.5}, {1: 0.2}), ({"x": -0.5}, {1: 0.1})])
    report, source = carry_preview(store, V2)
    assert source == "tracking store"
    assert (len(report.carried), dict(report.dropped), dict(report.defaulted)) == (
        2,
        {"x outside the new range": 1},
        {"y": 2},
    )
    text = render_carry(report, V2, source)
    assert text.startswith("carry into v2 from tracking store: carried 2 of 3 earlier trials, dropped 1")
    markdown = render_carry(report, V2, source, "markdown").splitlines()
    assert "| usable in v2 | 2 of 3 |" in markdown and "| given the default of `y` | 2 |" in markdown
    assert "| dropped: x outside the new range | 1 |" in markdown
    assert json.loads(render_carry(report, V2, source, "json"))["carried"] == 2

    # From a trials export plus the runs that ended after it, as `run --ledger` reads them.
    export = tmp_path / "pv.parquet"
    ledger.write(store.trials("pv"), export, "loss")
    record_search(store, V1, [({"x": 0.9}, {1: 0.05})])
    report, source = carry_preview(store, V2, export)
    assert len(report.carried) == 3 and report.total == 4 and source.startswith(f"ledger {export} (3 trials)")
