"""The background logger: batches, survives a tracking-server outage, spills what it cannot send."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.tracking.async_logger import AsyncTrialLogger, replay_spill
from orchestrator.tracking.mlflow_store import MlflowStore, describe_uri
from tests.engine.conftest import MlflowServer, mlflow_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


def experiment(client: MlflowClient, name: str) -> str:
    return client.create_experiment(name)


def test_batches_many_results_into_few_calls(mlflow_server: MlflowServer) -> None:  # noqa: F811
    client = MlflowClient(mlflow_server.uri)
    exp = experiment(client, "batching")
    logger = AsyncTrialLogger(lambda: MlflowStore(mlflow_server.uri))
    logger.start()
    start = time.perf_counter()
    logger.open("t1", exp, "t1", {"k": "v"}, {"a.b": 1, "lst": [1, 2]})
    for step in range(200):
        logger.log("t1", {"loss": 1.0 / (step + 1), "acc": step / 200}, step)
    enqueue_s = time.perf_counter() - start
    logger.close("t1", "FINISHED")
    assert logger.flush(60)
    run_id = logger.run_id("t1")
    logger.stop()
    assert enqueue_s < 0.5, "the producer side never waits for the server"
    assert logger.calls <= 20, f"{logger.calls} calls for 400 values"
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"a.b": "1", "lst": "[1, 2]"}
    assert len(client.get_metric_history(run_id, "loss")) == 200


def test_outage_loses_nothing(tmp_path: Path) -> None:
    server = MlflowServer(tmp_path)
    server.start()
    try:
        client = MlflowClient(server.uri)
        exp = experiment(client, "outage")
        errors: list[str] = []
        logger = AsyncTrialLogger(lambda: MlflowStore(server.uri), max_backoff=1.0, on_error=errors.append)
        logger.start()
        logger.open("t", exp, "t", {}, {})
        for step in range(5):
            logger.log("t", {"loss": float(step)}, step)
        assert logger.flush(30)
        server.stop()  # the tracking server goes away mid-search
        for step in range(5, 15):
            logger.log("t", {"loss": float(step)}, step)
        logger.close("t", "FINISHED")
        time.sleep(3)
        assert errors and not logger.flush(0.1), "updates are held while the server is down"
        server.start()  # ... and comes back on the same address and store
        assert logger.flush(60)
        run_id = logger.run_id("t")
        logger.stop()
        steps = sorted(m.step for m in client.get_metric_history(run_id, "loss"))
        assert steps == list(range(15))
        assert client.get_run(run_id).info.status == "FINISHED"
    finally:
        server.stop()


def test_unsent_updates_spill_to_disk_and_replay(tmp_path: Path) -> None:
    server = MlflowServer(tmp_path)
    server.start()
    try:
        client = MlflowClient(server.uri)
        exp = experiment(client, "spill")
        logger = AsyncTrialLogger(lambda: MlflowStore(server.uri), max_backoff=0.5)
        logger.start()
        logger.open("t", exp, "t", {}, {})
        assert logger.flush(30)
        run_id = logger.run_id("t")
        server.stop()
        for step in range(3):
            logger.log("t", {"loss": float(step)}, step)
        logger.close("t", "FINISHED")
        spill = tmp_path / "spill.jsonl"
        assert logger.stop(timeout=2, spill_to=spill) == 4
        ops = [json.loads(line) for line in spill.read_text().splitlines()]
        assert [op["kind"] for op in ops] == ["log", "log", "log", "close"] and ops[0]["run"] == run_id
        server.start()
        assert replay_spill(spill, MlflowStore(server.uri)) == 4 and not spill.exists()
        assert sorted(m.step for m in client.get_metric_history(run_id, "loss")) == [0, 1, 2]
        assert client.get_run(run_id).info.status == "FINISHED"
    finally:
        server.stop()


def test_credentials_never_shown() -> None:
    assert describe_uri("https://alice:s3cret@mlflow.example:5000/x") == "https://mlflow.example:5000/x"
    assert describe_uri("sqlite:///tmp/a.db") == "sqlite:///tmp/a.db"
