"""``submit --ray-address`` and ``jobs ... --ray-address`` against a real Ray cluster with token authentication.

A head (Ray's dashboard and job server on 127.0.0.1, no CPUs for trials) and a worker node, each a ``ray start``
process tree (``tests/engine/ray_cluster.py``), every node started with ``RAY_AUTH_MODE=token`` and the cluster's
own token file; a real ``mlflow server`` on loopback. The command line runs as a user's would, in a process of its
own, with the cluster's token in Ray's variables (``RayCluster.env``) or a wrong one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.tracking import schema
from orchestrator.tracking.server import LoopbackMlflowServer
from tests.engine.ray_cluster import RayCluster, started_cluster
from tests.plugin import SqliteTemplate
from tests.spacefiles import ROOT, write_space

pytestmark = pytest.mark.slow

JOB_TIMEOUT_S = 300.0
CompletedProcess = subprocess.CompletedProcess[str]


@dataclass
class Team:
    """The cluster, the tracking server and a folder for the searches' state, shared by the tests here."""

    cluster: RayCluster
    server: LoopbackMlflowServer
    root: Path

    def space(self, study: str, trials: int, epochs: int, sleep: float) -> Path:
        return write_space(
            self.root / "spaces",
            study=study,
            schedule=f"{{scheduler: fifo, max_epochs: {epochs}}}",
            search=f"{{algorithm: tpe, trials: {trials}, startup_trials: 2}}",
            fixed=f"{{function: quadratic, sleep: {sleep}}}",
        )

    def cli(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 240) -> CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            cwd=ROOT,
            env=dict(self.cluster.env if env is None else env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def submit(self, space: Path, *extra: str) -> str:
        done = self.cli(
            "submit",
            str(space),
            "--ray-address",
            self.cluster.dashboard_url,
            "--tracking-uri",
            self.server.uri,
            "--storage",
            str(self.root / "storage"),
            *extra,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        first = done.stdout.splitlines()[0]
        assert first.startswith("submitted Ray job "), done.stdout
        return first.split()[3]

    def jobs(self, *args: str, env: Mapping[str, str] | None = None) -> CompletedProcess:
        return self.cli("jobs", *args, "--ray-address", self.cluster.dashboard_url, env=env)

    def runs(self, study: str, kind: str) -> list:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.server.uri)
        experiment = client.get_experiment_by_name(study)
        if experiment is None:
            return []
        return client.search_runs([experiment.experiment_id], f"tags.`{schema.KIND}` = '{kind}'")


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, sqlite_template: SqliteTemplate) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("ray-jobs")
    server = sqlite_template.server(root / "mlflow")
    server.launch()  # starts while the cluster does
    try:
        for cluster in started_cluster(root / "nodes", [(2, 0)], head_cpus=0, dashboard=True):
            cluster.wait_for_job_server()
            server.wait()
            yield Team(cluster, server, root)
    finally:
        server.stop()


def _one_error_line(done: CompletedProcess) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_a_missing_or_wrong_token_is_refused_in_one_line_and_starts_nothing(team: Team) -> None:
    space = team.space("refused", trials=2, epochs=1, sleep=0)
    submit = ("submit", str(space), "--ray-address", team.cluster.dashboard_url, "--tracking-uri", team.server.uri)
    wrong = {**team.cluster.env, "RAY_AUTH_TOKEN": "0" * 64}  # takes precedence over the cluster's token file
    line = _one_error_line(team.cli(*submit, env=wrong))
    assert f"Ray cluster at {team.cluster.dashboard_url} refused the token from RAY_AUTH_TOKEN" in line
    assert "RAY_AUTH_TOKEN_PATH" in line  # what to set
    missing = {k: v for k, v in team.cluster.env.items() if not k.startswith("RAY_AUTH")}
    line = _one_error_line(team.cli(*submit, env=missing))
    assert "requires token authentication and RAY_AUTH_MODE is not set: set RAY_AUTH_MODE=token" in line

    # `run --address` joins through the GCS: refused in one line too, before the search's run exists.
    started = time.monotonic()
    run = team.cli("run", str(space), "--address", team.cluster.address, "--tracking-uri", team.server.uri, env=wrong)
    line = _one_error_line(run)
    assert f"Ray cluster at '{team.cluster.address}' refused the token from RAY_AUTH_TOKEN" in line
    assert time.monotonic() - started < 60, "not ray.init's 20 s of retries after the imports"

    assert team.runs("refused", schema.SEARCH_RUN) == [] and team.runs("refused", schema.TRIAL_RUN) == []
    listed = team.jobs("list", "--all")
    assert listed.returncode == 0 and "refused" not in listed.stdout, listed.stdout + listed.stderr


def test_a_submitted_search_runs_to_the_end_and_its_job_and_run_name_each_other(team: Team) -> None:
    space = team.space("submitted", trials=3, epochs=3, sleep=0.7)
    job = team.submit(space, "--concurrency", "1")

    # `jobs logs --follow` streams: the first trial's line arrives while the search still runs.
    follow = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "jobs", "logs", job, "--ray-address", team.cluster.dashboard_url, "-f"],
        cwd=ROOT,
        env=team.cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    running_at_first_trial = None
    deadline = time.monotonic() + JOB_TIMEOUT_S
    assert follow.stdout is not None
    for line in follow.stdout:
        seen.append(line)
        if running_at_first_trial is None and line.startswith("trial ") and " done: " in line:
            running_at_first_trial = [r.info.status for r in team.runs("submitted", schema.SEARCH_RUN)]
        assert time.monotonic() < deadline, "".join(seen)
    assert follow.wait(timeout=60) == 0, "".join(seen) + follow.stderr.read()  # type: ignore[union-attr]
    log = "".join(seen)
    assert running_at_first_trial == ["RUNNING"], log

    (parent,) = team.runs("submitted", schema.SEARCH_RUN)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[schema.RAY_JOB_ID] == job
    assert f"parent run {parent.info.run_id}" in log and "3 finished, 0 failed" in log
    trials = team.runs("submitted", schema.TRIAL_RUN)
    assert len(trials) == 3 and {t.info.status for t in trials} == {"FINISHED"}
    assert {t.data.tags[schema.PARENT] for t in trials} == {parent.info.run_id}

    status = team.jobs("status", job)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "status:      SUCCEEDED" in status.stdout
    assert f"search run:  {parent.info.run_id} (FINISHED)" in status.stdout
    listed = team.jobs("list")
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith(job))
    assert row[1:5] == ["submitted", "1", parent.data.tags[schema.HASH][:12], "SUCCEEDED"]


def _driver_pid(job: str) -> int | None:
    """The search process of Ray job ``job`` here: the one Ray started with the job's id in its environment."""
    mark = f'"job_submission_id": "{job}"'.encode()
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if mark in environ and b"orchestrator" in b" ".join(cmdline) and b"run" in cmdline:
            return int(entry.name)
    return None


def test_cancel_stops_the_search_and_its_run_ends_killed_with_the_reason(team: Team) -> None:
    """Two searches at once: one stopped by `jobs cancel`, and one whose driver dies first (SIGKILL, as a lost
    head process): its run, left RUNNING, is ended KILLED by `jobs cancel` once the job has ended."""
    cancelled = team.submit(team.space("cancelled", trials=4, epochs=60, sleep=0.5), "--concurrency", "1")
    killed = team.submit(team.space("killed", trials=4, epochs=60, sleep=0.5), "--concurrency", "1")
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not (team.runs("cancelled", schema.TRIAL_RUN) and team.runs("killed", schema.TRIAL_RUN)):
        assert time.monotonic() < deadline, team.jobs("logs", cancelled).stdout + team.jobs("logs", killed).stdout
        time.sleep(1)
    pid = _driver_pid(killed)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    cancel = team.jobs("cancel", cancelled)
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    assert cancel.stdout.startswith(f"stopped Ray job {cancelled} (STOPPED)"), cancel.stdout
    (parent,) = team.runs("cancelled", schema.SEARCH_RUN)
    assert parent.info.status == "KILLED", cancel.stdout
    reason = parent.data.tags[schema.END_REASON]
    assert reason.startswith(f"stopped by Ray's job manager (Ray job {cancelled})"), reason
    assert "orchestrator resume " in reason
    assert f"search run {parent.info.run_id}: KILLED" in cancel.stdout
    assert "RUNNING" not in {t.info.status for t in team.runs("cancelled", schema.TRIAL_RUN)}
    status = team.jobs("status", cancelled)
    assert "status:      STOPPED" in status.stdout and f"search run:  {parent.info.run_id} (KILLED)" in status.stdout
    again = team.jobs("cancel", cancelled)
    assert again.stdout.startswith(f"Ray job {cancelled} has already ended (STOPPED)"), again.stdout

    (orphan,) = team.runs("killed", schema.SEARCH_RUN)
    assert orphan.info.status == "RUNNING", "a driver killed with SIGKILL runs no code"
    settle = team.jobs("cancel", killed)
    assert settle.returncode == 0, settle.stdout + settle.stderr
    assert settle.stdout.startswith(f"Ray job {killed} has already ended (FAILED)"), settle.stdout
    (orphan,) = team.runs("killed", schema.SEARCH_RUN)
    assert orphan.info.status == "KILLED"
    reason = orphan.data.tags[schema.END_REASON]
    path = orphan.data.tags[schema.EXPERIMENT_PATH]
    assert reason == (
        f"cancelled: Ray job {killed} was stopped before its search ended this run; "
        f"continue with: orchestrator resume {path}"
    )
    assert f"search run {orphan.info.run_id}: ended KILLED here" in settle.stdout
