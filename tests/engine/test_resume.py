"""Kill the driver mid-search, resume it: the planned trials finish, nothing duplicated or left RUNNING.

Resume rebuilds the search from ``orchestrator.json`` and the tracking store: every interrupted trial
continues in its own run from its last checkpoint, and each epoch is logged once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.api import resume_search, run_search
from orchestrator.engine.runner import SearchOptions
from orchestrator.engine.storage import open_experiment
from orchestrator.engine.tracking_callback import MlflowTrialCallback
from orchestrator.tracking.mlflow_store import TrackingError
from orchestrator.tracking.server import LoopbackMlflowServer
from tests.plugin import SqliteTemplate
from tests.runs import command, ray_epochs, stop_when_running, trial_runs
from tests.spacefiles import ROOT, small_search, write_space

pytestmark = pytest.mark.slow

PARAMS = "  x: {uniform: [-1.0, 1.0]}\n  y: {int: [-2, 2]}\n"


def test_kill_driver_and_resume(tmp_path: Path, mlflow_server: LoopbackMlflowServer) -> None:
    space = write_space(
        tmp_path / "search_spaces", study="resumed", params=PARAMS, **small_search(6, 3, sleep=1.0, startup=3)
    )
    storage = tmp_path / "ray"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen(
        command(
            "run",
            str(space),
            "--tracking-uri",
            mlflow_server.uri,
            "--storage",
            str(storage),
            "--concurrency",
            "2",
            "--no-live",
        ),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = MlflowClient(mlflow_server.uri)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        runs = trial_runs(client, "resumed")
        statuses = Counter(r.info.status for r in runs)
        if statuses["FINISHED"] >= 2 and any(logged_epochs(client, r) for r in runs if r.info.status == "RUNNING"):
            break  # a running trial has a checkpoint to continue from
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        time.sleep(0.3)
    else:
        pytest.fail("the search did not get going: " + (tmp_path / "driver.log").read_text()[-3000:])
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started die at once
    driver.wait()
    before = trial_runs(client, "resumed")
    interrupted = {r.info.run_id: logged_epochs(client, r) for r in before if r.info.status == "RUNNING"}
    assert interrupted, "runs the dead driver left RUNNING"

    (experiment,) = [p for p in storage.iterdir() if p.is_dir()]
    resumed = subprocess.run(
        command("resume", str(experiment), "--no-live"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=400
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "6 finished, 0 failed" in resumed.stdout

    after = trial_runs(client, "resumed")
    trial_ids = [r.data.tags["orchestrator.trial_id"] for r in after]
    assert len(set(trial_ids)) == len(trial_ids), "one child run per trial, no duplicates"
    assert len(after) == 6 and {r.info.status for r in after} == {"FINISHED"}, Counter(r.info.status for r in after)
    for run in after:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert sorted(steps) == [1, 2, 3], (run.data.tags["orchestrator.trial_id"], steps)  # nothing logged twice
    folder = open_experiment(str(experiment))
    for run in (r for r in after if r.info.run_id in interrupted):  # every interrupted trial continued
        before_run = next(r for r in before if r.info.run_id == run.info.run_id)
        assert run.data.tags["orchestrator.seed"] == before_run.data.tags["orchestrator.seed"]
        continued_as = run.data.tags["orchestrator.resumed_as"]
        assert continued_as != run.data.tags["orchestrator.trial_id"]
        epochs = ray_epochs(experiment / str(folder.trial_folder(continued_as)))
        logged = interrupted[run.info.run_id]
        assert epochs == list(range(epochs[0], 4)) and 1 <= epochs[0] <= logged + 1, (logged, epochs)
        assert (epochs[0] > 1) == (logged > 0), (logged, epochs)  # from its checkpoint when it had one
    parent = client.get_run(after[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED" and parent.data.metrics["finished_trials"] == 6
    meta = json.loads((experiment / "orchestrator.json").read_text())
    assert meta["finished"] is True


def logged_epochs(client: MlflowClient, run: Any) -> int:
    """The last epoch logged on ``run`` (0 for none)."""
    return max((m.step for m in client.get_metric_history(run.info.run_id, "loss")), default=0)


def test_updates_spilled_with_a_uri_storage_are_sent_by_resume(
    tmp_path: Path, sqlite_template: SqliteTemplate, local_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tracking server dies mid-search under ``--storage file://...``: what was not sent is sent by resume."""
    monkeypatch.setattr(MlflowTrialCallback, "flush_timeout_s", 2.0)  # not two minutes against a dead server
    space = write_space(
        tmp_path / "search_spaces", study="spilled", params=PARAMS, **small_search(2, 3, sleep=1.5, startup=2)
    )
    storage = (tmp_path / "ray").as_uri()
    with sqlite_template.server(tmp_path / "mlflow") as server:
        options = SearchOptions(tracking_uri=server.uri, storage=storage, concurrency=2, live=False)
        stopper = threading.Thread(target=stop_when_running, args=(server, "spilled", 2))
        stopper.start()
        with pytest.raises(TrackingError, match=r"could not record its end .*; once it answers: orchestrator resume"):
            run_search(space, options, lambda _: None)
        stopper.join()
        (folder,) = [p for p in (tmp_path / "ray").iterdir() if p.is_dir()]
        spill = folder / "tracking-spill.jsonl"
        assert spill.exists(), "unsent updates are kept in the experiment folder, whatever the storage URI"

        server.start()
        client = MlflowClient(server.uri)
        assert {r.info.status for r in trial_runs(client, "spilled")} == {"RUNNING"}
        lines: list[str] = []
        result = resume_search(f"{storage}/{folder.name}", SearchOptions(live=False), lines.append)
        assert any(line.startswith("sending ") for line in lines), lines
        assert not spill.exists()
        assert result.finished == 2 and not result.interrupted
        runs = trial_runs(client, "spilled")
        assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
        for run in runs:
            assert run.data.tags["orchestrator.status"] == "FINISHED"
            assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss")) == [1, 2, 3]
        parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
        assert parent.info.status == "FINISHED" and parent.data.metrics["finished_trials"] == 2
