"""The tracking server goes away for good mid-search: the trials finish, what was not sent is spilled
within the bounded wait, the command exits non-zero naming the spill file in one line, and
``orchestrator resume`` sends it once a server answers for the store again."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.engine.storage import SPILL
from orchestrator.settings import TRACKING_WAIT_ENV
from tests.plugin import SqliteTemplate
from tests.runs import command, stop_when_running, trial_runs
from tests.spacefiles import ROOT, small_search, write_space

pytestmark = pytest.mark.slow

WAIT_S = 3
PARAMS = "  x: {uniform: [-1.0, 1.0]}\n  y: {int: [-2, 2]}\n"


def test_store_lost_for_good_spills_in_bounded_time_and_resume_sends_it(
    tmp_path: Path, sqlite_template: SqliteTemplate
) -> None:
    space = write_space(
        tmp_path / "search_spaces", study="lostforgood", params=PARAMS, **small_search(2, 3, sleep=1.5, startup=2)
    )
    storage = tmp_path / "ray"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", TRACKING_WAIT_ENV: str(WAIT_S)}
    with sqlite_template.server(tmp_path / "mlflow") as server:
        stopper = threading.Thread(target=stop_when_running, args=(server, "lostforgood", 2))
        stopper.start()
        start = time.monotonic()
        driver = subprocess.run(
            command(
                "run",
                str(space),
                "--tracking-uri",
                server.uri,
                "--storage",
                str(storage),
                "--concurrency",
                "2",
                "--no-live",
            ),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        wall_s = time.monotonic() - start
        stopper.join()
        output = driver.stdout + driver.stderr
        (folder,) = [p for p in storage.iterdir() if p.is_dir()]
        spill = folder / SPILL

        assert driver.returncode == 1, output[-3000:]
        assert "done 2," in driver.stdout, "the trials finished without the server"
        assert "Traceback" not in output, output[-3000:]
        tracking_lines = [line for line in driver.stderr.splitlines() if line.startswith("tracking:")]
        assert len(tracking_lines) == 2, tracking_lines  # the outage began; what was kept where
        assert "retrying until it answers" in tracking_lines[0]
        assert f"could not be sent within {WAIT_S}s; kept in {spill}" in tracking_lines[1]
        error = driver.stderr.strip().splitlines()[-1]
        assert error.startswith("error: the search ran (2 finished, 0 failed), but the tracking server "), error
        assert f"unsent updates are in {spill}" in error and f"orchestrator resume {folder}" in error
        assert spill.exists()
        assert wall_s < 150, f"{wall_s:.0f}s: the driver waited {WAIT_S}s for the server, not without limit"

        server.start()  # a server for the same store answers again
        client = MlflowClient(server.uri)
        assert {r.info.status for r in trial_runs(client, "lostforgood")} == {"RUNNING"}
        resumed = subprocess.run(
            command("resume", str(folder), "--no-live"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        assert "update(s) kept from the last driver" in resumed.stdout
        assert not spill.exists()
        runs = trial_runs(client, "lostforgood")
        assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
        for run in runs:
            assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss")) == [1, 2, 3]
        parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
        assert parent.info.status == "FINISHED" and parent.data.metrics["finished_trials"] == 2
