"""The background logger: batches, survives a tracking-server outage, spills what it cannot send."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.tracking.async_logger import AsyncTrialLogger, SpillFile, replay_spill
from orchestrator.tracking.mlflow_store import MlflowStore, describe_uri
from orchestrator.tracking.server import LoopbackMlflowServer
from tests.plugin import SqliteTemplate


def experiment(client: MlflowClient, name: str) -> str:
    return client.create_experiment(name)


@pytest.fixture
def own_server(tmp_path: Path, sqlite_template: SqliteTemplate) -> Iterator[LoopbackMlflowServer]:
    """A server of the test's own, which the test may stop and start again (an outage)."""
    with sqlite_template.server(tmp_path / "mlflow") as server:
        yield server


def logger_with_open_trial(uri: str, name: str, **options: Any) -> tuple[MlflowClient, AsyncTrialLogger]:
    """A started logger that has opened trial ``t`` in a new experiment ``name``."""
    client = MlflowClient(uri)
    logger = AsyncTrialLogger(lambda: MlflowStore(uri), **options)
    logger.start()
    logger.open("t", experiment(client, name), "t", {}, {})
    return client, logger


@pytest.mark.slow
def test_batches_many_results_into_few_calls(mlflow_server: LoopbackMlflowServer) -> None:
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


@pytest.mark.slow
def test_outage_loses_nothing(own_server: LoopbackMlflowServer) -> None:
    errors: list[str] = []
    failed = threading.Event()  # set by the logger's first error once the server is gone

    def on_error(line: str) -> None:
        errors.append(line)
        failed.set()

    client, logger = logger_with_open_trial(own_server.uri, "outage", max_backoff=1.0, on_error=on_error)
    for step in range(5):
        logger.log("t", {"loss": float(step)}, step)
    assert logger.flush(30)
    own_server.stop()  # the tracking server goes away mid-search
    for step in range(5, 15):
        logger.log("t", {"loss": float(step)}, step)
    logger.close("t", "FINISHED")
    assert failed.wait(60), "the logger meets the stopped server"
    assert errors and not logger.flush(0.1), "updates are held while the server is down"
    own_server.start()  # ... and comes back on the same address and store
    assert logger.flush(60)
    run_id = logger.run_id("t")
    logger.stop()
    steps = sorted(m.step for m in client.get_metric_history(run_id, "loss"))
    assert steps == list(range(15))
    assert client.get_run(run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_unsent_updates_spill_to_disk_and_replay(own_server: LoopbackMlflowServer, tmp_path: Path) -> None:
    client, logger = logger_with_open_trial(own_server.uri, "spill", max_backoff=0.5)
    assert logger.flush(30)
    run_id = logger.run_id("t")
    exp = client.get_experiment_by_name("spill").experiment_id
    own_server.stop()
    for step in range(3):
        logger.log("t", {"loss": float(step)}, step)
    logger.close("t", "FINISHED", {"orchestrator.status": "FINISHED"})
    logger.open("u", exp, "never created", {"k": "v"}, {"x": 1})  # its run could not be created before the stop
    logger.log("u", {"loss": 9.0}, 1)
    spill = SpillFile.local(tmp_path / "spill.jsonl")
    assert logger.stop(timeout=2, spill_to=spill) == 6
    ops = [json.loads(line) for line in (tmp_path / "spill.jsonl").read_text().splitlines()]
    assert [op["kind"] for op in ops] == ["log", "log", "log", "close", "open", "log"] and ops[0]["run"] == run_id
    own_server.start()
    assert replay_spill(spill, MlflowStore(own_server.uri)) == 6 and not spill.exists()
    assert sorted(m.step for m in client.get_metric_history(run_id, "loss")) == [0, 1, 2]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["orchestrator.status"] == "FINISHED"
    (created,) = client.search_runs([exp], "attributes.run_name = 'never created'")
    assert created.data.params == {"x": "1"} and created.data.tags["k"] == "v"
    assert [m.value for m in client.get_metric_history(created.info.run_id, "loss")] == [9.0]


def test_credentials_never_shown() -> None:
    assert describe_uri("https://alice:s3cret@mlflow.example:5000/x") == "https://mlflow.example:5000/x"
    assert describe_uri("sqlite:///tmp/a.db") == "sqlite:///tmp/a.db"
