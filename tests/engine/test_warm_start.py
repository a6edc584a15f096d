"""Version 2 narrows a range and adds a parameter with a default: earlier trials carry over.

How a searcher uses carried trials, unit level, is the searcher contract's (``tests/engine/searcher_contract.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.api import run_search
from orchestrator.cli import main
from orchestrator.engine.runner import SearchOptions
from orchestrator.tracking import schema
from orchestrator.tracking.ledger import trials_with_ledger
from orchestrator.tracking.mlflow_store import MlflowStore
from orchestrator.tracking.server import LoopbackMlflowServer
from tests.spacefiles import small_search, write_space

V1 = "  x: {uniform: [-1.0, 1.0]}\n  y: {int: [-2, 2]}\n"
V2 = "  x: {uniform: [0.0, 1.0]}\n  y: {int: [-2, 2]}\n  z: {uniform: [-0.5, 0.5], default: 0.0}\n"


@pytest.mark.slow
def test_v2_carries_v1_trials_and_starts_past_startup(
    tmp_path: Path, mlflow_server: LoopbackMlflowServer, local_ray: None
) -> None:
    spaces = tmp_path / "search_spaces"
    options = SearchOptions(tracking_uri=mlflow_server.uri, storage=str(tmp_path / "ray"), live=False)
    v1 = write_space(spaces, study="carry", params=V1, **small_search(10, 2, startup=3))
    run_search(v1, options, lambda _: None)

    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("carry")
    v1_trials = client.search_runs([exp.experiment_id], "tags.`orchestrator.kind` = 'trial'")
    assert len(v1_trials) == 10
    xs = [json.loads(r.data.tags["orchestrator.config"])["x"] for r in v1_trials]
    hand_carried = sum(1 for x in xs if 0.0 <= x <= 1.0)
    hand_dropped = len(xs) - hand_carried
    assert hand_carried >= 1
    # The finished search left its ledger artifact: a warm start without --ledger reads it (plus newer runs).
    (v1_search,) = client.search_runs([exp.experiment_id], "tags.`orchestrator.kind` = 'search'")
    assert schema.LEDGER_AS_OF in v1_search.data.tags
    rows, source = trials_with_ledger(MlflowStore(mlflow_server.uri), "carry", None)
    assert source.startswith(f"ledger artifact of run {v1_search.info.run_id}")
    assert sorted(r.run_id for r in rows) == sorted(r.info.run_id for r in v1_trials)

    # Export the ledger, then run v2 warm-started from it (fast path) plus newer runs.
    ledger = tmp_path / "carry.parquet"
    with pytest.raises(SystemExit) as done:
        main(
            ["trials", "export", "carry", "--out", str(ledger), "--tracking-uri", mlflow_server.uri, "--metric", "loss"]
        )
    assert done.value.code == 0
    table = pq.read_table(ledger)
    assert table.num_rows == 10 and {"params", "final_loss", "best_loss", "space_hash"} <= set(table.column_names)

    lines: list[str] = []
    # Start-up phase no longer than what was carried: TPE must take over from the first trial.
    startup = min(hand_carried, 4)
    v2 = write_space(spaces, study="carry", version=2, params=V2, **small_search(3, 2, startup=startup))
    options.ledger = ledger
    result = run_search(v2, options, lines.append)
    assert result.carry["carried"] == hand_carried and result.carry["dropped"] == hand_dropped
    assert result.carry["dropped_by_reason"] == ({"x outside the new range": hand_dropped} if hand_dropped else {})
    assert result.carry["defaulted"] == {"z": hand_carried}
    assert any(f"carried {hand_carried} of 10 earlier trials" in line for line in lines)

    runs = client.search_runs([exp.experiment_id])
    parent = next(
        r
        for r in runs
        if r.data.tags.get("orchestrator.kind") == "search" and r.data.tags["orchestrator.version"] == "2"
    )
    logged = json.loads(parent.data.tags["orchestrator.carry"])
    assert logged["carried"] == hand_carried and parent.data.metrics["dropped_trials"] == hand_dropped
    v2_trials = [
        r
        for r in runs
        if r.data.tags.get("orchestrator.kind") == "trial" and r.data.tags["orchestrator.version"] == "2"
    ]
    assert len(v2_trials) == 3
    # Carried trials count towards TPE's start-up: v2's very first suggestions come from TPE.
    assert {r.data.tags["orchestrator.suggested_by"] for r in v2_trials} == {"tpe"}
