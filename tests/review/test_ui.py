"""``orchestrator ui``: the links of a study's experiment and best run, and a real MLflow UI on loopback.

The store holds one search made through ``MlflowStore`` (a parent run and trial runs tagged as the runner
tags them), so the best run is known without running Ray.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from orchestrator.errors import OrchestratorError
from orchestrator.review.ui import GENAI_HINT, open_ui, study_links
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import MlflowStore
from orchestrator.tracking.server import free_loopback_port

STUDY = "ui_study"
METRIC = "val_accuracy"
UI_START_TIMEOUT_S = 120.0  # a cold `mlflow server` plus the command's imports, on a busy 2-core machine


def make_search(store: MlflowStore) -> dict[str, str]:
    """A finished search of ``STUDY`` with three trials; returns run ids by role (best, other, failed)."""
    experiment = store.experiment_id(STUDY)
    assert experiment is not None
    parent = store.create_run(
        experiment,
        f"{STUDY} v1",
        {schema.KIND: schema.SEARCH_RUN, schema.STUDY: STUDY},
        {schema.PARAM_METRIC: METRIC, schema.PARAM_MODE: "max"},
    )
    runs = {}
    for role, value, status in (("other", 0.71, "FINISHED"), ("best", 0.93, "FINISHED"), ("failed", 0.99, "FAILED")):
        tags = {schema.KIND: schema.TRIAL_RUN, schema.STUDY: STUDY, schema.PARENT: parent, schema.TRIAL_ID: role}
        run = store.create_run(experiment, role, tags, {})
        store.log_batch(run, metrics=[(schema.best_metric(METRIC), value, 0, 0), (METRIC, value - 0.1, 0, 2)])
        store.end_run(run, status)
        runs[role] = run
    store.end_run(parent, "FINISHED")
    return {"experiment": experiment, **runs}


@pytest.fixture
def store(tmp_path: Path) -> MlflowStore:
    return MlflowStore(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_links_name_the_experiment_and_the_best_finished_trial(store: MlflowStore) -> None:
    ids = make_search(store)
    links = study_links(store, STUDY, "http://127.0.0.1:5000")
    training_view = "?workflowType=machine_learning"  # MLflow 3's UI opens the runs table, not its GenAI view
    assert links.experiment_url == f"http://127.0.0.1:5000/#/experiments/{ids['experiment']}{training_view}"
    assert links.best_run_id == ids["best"] and links.best_value == pytest.approx(0.93)  # not the FAILED 0.99
    assert (
        links.best_run_url
        == f"http://127.0.0.1:5000/#/experiments/{ids['experiment']}/runs/{ids['best']}{training_view}"
    )
    with pytest.raises(OrchestratorError, match="no study 'missing' in the tracking store sqlite:///"):
        study_links(store, "missing", "http://127.0.0.1:5000")


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    """Lines of ``proc``'s output up to the first one containing ``marker`` (read on a thread: no blocking)."""
    assert proc.stdout is not None
    received: queue.Queue[str | None] = queue.Queue()
    stdout = proc.stdout
    threading.Thread(target=lambda: [*map(received.put, stdout), received.put(None)], daemon=True).start()
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = received.get(timeout=left)
        except queue.Empty:
            break
        if line is None:  # the command exited
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"no line with {marker!r} within {timeout:.0f}s; output so far:\n" + "\n".join(lines))


@pytest.mark.slow
def test_ui_serves_the_local_store_prints_reachable_links_and_stops_on_ctrl_c(store: MlflowStore) -> None:
    ids = make_search(store)
    port = free_loopback_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "ui", "--tracking-uri", store.uri, "--port", str(port), STUDY],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = read_until(proc, GENAI_HINT, UI_START_TIMEOUT_S)
        base = f"http://127.0.0.1:{port}"
        text = "\n".join(lines)
        assert f"{base}/#/experiments/{ids['experiment']}" in text
        assert f"{base}/#/experiments/{ids['experiment']}/runs/{ids['best']}" in text
        with urllib.request.urlopen(base, timeout=30) as response:
            assert response.status == 200

        # The same store through the UI's server, as a team server: links printed, nothing started.
        printed: list[str] = []
        links = open_ui(base, STUDY, echo=printed.append)
        assert links is not None and links.best_run_id == ids["best"]
        assert any(f"{base}/#/experiments/{ids['experiment']}/runs/{ids['best']}" in line for line in printed)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
    with pytest.raises(OSError):  # the server went with the command
        urllib.request.urlopen(base, timeout=5)
