"""Kill the driver mid-search, resume it: the planned trials finish, nothing duplicated or left RUNNING."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.engine.runner import SearchOptions, resume_search, run_search
from orchestrator.engine.tracking_callback import MlflowTrialCallback
from orchestrator.tracking.mlflow_store import TrackingError
from orchestrator.tracking.server import LoopbackMlflowServer
from tests.conftest import ROOT
from tests.engine.conftest import MlflowServer, write_space

pytestmark = pytest.mark.slow

PARAMS = "  x: {uniform: [-1.0, 1.0]}\n  y: {int: [-2, 2]}\n"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *args]


def trial_runs(client: MlflowClient, study: str) -> list:
    exp = client.get_experiment_by_name(study)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], "tags.`orchestrator.kind` = 'trial'")


def test_kill_driver_and_resume(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    space = write_space(tmp_path, "resumed", PARAMS, trials=6, epochs=3, sleep=1.0, startup=3)
    storage = tmp_path / "ray"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen(
        cli("run", str(space), "--tracking-uri", mlflow_server.uri, "--storage", str(storage),
            "--concurrency", "2", "--no-live"),
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    client = MlflowClient(mlflow_server.uri)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        runs = trial_runs(client, "resumed")
        statuses = Counter(r.info.status for r in runs)
        if statuses["FINISHED"] >= 2 and statuses["RUNNING"] >= 1:
            break
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        time.sleep(0.3)
    else:
        pytest.fail("the search did not get going: " + (tmp_path / "driver.log").read_text()[-3000:])
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started die at once
    driver.wait()
    before = trial_runs(client, "resumed")
    assert any(r.info.status == "RUNNING" for r in before), "runs the dead driver left RUNNING"

    (experiment,) = [p for p in storage.iterdir() if p.is_dir()]
    resumed = subprocess.run(
        cli("resume", str(experiment), "--no-live"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=400
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "6 finished, 0 failed" in resumed.stdout

    after = trial_runs(client, "resumed")
    # A trial that started after Ray Tune's last saved state is not resumed; its run stays KILLED and says so.
    lost = [r for r in after if "orchestrator.lost" in r.data.tags]
    kept = [r for r in after if r not in lost]
    assert all(r.info.status == "KILLED" for r in lost)
    trial_ids = [r.data.tags["orchestrator.trial_id"] for r in after]
    assert len(set(trial_ids)) == len(trial_ids), "one child run per trial, no duplicates"
    assert len(kept) == 6 and {r.info.status for r in kept} == {"FINISHED"}, Counter(r.info.status for r in after)
    assert not [r for r in after if r.info.status == "RUNNING"]
    for run in kept:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert sorted(steps) == [1, 2, 3], (run.data.tags["orchestrator.trial_id"], steps)  # nothing logged twice
    after = kept
    parent = client.get_run(after[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED" and parent.data.metrics["finished_trials"] == 6
    meta = json.loads((experiment / "orchestrator.json").read_text())
    assert meta["finished"] is True


def stop_when_running(server: LoopbackMlflowServer, study: str, trials: int, timeout: float = 120) -> None:
    """Stop the tracking server once ``trials`` trial runs of ``study`` exist and are RUNNING."""
    client = MlflowClient(server.uri)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(r.info.status == "RUNNING" for r in trial_runs(client, study)) >= trials:
            break
        time.sleep(0.2)
    server.stop()


def test_updates_spilled_with_a_uri_storage_are_sent_by_resume(
    tmp_path: Path, local_ray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tracking server dies mid-search under ``--storage file://...``: what was not sent is sent by resume."""
    monkeypatch.setattr(MlflowTrialCallback, "flush_timeout_s", 2.0)  # not two minutes against a dead server
    space = write_space(tmp_path, "spilled", PARAMS, trials=2, epochs=3, sleep=1.5, startup=2)
    storage = (tmp_path / "ray").as_uri()
    with LoopbackMlflowServer(tmp_path / "mlflow") as server:
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
