"""Two searches of one study started at once (one version, or two versions of it): no shared folder, no crash on
a fresh SQLite store or a real ``mlflow server``, each trial recorded exactly once; a search started after them
carries their trials."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.api import run_search
from orchestrator.engine.runner import SearchOptions, SearchResult
from orchestrator.engine.storage import META, open_storage
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import SQLITE_LOCK_SUFFIX, sqlite_path, sqlite_store_lock
from orchestrator.tracking.server import LoopbackMlflowServer
from tests.runs import command, trial_runs
from tests.spacefiles import ROOT, small_search, write_space

TRIALS = 2
PARAMS = "  x: {uniform: [-1.0, 1.0]}\n  y: {int: [-2, 2]}\n"


def test_experiment_folders_of_one_second_are_distinct_and_created_once(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "ray"))
    first, second = storage.new_experiment("s-v1-20260101-000000"), storage.new_experiment("s-v1-20260101-000000")
    assert first.name != second.name and first.name.startswith("s-v1-20260101-000000-")
    assert Path(first.path).is_dir() and Path(second.path).is_dir()
    assert first.create() is False, "a folder that exists is never handed to a second search"


def test_sqlite_store_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    db = sqlite_path(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    assert db == tmp_path / "store" / "mlflow.db"
    assert sqlite_path("sqlite:///:memory:") is None and sqlite_path("http://127.0.0.1:5000") is None
    probe = "import fcntl, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)"
    lock_file = f"{db}{SQLITE_LOCK_SUFFIX}"
    with sqlite_store_lock(db):
        held = subprocess.run([sys.executable, "-c", probe, lock_file], capture_output=True, text=True)
        assert held.returncode != 0 and "BlockingIOError" in held.stderr, "another process must wait"
    free = subprocess.run([sys.executable, "-c", probe, lock_file], capture_output=True, text=True)
    assert free.returncode == 0, free.stderr
    with open(lock_file) as f:  # released: this process can take it too
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


# Opens the store argv[1] once argv[3] processes are at the barrier (the folder argv[2], a file each): processes
# started together open it together, each as soon as the last of them has imported mlflow.
OPEN_TOGETHER = """
import os, sys, time
from pathlib import Path
import mlflow.tracking  # imported before the barrier: the stores are opened at the same instant
from orchestrator.tracking.mlflow_store import MlflowStore
barrier, parties = Path(sys.argv[2]), int(sys.argv[3])
(barrier / str(os.getpid())).touch()
deadline = time.monotonic() + 120
while len(list(barrier.iterdir())) < parties and time.monotonic() < deadline:
    time.sleep(0.001)
MlflowStore(sys.argv[1]).check_reachable()
"""


def test_processes_opening_a_fresh_sqlite_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Without the lock, one of two crashes on MLflow's schema migration (a table already exists)."""
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_TOGETHER, uri, str(barrier), "2"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    for opener in openers:
        output = opener.communicate(timeout=120)[0]
        assert opener.returncode == 0, output[-2000:]


def start_drivers(spaces: list[Path], uri: str, storage: Path) -> list[tuple[subprocess.Popen[str], str]]:
    """One ``orchestrator run`` process per space file, all started at once; each with its output once it ended."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    commands = [
        command("run", str(space), "--tracking-uri", uri, "--storage", str(storage), "--concurrency", "1", "--no-live")
        for space in spaces
    ]
    drivers = [
        subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for argv in commands
    ]
    return [(driver, driver.communicate(timeout=400)[0]) for driver in drivers]


def assert_each_finished(drivers: list[tuple[subprocess.Popen[str], str]]) -> None:
    for driver, output in drivers:
        assert driver.returncode == 0, output[-3000:]
        assert f"{TRIALS} finished, 0 failed" in output, output[-3000:]


def assert_two_searches_recorded(storage: Path, client: MlflowClient, study: str) -> list[Any]:
    """Two experiment folders, each with its own parent run; each trial exactly once, in its search, FINISHED.
    Returns the trial runs."""
    folders = sorted(p for p in storage.iterdir() if p.is_dir())
    assert len(folders) == 2, "each search has its own experiment folder"
    parents = {json.loads((folder / META).read_text())["parent_run_id"] for folder in folders}
    assert len(parents) == 2, "neither search overwrote the other's orchestrator.json"
    runs = trial_runs(client, study)
    by_parent = Counter(r.data.tags[schema.PARENT] for r in runs)
    assert set(by_parent) == parents and set(by_parent.values()) == {TRIALS}, by_parent
    trial_ids = [r.data.tags[schema.TRIAL_ID] for r in runs]
    assert len(set(trial_ids)) == len(trial_ids), "each trial exactly once"
    assert {r.info.status for r in runs} == {"FINISHED"}
    return runs


def assert_a_later_search_carries_both(space: Path, uri: str, storage: Path, study: str) -> SearchResult:
    """A search started after both finished: it carries their trials, and its parent run says so."""
    later = run_search(space, SearchOptions(tracking_uri=uri, storage=str(storage), live=False), lambda _: None)
    assert later.carry["carried"] == 2 * TRIALS and later.carry["dropped"] == 0, later.carry
    client = MlflowClient(uri)
    parent = client.get_run(later.parent_run_id)
    assert parent.data.metrics[schema.CARRIED_TRIALS] == 2 * TRIALS
    assert json.loads(parent.data.tags[schema.CARRY])["carried"] == 2 * TRIALS
    assert len(trial_runs(client, study)) == 3 * TRIALS
    return later


@pytest.mark.slow
def test_two_searches_at_once_on_a_fresh_sqlite_store_then_one_after(tmp_path: Path, local_ray: None) -> None:
    space = write_space(
        tmp_path / "search_spaces", study="team", params=PARAMS, **small_search(TRIALS, 2, startup=TRIALS)
    )
    (tmp_path / "store").mkdir()  # a store's folder is the user's to make (orchestrator makes only its own)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"  # does not exist yet: both drivers create it
    storage = tmp_path / "ray"
    assert_each_finished(start_drivers([space, space], uri, storage))
    assert_two_searches_recorded(storage, MlflowClient(uri), "team")
    assert_a_later_search_carries_both(space, uri, storage, "team")


# v2 refines v1 by adding a parameter with a default: every v1 trial carries into v2 (defaulted).
ADDED = "  z: {uniform: [-1.0, 1.0], default: 0.0}\n"


@pytest.mark.slow
@pytest.mark.parametrize("versions", [(1, 1), (1, 2)], ids=["same-version", "v1-and-v2"])
def test_two_drivers_at_once_on_one_mlflow_server_then_one_after(
    tmp_path: Path, mlflow_server: LoopbackMlflowServer, local_ray: None, versions: tuple[int, int]
) -> None:
    """Two ``orchestrator run`` processes against one real server, each starting its own local Ray."""
    study = f"team-server-v{versions[0]}-v{versions[1]}"
    spaces = {
        1: write_space(
            tmp_path / "search_spaces", study=study, params=PARAMS, **small_search(TRIALS, 2, startup=TRIALS)
        )
    }
    if 2 in versions:
        spaces[2] = write_space(
            tmp_path / "search_spaces",
            study=study,
            version=2,
            params=PARAMS + ADDED,
            **small_search(TRIALS, 2, startup=TRIALS),
        )
    storage = tmp_path / "ray"
    assert_each_finished(start_drivers([spaces[v] for v in versions], mlflow_server.uri, storage))

    runs = assert_two_searches_recorded(storage, MlflowClient(mlflow_server.uri), study)
    logged = Counter(r.data.tags[schema.VERSION] for r in runs)
    assert logged == Counter(str(v) for v in versions for _ in range(TRIALS)), logged
    later = assert_a_later_search_carries_both(spaces[max(versions)], mlflow_server.uri, storage, study)
    if 2 in versions:
        assert later.carry["defaulted"] == {"z": TRIALS}, "the v1 trials carry into v2 with z's default"
