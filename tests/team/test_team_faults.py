"""Faults of the team's stack mid-search (issue 22): PostgreSQL stopped and restarted, the S3 store stopped, two
teammates searching one study at once. Each search runs against the session's real stack (``team``), and the record
it leaves is checked the same way: every trial once, every metric step once, nothing RUNNING afterwards.

* **PostgreSQL** is stopped once the first trial's run exists (trials are training) and started again 8 s later:
  the MLflow server answers 503 meanwhile, the driver keeps every update and says so in two lines (the outage began;
  it ended), and the trials go on (results the driver took in while the database was down carry timestamps inside
  the outage).
* **S3** is stopped once the first trial's run exists and stays down until the search has ended: the trials
  are recorded in full; the search's review artifacts and its ledger cannot be uploaded, which its run says with
  ``orchestrator.review_error`` and ``orchestrator.ledger_error`` (the ledger was tried twice), and the search ends
  FINISHED. Once S3 is back, writing the ledger again works.
* **Two teammates** (``alice``, and ``bob`` with EDIT granted through ``access``) start ``orchestrator run`` of one
  study at once, each in its own process with its own local Ray and its own storage folder.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import cli
from orchestrator.tracking import access, ledger, schema
from orchestrator.tracking.mlflow_store import MlflowStore
from tests.conftest import ROOT
from tests.engine.conftest import write_space
from tests.team.stack import Team

pytestmark = pytest.mark.slow

PARAMS = "  x: {uniform: [-1.0, 1.0]}\n  y: {int: [-2, 2]}\n"
EPOCHS = 4
OUTAGE_S = 8.0


def search(team: Team, user: str, space: Path, storage: Path, *args: str) -> Result:
    """``orchestrator run SPACE`` as ``user`` in this process (the session's local Ray)."""
    command = ["run", str(space), "--storage", str(storage), "--concurrency", "2", "--no-live", *args]
    return CliRunner(env=team.env(user)).invoke(cli, command)


def trial_runs(client: Any, study: str) -> list[Any]:
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], f"tags.`{schema.KIND}` = '{schema.TRIAL_RUN}'")


def when_trials_run(team: Team, study: str, then: Callable[[], None], timeout: float = 240) -> threading.Thread:
    """A thread that waits until a trial of ``study`` has its run in the store (it is training), then calls ``then``."""
    client = team.client("alice")

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if trial_runs(client, study):
                then()
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def assert_recorded_once(team: Team, study: str, planned: int, parents: int = 1) -> list[Any]:
    """Every trial once, every metric step once, nothing RUNNING; returns the trial runs."""
    client = team.client("alice")
    runs = trial_runs(client, study)
    trial_ids = [r.data.tags[schema.TRIAL_ID] for r in runs]
    assert len(runs) == planned and len(set(trial_ids)) == planned, Counter(trial_ids)
    assert {r.info.status for r in runs} == {"FINISHED"}, Counter(r.info.status for r in runs)
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert sorted(steps) == list(range(1, EPOCHS + 1)), (run.data.tags[schema.TRIAL_ID], steps)
    experiment = client.get_experiment_by_name(study).experiment_id
    searches = client.search_runs([experiment], f"tags.`{schema.KIND}` = '{schema.SEARCH_RUN}'")
    assert len(searches) == parents and {s.info.status for s in searches} == {"FINISHED"}
    everything = client.search_runs([experiment], max_results=1000)
    assert "RUNNING" not in {r.info.status for r in everything}
    return runs


def tracking_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("tracking:")]


def test_postgresql_restarted_mid_search_loses_nothing_and_never_blocks_training(
    team: Team, team_ray: None, tmp_path: Path
) -> None:
    study = "team_pg_restart"
    space = write_space(tmp_path, study, PARAMS, trials=4, epochs=EPOCHS, sleep=2.0, startup=4)
    outage: dict[str, float] = {}

    def restart_postgres() -> None:
        team.stack.postgres.stop()
        outage["down_ms"] = time.time() * 1000
        time.sleep(OUTAGE_S)
        outage["up_ms"] = time.time() * 1000
        team.stack.postgres.start()

    watcher = when_trials_run(team, study, restart_postgres)
    result = search(team, "alice", space, tmp_path / "ray")
    watcher.join()
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "4 finished, 0 failed" in result.stdout
    assert "down_ms" in outage, "the database was restarted during the search"
    lines = tracking_lines(result)
    assert len(lines) == 2, result.stderr[-3000:]
    assert "503" in lines[0] and lines[0].endswith("keeping updates, retrying until it answers"), lines
    assert lines[1].startswith("tracking: the server answers again after ") and lines[1].endswith("kept updates sent")

    runs = assert_recorded_once(team, study, planned=4)
    client = team.client("alice")
    during = [
        m
        for r in runs
        for m in client.get_metric_history(r.info.run_id, "loss")
        if outage["down_ms"] < m.timestamp < outage["up_ms"]
    ]
    assert during, "trials reported epochs while the database was down (training went on)"


def test_s3_down_mid_search_tags_the_review_and_the_ledger_and_loses_no_trial(
    team: Team, team_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = "team_s3_down"
    space = write_space(tmp_path, study, PARAMS, trials=3, epochs=EPOCHS, sleep=0.5, startup=3)
    assert team.stack.s3 is not None
    monkeypatch.setattr(ledger, "UPLOAD_RETRY_S", 0.2)
    watcher = when_trials_run(team, study, team.stack.s3.stop)
    try:
        result = search(team, "alice", space, tmp_path / "ray")
        watcher.join()
        assert not team.stack.s3.running, "S3 was stopped during the search"
    finally:
        team.stack.s3.start()
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "3 finished, 0 failed" in result.stdout
    assert "review: no review artifacts on run " in result.stdout
    assert "tracking: no ledger artifact on run " in result.stdout

    assert_recorded_once(team, study, planned=3)
    client = team.client("alice")
    (parent,) = client.search_runs(
        [client.get_experiment_by_name(study).experiment_id], f"tags.`{schema.KIND}` = '{schema.SEARCH_RUN}'"
    )
    tags = parent.data.tags
    assert tags.get(schema.REVIEW_ERROR) and tags.get(schema.LEDGER_ERROR), (tags, result.output)
    assert tags[schema.LEDGER_ERROR].endswith(": too many 500 error responses"), tags[schema.LEDGER_ERROR]
    assert schema.LEDGER_AS_OF not in tags, "no ledger is named that was not written"

    # S3 is back: the ledger of that search can be written now (what the next search's end does for the study)
    for name, value in team.env("alice").items():  # as alice's shell (MLflow caches a run's artifact client)
        monkeypatch.setenv(name, value)
    assert ledger.write_artifact(MlflowStore(team.uri), study, parent.info.run_id) == 3
    key = f"artifacts/{parent.info.experiment_id}/{parent.info.run_id}/artifacts/{schema.LEDGER_ARTIFACT}"
    assert key in team.objects(key)


def test_two_teammates_search_one_study_at_once_each_trial_once(
    team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = "team_two_at_once"
    space = write_space(tmp_path, study, PARAMS, trials=3, epochs=EPOCHS, sleep=0.3, startup=3)
    for name, value in team.env("alice").items():  # alice's shell: her study, she holds MANAGE on it
        monkeypatch.setenv(name, value)
    alice = MlflowStore(team.uri)
    alice.experiment_id(study)
    access.grant(alice, study, "bob", "EDIT")
    drivers = {}
    for user in ("alice", "bob"):
        env = team.env(user, PYTHONUNBUFFERED="1", ORCHESTRATOR_HOME=str(tmp_path / f"home-{user}"))
        command = [sys.executable, "-m", "orchestrator", "run", str(space), "--concurrency", "1", "--no-live"]
        drivers[user] = subprocess.Popen(
            [*command, "--storage", str(tmp_path / f"ray-{user}")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    for user, driver in drivers.items():
        output, _ = driver.communicate(timeout=400)
        assert driver.returncode == 0, f"{user}:\n{output[-3000:]}"
        assert "3 finished, 0 failed" in output, output[-3000:]

    runs = assert_recorded_once(team, study, planned=6, parents=2)
    client = team.client("alice")
    experiment = client.get_experiment_by_name(study).experiment_id
    searches = client.search_runs([experiment], f"tags.`{schema.KIND}` = '{schema.SEARCH_RUN}'")
    folders = {s.info.run_id: s.data.tags[schema.EXPERIMENT_PATH] for s in searches}
    for user in ("alice", "bob"):  # each search in its teammate's own folder: no shared folder
        (parent,) = [run for run, folder in folders.items() if folder.startswith(str(tmp_path / f"ray-{user}"))]
        mine = [r for r in runs if r.data.tags[schema.PARENT] == parent]
        assert len(mine) == 3, (user, len(mine))
