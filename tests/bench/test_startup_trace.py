"""bench.startup_trace: the timeline of one process, read from the events the probe records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import startup_trace

EVENTS = [
    ["imported orchestrator.engine.runner", 101.0, 101.0],
    ["ray.init", 101.5, 104.0],
    ["store.open", 101.5, 102.0],
    ["warm_start", 102.0, 102.5],
    ["tuner.fit", 104.2, 120.0],
    ["trial.start", 106.0, 106.001],
    ["trial.start", 106.5, 106.501],
    ["trial.result", 107.0, 107.002],
    ["searcher.suggest", 104.3, 104.31],
    ["searcher.suggest", 104.4, 104.42],
    ["trial.complete", 107.0, 107.003],
    ["trial.complete", 119.0, 119.003],
    ["peers.read", 110.0, 110.01],
    ["peers.wait", 104.3, 104.3],
    ["ray.shutdown", 120.1, 121.0],
    ["exit", 121.2, 121.2],
]


def test_the_timeline_counts_from_the_process_start() -> None:
    marks = startup_trace.timeline(EVENTS, started=100.0, ended=121.5)
    assert marks["imports_done_s"] == 1.0 and marks["ray_init_start_s"] == 1.5 and marks["ray_init_s"] == 2.5
    assert marks["first_trial_start_s"] == 6.0 and marks["first_result_s"] == 7.0
    assert marks["last_complete_s"] == 19.0 and marks["fit_end_s"] == 20.0 and marks["process_end_s"] == 21.5
    assert marks["trials_started"] == 2 and marks["results"] == 1 and marks["reviews_wait_s"] is None


def test_the_drivers_work_per_trial() -> None:
    work = startup_trace.driver_work(EVENTS)
    assert work["trials"] == 2
    assert work["searcher_ms_per_trial"] == pytest.approx(1000 * (0.01 + 0.02) / 2)
    assert work["peers_read_calls"] == 1 and work["peers_wait_calls"] == 1 and work["peers_wait_max_ms"] == 0


def test_the_probe_runs_a_command_and_writes_its_events_at_exit(tmp_path: Path) -> None:
    events = tmp_path / "events.json"
    script = Path(startup_trace.__file__)
    done = subprocess.run(
        [sys.executable, str(script), str(events), "--", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "orchestrator" in done.stdout
    names = [name for name, _, _ in json.loads(events.read_text())]
    assert names[0] == "cli.main" and names[-1] == "exit"
