"""Version 2 narrows a range and adds a parameter with a default: earlier trials carry over."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.engine.runner import SearchOptions, run_search
from orchestrator.engine.searcher import WarmStartSearcher
from orchestrator.spaces import load_version, parse_version
from tests.engine.conftest import MlflowServer, write_space

V1 = "  x: {uniform: [-1.0, 1.0]}\n  y: {int: [-2, 2]}\n"
V2 = "  x: {uniform: [0.0, 1.0]}\n  y: {int: [-2, 2]}\n  z: {uniform: [-0.5, 0.5], default: 0.0}\n"


@pytest.mark.slow
def test_v2_carries_v1_trials_and_starts_past_startup(tmp_path: Path, mlflow_server: MlflowServer, local_ray) -> None:
    options = SearchOptions(tracking_uri=mlflow_server.uri, storage=str(tmp_path / "ray"), live=False)
    run_search(write_space(tmp_path, "carry", V1, trials=10, epochs=2, startup=3), options, lambda _: None)

    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("carry")
    v1_trials = client.search_runs([exp.experiment_id], "tags.`orchestrator.kind` = 'trial'")
    assert len(v1_trials) == 10
    xs = [json.loads(r.data.tags["orchestrator.config"])["x"] for r in v1_trials]
    hand_carried = sum(1 for x in xs if 0.0 <= x <= 1.0)
    hand_dropped = len(xs) - hand_carried
    assert hand_carried >= 1

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
    v2 = write_space(tmp_path, "carry", V2, version=2, trials=3, epochs=2, startup=startup)
    options.ledger = ledger
    result = run_search(v2, options, lines.append)
    assert result.carry["carried"] == hand_carried and result.carry["dropped"] == hand_dropped
    assert result.carry["dropped_by_reason"] == ({"x outside the new range": hand_dropped} if hand_dropped else {})
    assert result.carry["defaulted"] == {"z": hand_carried}
    assert any(f"carried {hand_carried} of 10 earlier trials" in line for line in lines)

    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("orchestrator.kind") == "search"
                  and r.data.tags["orchestrator.version"] == "2")  # fmt: skip
    logged = json.loads(parent.data.tags["orchestrator.carry"])
    assert logged["carried"] == hand_carried and parent.data.metrics["dropped_trials"] == hand_dropped
    v2_trials = [r for r in runs if r.data.tags.get("orchestrator.kind") == "trial"
                 and r.data.tags["orchestrator.version"] == "2"]  # fmt: skip
    assert len(v2_trials) == 3
    # Carried trials count towards TPE's start-up: v2's very first suggestions come from TPE.
    assert {r.data.tags["orchestrator.suggested_by"] for r in v2_trials} == {"tpe"}


def test_searcher_suggestions_reflect_carried_trials() -> None:
    """Unit level, no Ray cluster: the first suggestions of a warm-started TPE cluster at the optimum."""
    version = parse_version(
        "study: s\nversion: 1\ntrainable: analytic\nmetric: {name: loss, mode: min}\n"
        "search: {startup_trials: 10}\nfixed: {function: quadratic}\n"
        "params:\n  x: {uniform: [-1.0, 1.0]}\n  y: {int: [-2, 2]}\n"
    )
    rng = np.random.default_rng(0)
    prior = []
    for _ in range(300):
        c = {"x": float(rng.uniform(-1, 1)), "y": int(rng.integers(-2, 3))}
        prior.append((c, (c["x"] - 0.3) ** 2 + (c["y"] + 0.2) ** 2))
    warm, cold = WarmStartSearcher(version, prior, seed=1), WarmStartSearcher(version, [], seed=1)
    warm_x = [warm.suggest(f"w{i}")["x"] for i in range(12)]
    cold_x = [cold.suggest(f"c{i}")["x"] for i in range(12)]
    assert set(warm.suggested_by.values()) == {"tpe"} and set(cold.suggested_by.values()) == {"startup"}
    assert np.median(np.abs(np.array(warm_x) - 0.3)) < 0.15 < np.median(np.abs(np.array(cold_x) - 0.3))


def test_searcher_state_round_trips_through_json(tmp_path: Path) -> None:
    version = load_version(write_space(tmp_path, "state", V1))
    s = WarmStartSearcher(version, [({"x": 0.1, "y": 0}, 0.5)], seed=3)
    a, b = s.suggest("a"), s.suggest("b")
    s.on_trial_complete("a", {"loss": 0.25})
    s.save(str(tmp_path / "state.json"))
    restored = WarmStartSearcher(version, [({"x": 0.1, "y": 0}, 0.5)], seed=3)
    restored.restore(str(tmp_path / "state.json"))
    assert restored.n_scored == 2 and "b" in restored._live and restored.suggested_by == s.suggested_by
    restored.on_trial_complete("b", {"loss": 0.75})
    assert restored.n_scored == 3
    assert a["function"] == "quadratic" and b["max_epochs"] == version.schedule.max_epochs
