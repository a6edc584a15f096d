"""A real search against a real `mlflow server` on loopback and a real local Ray; the checks made before a
search starts (a tracking store, a Ray address, the space against its trainable), without either."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.api import run_search
from orchestrator.engine.runner import SearchOptions
from orchestrator.errors import OrchestratorError
from orchestrator.tracking.server import LoopbackMlflowServer
from tests.spacefiles import small_search, write_space

PARAMS = """\
  x: {uniform: [-1.0, 1.0]}
  y: {int: [-2, 2]}
  optimizer:
    choice:
      - {name: adam}
      - {name: sgd, momentum: {uniform: [0.5, 0.99]}}
"""


def space_file(tmp_path: Path, study: str, params: str = PARAMS) -> Path:
    return write_space(tmp_path / "search_spaces", study=study, params=params, **small_search(4, 3))


@pytest.mark.slow
def test_search_logs_parent_and_nested_child_runs(
    tmp_path: Path, mlflow_server: LoopbackMlflowServer, local_ray: None
) -> None:
    space = space_file(tmp_path, "logged")
    lines: list[str] = []
    result = run_search(
        space, SearchOptions(tracking_uri=mlflow_server.uri, storage=str(tmp_path / "ray"), live=False), lines.append
    )
    assert result.finished == 4 and result.failed == 0

    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("logged")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("orchestrator.kind") == "search"]
    children = [r for r in runs if r.data.tags.get("orchestrator.kind") == "trial"]
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.metrics["finished_trials"] == 4
    assert json.loads(parent.data.tags["orchestrator.best_config"]) == result.best_config

    for child in children:
        tags, params = child.data.tags, child.data.params
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["orchestrator.study"] == "logged" and tags["orchestrator.version"] == "1"
        assert tags["orchestrator.space_hash"] == parent.data.tags["orchestrator.space_hash"]
        assert tags["orchestrator.trial_id"] and child.info.status == "FINISHED"
        config = json.loads(tags["orchestrator.config"])
        # Params are values under flattened paths, never hyperopt indices.
        assert params["optimizer.name"] == config["optimizer"]["name"] in ("adam", "sgd")
        assert float(params["x"]) == config["x"] and -1 <= config["x"] <= 1
        assert int(params["y"]) == config["y"] and isinstance(config["y"], int)
        if config["optimizer"]["name"] == "sgd":
            assert float(params["optimizer.momentum"]) == config["optimizer"]["momentum"]
        history = client.get_metric_history(child.info.run_id, "loss")
        assert sorted(m.step for m in history) == [1, 2, 3]
        losses = [m.value for m in sorted(history, key=lambda m: m.step)]
        assert losses[0] > losses[1] > losses[2]  # the analytic curve: f + 1/epoch
        assert tags["orchestrator.node_id"]


def test_unreachable_tracking_server_is_named(tmp_path: Path) -> None:
    space = space_file(tmp_path, "nowhere")
    with pytest.raises(OrchestratorError, match=r"tracking server http://127\.0\.0\.1:9 is not reachable"):
        run_search(space, SearchOptions(tracking_uri="http://127.0.0.1:9", storage=str(tmp_path / "ray")))


def test_metric_never_reported_is_named_before_start(tmp_path: Path, store_uri: str) -> None:
    space = space_file(tmp_path, "badmetric")
    space.write_text(space.read_text().replace("{name: loss, mode: min}", "{name: accuracy, mode: max}"))
    with pytest.raises(OrchestratorError, match="metric 'accuracy' is never reported by trainable 'analytic'"):
        run_search(space, SearchOptions(tracking_uri=store_uri, storage=str(tmp_path / "ray")))


def test_unknown_trainable_and_key_are_named(tmp_path: Path) -> None:
    space = space_file(tmp_path, "unknown")
    space.write_text(space.read_text().replace("trainable: analytic", "trainable: analytc"))
    with pytest.raises(OrchestratorError, match="did you mean 'analytic'"):
        run_search(space, SearchOptions(storage=str(tmp_path / "ray")))
    fixed_name = space.read_text().replace("trainable: analytc", "trainable: analytic")
    space.write_text(fixed_name.replace("params:\n", "params:\n  lr: {uniform: [0, 1]}\n"))
    with pytest.raises(OrchestratorError, match=r"params\.lr: trainable 'analytic': lr: not a key"):
        run_search(space, SearchOptions(storage=str(tmp_path / "ray")))


@pytest.mark.slow
def test_failed_trials_are_retried_then_failed_with_reason(
    tmp_path: Path, mlflow_server: LoopbackMlflowServer, local_ray: None
) -> None:
    params = "  x: {uniform: [-1.0, 1.0]}\n  fail_at_epoch: {choice: [null, 2]}\n"
    space = space_file(tmp_path, "failing", params)
    space.write_text(space.read_text().replace("startup_trials: 4}", "startup_trials: 4, max_failures: 1}"))
    options = SearchOptions(tracking_uri=mlflow_server.uri, storage=str(tmp_path / "ray"), seed=0)
    result = run_search(space, options, print)
    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("failing")
    runs = client.search_runs([exp.experiment_id], "tags.`orchestrator.kind` = 'trial'")
    assert len(runs) == 4, "a retried trial keeps its one run"
    failing = [r for r in runs if json.loads(r.data.tags["orchestrator.config"])["fail_at_epoch"] == 2]
    assert 0 < len(failing) < 4, "seed 0 draws both kinds of trial"
    assert result.failed == len(failing) and result.finished == 4 - len(failing)
    for run in runs:
        if run in failing:
            assert run.info.status == "FAILED"
            assert "TrialFailed: loss became NaN at epoch 2" in run.data.tags["orchestrator.failure"]
            assert "loss became NaN" in run.data.tags["orchestrator.retried_after"]
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
            assert steps == [1], "the retry resumed from the epoch-1 checkpoint and logged nothing twice"
        else:
            assert run.info.status == "FINISHED" and "orchestrator.failure" not in run.data.tags


def test_unreachable_ray_address_is_named_quickly(tmp_path: Path, store_uri: str) -> None:
    import time

    space = space_file(tmp_path, "noray")
    start = time.monotonic()
    with pytest.raises(OrchestratorError, match=r"Ray cluster at '127\.0\.0\.1:9' is not reachable"):
        run_search(space, SearchOptions(address="127.0.0.1:9", tracking_uri=store_uri))
    assert time.monotonic() - start < 30
