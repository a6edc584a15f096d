"""A worker node lost mid-search on a real `ray start` cluster: the search still finishes every planned trial.

Head (no CPUs, so trials land on workers) and two GPU worker nodes, each a `ray start` process tree of
its own (`tests/engine/ray_cluster.py`); the driver is `orchestrator run --address`, as a RayJob's
entrypoint; the tracking store is a real `mlflow server`, started alongside the cluster. Once a trial
has logged two epochs on a worker node, every process of that node is SIGKILLed at once (a lost
machine). Ray Tune retries the trials it ran there (`search.max_failures`) from their last checkpoint
on the node that is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from orchestrator.tracking import schema
from orchestrator.tracking.server import LoopbackMlflowServer
from tests.engine.ray_cluster import FAST_NODE_DEATH_ENV, RayCluster, RayNode, started_cluster
from tests.plugin import SqliteTemplate
from tests.spacefiles import MINIMAL, ROOT, small_search, write_space

STUDY = "nodeloss"
TRIALS = 6
EPOCHS = 5
EPOCH_S = 1.0
EPOCHS_BEFORE_KILL = 2  # the victim node is killed once one of its trials has logged this many epochs
WORKERS = [(2, 1), (2, 1)]  # (cpus, fake gpus) per worker node: two trials of cpu 1, gpu 0.5 on each
PARAMS = "  x: {uniform: [-1.0, 1.0]}\n"
SEARCH_TIMEOUT_S = 240.0


@pytest.fixture
def tracking_server(tmp_path: Path, sqlite_template: SqliteTemplate) -> Iterator[LoopbackMlflowServer]:
    """A real `mlflow server` of this test's own, launched without waiting: it starts while the cluster does."""
    server = sqlite_template.server(tmp_path / "mlflow").launch()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cluster(tmp_path: Path, tracking_server: LoopbackMlflowServer) -> Iterator[RayCluster]:
    yield from started_cluster(tmp_path / "nodes", WORKERS, head_cpus=0, env=FAST_NODE_DEATH_ENV)


def trial_runs(client: MlflowClient) -> list[Run]:
    experiment = client.get_experiment_by_name(STUDY)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], f"tags.`{schema.KIND}` = '{schema.TRIAL_RUN}'")


def loss_history(client: MlflowClient, run: Run) -> list[tuple[int, int]]:
    """``(step, timestamp in ms)`` of every ``loss`` the run logged, in logging order."""
    history = client.get_metric_history(run.info.run_id, "loss")
    return [(m.step, m.timestamp) for m in sorted(history, key=lambda m: (m.timestamp, m.step))]


def wait_for_victim(
    client: MlflowClient, cluster: RayCluster, driver: subprocess.Popen[bytes], log: Path
) -> tuple[RayNode, dict[str, list[int]]]:
    """The first worker node with a trial that logged ``EPOCHS_BEFORE_KILL`` epochs, and the epochs each
    of its trials had logged by then (trial id -> steps)."""
    workers = {node.node_id: node for node in cluster.workers}
    deadline = time.monotonic() + SEARCH_TIMEOUT_S
    while time.monotonic() < deadline:
        assert driver.poll() is None, f"the search ended before a node was killed:\n{log.read_text()[-3000:]}"
        steps: dict[str, dict[str, list[int]]] = {}
        for run in trial_runs(client):
            node_id = run.data.tags.get(schema.NODE_ID)
            if node_id in workers and run.info.status == "RUNNING":
                logged = [step for step, _ in loss_history(client, run)]
                if len(logged) < EPOCHS:  # one that has just logged its last epoch is not interrupted
                    steps.setdefault(node_id, {})[run.data.tags[schema.TRIAL_ID]] = logged
        for node_id, trials in steps.items():
            if any(len(logged) >= EPOCHS_BEFORE_KILL for logged in trials.values()):
                return workers[node_id], trials
        time.sleep(0.3)
    raise AssertionError(f"no trial logged {EPOCHS_BEFORE_KILL} epochs on a worker node:\n{log.read_text()[-3000:]}")


class RecordingLogger:
    """Stands in for ``AsyncTrialLogger``: keeps what the callback logs."""

    def __init__(self) -> None:
        self.logged: list[tuple[str, int, dict[str, str]]] = []

    def log(self, key: str, metrics: dict[str, float] | None = None, step: int = 0, tags: dict | None = None) -> None:
        self.logged.append((key, step, dict(tags or {})))


def test_placement_tags_follow_a_trial_that_a_retry_moved_to_another_node(tmp_path: Path) -> None:
    """The callback's part of the guarantee, without a cluster: node and GPU tags are sent with the first
    result and again whenever a result comes from another node (a retry after a lost node)."""
    from types import SimpleNamespace

    from orchestrator.engine.tracking_callback import MlflowTrialCallback
    from orchestrator.spaces import parse_version
    from orchestrator.tracking.async_logger import SpillFile

    callback = MlflowTrialCallback(
        parse_version(MINIMAL), "http://unused:5000", "1", "parent", SpillFile.local(tmp_path / "spill.jsonl")
    )
    callback.logger = recorder = RecordingLogger()  # type: ignore[assignment]
    trial = SimpleNamespace(trial_id="t1")
    for epoch, node, gpus in [(1, "node-a", "0"), (2, "node-a", "0"), (3, "node-b", "1"), (4, "node-b", "1")]:
        callback.on_trial_result(0, [], trial, {"loss": 1.0 / epoch, "epoch": epoch, "node_id": node, "gpu_ids": gpus})
    tagged = [(step, tags) for _, step, tags in recorder.logged if tags]
    assert tagged == [
        (1, {schema.NODE_ID: "node-a", schema.GPU_IDS: "0"}),
        (3, {schema.NODE_ID: "node-b", schema.GPU_IDS: "1"}),
    ]


@pytest.mark.slow
def test_a_lost_worker_node_costs_no_trial_and_interrupted_trials_resume_elsewhere(
    cluster: RayCluster, tmp_path: Path, tracking_server: LoopbackMlflowServer
) -> None:
    tracking_server.wait()
    space = write_space(
        tmp_path / "search_spaces",
        study=STUDY,
        params=PARAMS,
        **small_search(TRIALS, EPOCHS, sleep=EPOCH_S, cpu=1, gpu=0.5, startup=TRIALS),
    )
    text = space.read_text()
    assert f"startup_trials: {TRIALS}}}" in text
    space.write_text(text.replace(f"startup_trials: {TRIALS}}}", f"startup_trials: {TRIALS}, max_failures: 2}}"))
    log = tmp_path / "driver.log"
    with log.open("wb") as out:
        driver = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "run",
                str(space),
                "--address",
                cluster.address,
                "--tracking-uri",
                tracking_server.uri,
                "--storage",
                str(tmp_path / "ray"),
                "--no-live",
            ],
            cwd=ROOT,
            env={**cluster.env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    client = MlflowClient(tracking_server.uri)
    try:
        victim, before_kill = wait_for_victim(client, cluster, driver, log)
        killed_at_ms = int(time.time() * 1000)
        assert victim.kill(), "the victim node had processes to kill"
        assert victim.pids() == [], "nothing of the killed node runs"
        driver.wait(timeout=SEARCH_TIMEOUT_S)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    output = log.read_text()
    assert driver.returncode == 0, output[-3000:]
    assert f"{TRIALS} finished, 0 failed" in output, output[-3000:]

    (search,) = client.search_runs(
        [client.get_experiment_by_name(STUDY).experiment_id], f"tags.`{schema.KIND}` = '{schema.SEARCH_RUN}'"
    )
    assert search.info.status == "FINISHED" and search.data.metrics[schema.FINISHED_TRIALS] == TRIALS
    runs = trial_runs(client)
    trial_ids = Counter(r.data.tags[schema.TRIAL_ID] for r in runs)
    assert len(runs) == TRIALS and set(trial_ids.values()) == {1}, f"one run per trial: {trial_ids}"
    assert {(r.info.status, r.data.tags.get(schema.STATUS)) for r in runs} == {("FINISHED", "FINISHED")}
    survivors = {node.node_id for node in cluster.workers if node is not victim}
    by_trial = {r.data.tags[schema.TRIAL_ID]: r for r in runs}
    for trial_id, steps_before in before_kill.items():
        run = by_trial[trial_id]
        assert schema.RETRIED_AFTER in run.data.tags, f"trial {trial_id} was interrupted and retried"
        history = loss_history(client, run)
        steps = [step for step, _ in history]
        assert steps == list(range(1, EPOCHS + 1)), f"trial {trial_id}: every epoch exactly once, in order: {steps}"
        after_kill = [step for step, at in history if at > killed_at_ms]
        # Resumed from its last checkpoint: the first epoch after the kill follows the ones logged before it.
        assert after_kill and after_kill[0] > max(steps_before, default=0) >= 1, (trial_id, steps_before, steps)
        assert run.data.tags[schema.NODE_ID] in survivors, f"trial {trial_id} finished on the node that is left"
    assert any(len(steps) >= EPOCHS_BEFORE_KILL for steps in before_kill.values())
