"""Commands that tell the truth: the exit status, one line per error, no state the user did not ask for.

Each command is walked with a missing store, an output it cannot write and a bad argument: the exit status is
not 0, stderr is one line starting ``error: `` and nothing is created in the working folder (compared before and
after). The tests drive ``orchestrator.cli.main`` in this process (the working folder is a temporary one, so a
default store created by mistake would show) and, for the runs, a real local Ray and MLflow store.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from tests.runs import log_scored_trials
from tests.spacefiles import space_doc, write_space

SPACE = space_doc(
    "honest",
    schedule="{scheduler: fifo, max_epochs: 1}",
    resources="{cpu: 1, gpu: 0}",
    search="{trials: 3, startup_trials: 2, concurrency: 2}",
    fixed="{function: branin}",
    params="  x: {uniform: [-5.0, 10.0]}\n  y: {uniform: [0.0, 15.0]}\n",
)


def tree(root: Path) -> set[str]:
    """Every file and folder under ``root`` (relative paths)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder of its own with one space file; the default store would be created in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_HOME", raising=False)
    write_space(tmp_path, SPACE, study="honest")
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path


def cli(*args: str) -> tuple[int, str, str]:
    """Run the command in this process: exit status, stdout, stderr."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as ended:
        main(list(args))
    code = ended.value.code
    return (code if isinstance(code, int) else 1), out.getvalue(), err.getvalue()


MISSING = "sqlite:///missing/nothing-here.db"  # relative to the working folder: neither the file nor its folder


# (command line, what the line must name): each refuses with exit status 1 or 2, one line, nothing created
REFUSED = {
    # a missing store: read-only commands never create one
    "report/missing-store": (["report", "honest", "--tracking-uri", MISSING], "nothing-here.db"),
    "trials-export/missing-store": (
        ["trials", "export", "honest", "--out", "t.parquet", "--tracking-uri", MISSING],
        "nothing-here.db",
    ),
    "ui/missing-store": (["ui", "honest", "--tracking-uri", MISSING], "nothing-here.db"),
    "refine/missing-store": (["space", "refine", "honest/v1.yaml", "--dry-run", "--tracking-uri", MISSING], "nothing"),
    "diff/missing-store": (["space", "diff", "honest/v1.yaml", "honest/v1.yaml", "--tracking-uri", MISSING], "nothing"),
    "lint/missing-store": (["space", "lint", "honest", "--tracking-uri", MISSING], "nothing-here.db"),
    "train/missing-store": (["train", "honest", "--tracking-uri", MISSING], "nothing-here.db"),
    "resume/missing-experiment": (["resume", "missing/experiment"], "missing/experiment"),
    # a store or output in a folder the user did not make, or under a file
    "run/store-folder-missing": (["run", "honest/v1.yaml", "--tracking-uri", MISSING], "missing"),
    "run/store-under-a-file": (["run", "honest/v1.yaml", "--tracking-uri", "sqlite:///a-file/m.db"], "a-file"),
    "run/storage-under-a-file": (["run", "honest/v1.yaml", "--storage", "a-file/ray"], "a-file"),
    "trials-export/out-folder-missing": (["trials", "export", "honest", "--out", "no/such/t.parquet"], "no/such"),
    "trials-export/out-under-a-file": (["trials", "export", "honest", "--out", "a-file/t.parquet"], "a-file"),
    "predict/out-is-a-file": (["predict", "models:/none/1", "--images", "honest", "--out", "a-file"], "a-file"),
    # bad arguments
    "run/no-such-space": (["run", "honest/v9.yaml"], "v9.yaml"),
    "run/bad-trials": (["run", "honest/v1.yaml", "--trials", "0"], "--trials"),
    "show/no-such-file": (["space", "show", "nope.yaml"], "nope.yaml"),
    "ui/bad-port": (["ui", "--port", "0"], "--port"),
    "train/both-choices": (["train", "honest", "--best", "--trial", "t1"], "--best"),
    "submit/bad-image": (
        ["submit", "honest/v1.yaml", "-n", "team", "--new-cluster", "--image", "my image:1 --privileged", "--dry-run"],
        "my image:1",
    ),
    "space/no-such-command": (["space", "frobnicate"], "frobnicate"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_every_command_refuses_bad_input_in_one_line_and_creates_nothing(workdir: Path, case: str) -> None:
    args, named = REFUSED[case]
    before = tree(workdir)
    code, out, err = cli(*args)
    assert code in (1, 2), (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert named in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert tree(workdir) == before, f"{case} created {sorted(tree(workdir) - before)}"


def test_validate_lists_a_missing_path_as_its_one_problem(workdir: Path) -> None:
    before = tree(workdir)
    code, _, err = cli("space", "validate", "nope")
    assert code == 1 and err.splitlines() == ["nope: no such file or folder", "1 problem(s) in 1 of 1 file(s)"]
    assert tree(workdir) == before


def test_a_searched_parameter_with_a_secret_looking_name_fails_validation(workdir: Path) -> None:
    secret = SPACE.replace("  y: {uniform", "  api_token: {choice: [a, b]}\n  y: {uniform")
    (workdir / "honest" / "v1.yaml").write_text(secret)
    code, _, err = cli("space", "validate", "honest")
    assert code == 1 and "params.api_token: api_token looks like a secret" in err
    code, _, err = cli("space", "lint", "honest")
    assert code == 1 and "api_token looks like a secret" in err


def test_an_integer_range_beyond_64_bits_fails_validation(workdir: Path) -> None:
    huge = SPACE.replace("x: {uniform: [-5.0, 10.0]}", "x: {int: [0, 100000000000000000000000000000000]}")
    (workdir / "honest" / "v1.yaml").write_text(huge)
    code, _, err = cli("space", "validate", "honest")
    assert code == 1 and "params.x.int[1]: 100000000000000000000000000000000 does not fit in a 64-bit integer" in err


def test_every_ui_link_opens_the_training_view() -> None:
    from orchestrator.tracking.links import experiment_url, run_url

    assert experiment_url("http://h:5000/", "3") == "http://h:5000/#/experiments/3?workflowType=machine_learning"
    assert run_url("http://h", "3", "r") == "http://h/#/experiments/3/runs/r?workflowType=machine_learning"


def test_ray_tunes_own_tracebacks_and_restore_hint_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from orchestrator.engine.progress import quiet_ray_tune

    quiet_ray_tune()
    quiet_ray_tune()  # idempotent
    with caplog.at_level(logging.WARNING):
        logging.getLogger("ray.tune.execution.tune_controller").error("Trial task failed for trial t1")
        logging.getLogger("ray.tune.tune").warning("Experiment has been interrupted ... Tuner.restore(path=...)")
        logging.getLogger("ray.tune.tune").error("Trials did not complete: [t1]")
        logging.getLogger("ray.tune.tune").error("something else went wrong")
    assert [r.getMessage() for r in caplog.records] == ["something else went wrong"]


def test_a_failed_trials_line_names_it_as_mlflow_does_with_its_reason_and_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from types import SimpleNamespace

    from orchestrator.engine.progress import ProgressCallback
    from orchestrator.engine.results import RESUME_KEY
    from orchestrator.spaces import Metric

    progress = ProgressCallback(Metric("loss", "min"), 3, ["x"], live=False, experiment_uri="s3://b/exp")
    trial = SimpleNamespace(
        trial_id="new1",
        config={"x": 1.0, RESUME_KEY: {"trial_id": "old1", "checkpoint": ""}},
        get_error=lambda: "Traceback (most recent call last):\n  File x\nTrialFailed: loss became NaN at epoch 2",
        error_file="/tmp/ray/session/artifacts/exp/driver_artifacts/analytic_new1/error.txt",
        path="b/exp/analytic_new1",
    )
    progress.on_trial_start(0, [], trial)
    progress.on_trial_error(0, [], trial)
    line = capsys.readouterr().out.strip()
    assert line.startswith("trial old1 FAILED: TrialFailed: loss became NaN at epoch 2 ")
    assert "(traceback: s3://b/exp/analytic_new1/error.txt)" in line


# --------------------------------------------------------------------------- runs on a real Ray and store


@pytest.fixture
def fresh_store(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'store.db'}"


@pytest.mark.slow
def test_a_search_whose_every_trial_fails_exits_1_and_its_run_ends_failed_with_the_reason(
    workdir: Path, fresh_store: str
) -> None:
    from mlflow.tracking import MlflowClient

    failing = SPACE.replace("fixed: {function: branin}", "fixed: {function: branin, fail_at_epoch: 1}")
    (workdir / "honest" / "v1.yaml").write_text(failing)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            "honest/v1.yaml",
            "--tracking-uri",
            fresh_store,
            "--storage",
            str(workdir / "ray"),
            "--no-live",
            "--no-review-artifacts",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output and "Creating initial MLflow database tables" not in output
    failed = [line for line in output.splitlines() if " FAILED: " in line]
    assert len(failed) == 3 and all("loss became NaN at epoch 1" in line and "error.txt" in line for line in failed)
    last = output.strip().splitlines()[-1]
    assert last.startswith("error: no trial finished: 3 of 3 failed (3 x ") and "loss became NaN" in last
    client = MlflowClient(fresh_store)
    experiment = client.get_experiment_by_name("honest")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`orchestrator.kind` = 'search'")
    assert parent.info.status == "FAILED"
    assert parent.data.tags["orchestrator.end_reason"].startswith("no trial finished: 3 of 3 failed")
    assert parent.data.metrics["failed_trials"] == 3 and parent.data.metrics["finished_trials"] == 0


GRID = space_doc(
    "teammates",
    schedule="{scheduler: fifo, max_epochs: 1}",
    resources="{cpu: 1, gpu: 0}",
    search="{trials: 5, startup_trials: 2, concurrency: 1}",
    fixed="{function: quadratic, sleep: 2.0}",
    params="  x: {choice: [-0.6, -0.2, 0.2, 0.6]}\n  y: {choice: [-0.5, 0.0, 0.5]}\n",
)


@pytest.mark.slow
def test_two_searches_of_one_study_started_together_run_no_configuration_twice(tmp_path: Path) -> None:
    """Two teammates start a search of one version in the same second against one real ``mlflow server``: the 10
    trials of the two searches run 10 different configurations of the 12, each trial exactly once. (The seeds are
    given so that their first suggestions, made before either search has a run, differ; the default, a new seed
    per search, is checked below.)"""
    from mlflow.tracking import MlflowClient

    from orchestrator.tracking.server import LoopbackMlflowServer

    write_space(tmp_path, GRID, study="teammates")
    with LoopbackMlflowServer(tmp_path / "server") as server:
        env = {**os.environ, "ORCHESTRATOR_HOME": str(tmp_path / "home")}
        command = [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            "teammates/v1.yaml",
            "--tracking-uri",
            server.uri,
            "--storage",
            str(tmp_path / "ray"),
            "--no-live",
            "--no-review-artifacts",
        ]
        searches = [
            subprocess.Popen(
                [*command, "--seed", str(seed)],
                cwd=tmp_path,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for seed in (1, 2)
        ]
        outputs = [search.communicate(timeout=600)[0] for search in searches]
        assert [search.returncode for search in searches] == [0, 0], outputs
        client = MlflowClient(server.uri)
        experiment = client.get_experiment_by_name("teammates")
        trials = client.search_runs([experiment.experiment_id], "tags.`orchestrator.kind` = 'trial'")
    configs = [json.dumps(json.loads(run.data.tags["orchestrator.config"]), sort_keys=True) for run in trials]
    assert len(trials) == 10 and all(run.info.status == "FINISHED" for run in trials)
    assert len(set(configs)) == 10, f"configurations run twice: {sorted(c for c in configs if configs.count(c) > 1)}"
    assert len({run.data.tags["orchestrator.trial_id"] for run in trials}) == 10


@pytest.mark.slow
def test_each_search_gets_a_seed_of_its_own_recorded_on_its_run(
    workdir: Path, fresh_store: str, local_ray: None
) -> None:
    from mlflow.tracking import MlflowClient

    from orchestrator import api
    from orchestrator.engine.runner import SearchOptions

    options = SearchOptions(
        trials=1, tracking_uri=fresh_store, storage=str(workdir / "ray"), live=False, review_artifacts=False
    )
    first = api.run_search(workdir / "honest" / "v1.yaml", options, echo=lambda _: None)
    second = api.run_search(workdir / "honest" / "v1.yaml", options, echo=lambda _: None)
    client = MlflowClient(fresh_store)
    seeds = [client.get_run(r.parent_run_id).data.params["seed"] for r in (first, second)]
    assert seeds[0] != seeds[1] and all(seed.isdigit() for seed in seeds)


# --------------------------------------------------------------------------- refine and lint


def test_refine_never_writes_a_version_that_already_exists(workdir: Path, fresh_store: str) -> None:
    from orchestrator.tracking.mlflow_store import MlflowStore

    MlflowStore(fresh_store)  # the store exists: a search made it
    log_scored_trials(fresh_store, workdir / "honest" / "v1.yaml")
    code, out, err = cli("space", "refine", "honest/v1.yaml", "--tracking-uri", fresh_store)
    assert code == 0 and (workdir / "honest" / "v2.yaml").exists(), out + err
    before = tree(workdir)
    code, out, err = cli("space", "refine", "honest/v1.yaml", "--tracking-uri", fresh_store)
    assert code == 1 and "is v2 again" in err and "honest/v2.yaml" in err, out + err
    assert tree(workdir) == before
    assert "v2 exist" in out  # refining an older version says which newer versions exist


def test_lint_reports_two_versions_with_one_content_hash(workdir: Path) -> None:
    v2 = yaml.safe_load(SPACE)
    v2.update(version=2, parent=1, notes="the same space with other notes")
    (workdir / "honest" / "v2.yaml").write_text(yaml.safe_dump(v2, sort_keys=False))
    code, _, err = cli("space", "lint", "honest")
    assert code == 1 and "v2 is the same space as v1" in err


def test_refine_of_a_space_the_trainable_rejects_names_the_problem(workdir: Path, fresh_store: str) -> None:
    from orchestrator.tracking.mlflow_store import MlflowStore

    MlflowStore(fresh_store)
    (workdir / "honest" / "v1.yaml").write_text(SPACE.replace("  y: {uniform", "  lr: {uniform"))
    code, _, err = cli("space", "refine", "honest/v1.yaml", "--dry-run", "--tracking-uri", fresh_store)
    assert code == 1 and "params.lr: trainable 'analytic': lr: not a key this trainable accepts" in err


# --------------------------------------------------------------------------- ui and its server


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def free_port() -> Iterator[int]:
    from orchestrator.tracking.server import free_loopback_port

    yield free_loopback_port()


def test_ui_on_a_port_in_use_prints_no_link(workdir: Path, fresh_store: str, free_port: int) -> None:
    from orchestrator.tracking.mlflow_store import MlflowStore

    MlflowStore(fresh_store)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port))
        taken.listen()
        code, out, err = cli("ui", "--tracking-uri", fresh_store, "--port", str(free_port))
    assert code == 1 and out == "" and f"port {free_port} on 127.0.0.1 is in use" in err


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_the_server_ui_starts_dies_with_it(workdir: Path, fresh_store: str, free_port: int, sig: int) -> None:
    from orchestrator.tracking.mlflow_store import MlflowStore

    MlflowStore(fresh_store)
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "ui", "--tracking-uri", fresh_store, "--port", str(free_port)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: listening(free_port), 180, "the UI's server to listen")
        proc.send_signal(sig)
        proc.wait(timeout=60)
        wait_until(lambda: not listening(free_port), 30, "the server to stop with the command")
    finally:
        if proc.poll() is None:
            proc.kill()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


# --------------------------------------------------------------------------- a store created by two processes


def test_a_fresh_sqlite_store_survives_another_process_creating_it_at_the_same_moment(tmp_path: Path) -> None:
    """Another process (MLflow's own client, as `mlflow ui` opens a store) creates the same fresh SQLite store while
    the orchestrator opens it: both open it, and the store is whole, whichever starts its migration first."""
    from orchestrator.tracking.mlflow_store import open_store

    for i, delay in enumerate((0.0, 0.6, 1.2)):
        uri = f"sqlite:///{tmp_path / f'store{i}.db'}"
        other = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from mlflow.tracking import MlflowClient; MlflowClient({uri!r}).search_experiments()",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(delay)
        store = open_store(uri, create=True)
        assert store.experiment_id(f"s{i}") is not None
        out = other.communicate(timeout=300)[0]
        assert other.returncode == 0, out
