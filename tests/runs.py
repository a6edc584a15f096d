"""Driving the ``orchestrator`` command in a subprocess and reading a search's runs back from MLflow."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from orchestrator.tracking import schema
from orchestrator.tracking.server import LoopbackMlflowServer


def command(*args: str) -> list[str]:
    """The ``orchestrator`` command line with ``args``, run by this interpreter (for ``subprocess``)."""
    return [sys.executable, "-m", "orchestrator", *args]


def trial_runs(client: MlflowClient, study: str) -> list[Any]:
    """Every trial run of ``study`` (none when the study has no experiment yet)."""
    exp = client.get_experiment_by_name(study)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], f"tags.`{schema.KIND}` = '{schema.TRIAL_RUN}'")


def ray_epochs(trial_folder: Path) -> list[int]:
    """The epochs a Ray Tune trial reported, from its result log (Ray Tune's ``result.json``, JSON lines)."""
    return [json.loads(line)["epoch"] for line in (trial_folder / "result.json").read_text().splitlines()]


def stop_when_running(server: LoopbackMlflowServer, study: str, trials: int, timeout: float = 120) -> None:
    """Stop the tracking server once ``trials`` trial runs of ``study`` exist and are RUNNING (polled on the
    server, the one place that knows; stopped after ``timeout`` seconds in any case)."""
    client = MlflowClient(server.uri)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(r.info.status == "RUNNING" for r in trial_runs(client, study)) >= trials:
            break
        time.sleep(0.2)
    server.stop()


def log_scored_trials(store_uri: str, version_file: Path, n: int = 8) -> None:
    """``n`` finished trials of the version in ``version_file`` (analytic, searching ``x`` and ``y``, metric
    ``loss``), logged as the orchestrator logs them, under one finished search run."""
    from orchestrator.spaces import load_version
    from orchestrator.tracking.mlflow_store import MlflowStore

    version = load_version(version_file)
    store = MlflowStore(store_uri)
    experiment = store.experiment_id(version.study)
    assert experiment is not None
    parent = store.create_run(experiment, "search", {schema.KIND: schema.SEARCH_RUN}, {})
    for i in range(n):
        config = {"x": -5.0 + 15.0 * i / (n - 1), "y": 15.0 * (i % 3) / 2}
        tags = {
            schema.KIND: schema.TRIAL_RUN,
            schema.PARENT: parent,
            schema.STUDY: version.study,
            schema.VERSION: str(version.version),
            schema.HASH: version.content_hash,
            schema.TRIAL_ID: f"t{i}",
            schema.CONFIG: json.dumps(config),
        }
        run = store.create_run(experiment, f"t{i}", tags, config)
        store.log_batch(run, metrics=[("loss", float((config["x"] - 3) ** 2 + i * 0.01), 0, 1)])
        store.end_run(run, "FINISHED")
    store.end_run(parent, "FINISHED")
