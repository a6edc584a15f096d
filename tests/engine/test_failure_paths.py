"""Every failure after a search's parent run exists closes that run (FAILED, or KILLED for Ctrl-C) with a reason.

What can be checked before the parent run is created (a storage that cannot be written) is, so
such a failure leaves no run at all. The store is a real SQLite store in the test's folder.
"""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.api import resume_search, run_search
from orchestrator.engine import runner
from orchestrator.engine.parent_run import end_parent
from orchestrator.engine.runner import SearchOptions
from orchestrator.engine.storage import Experiment
from orchestrator.errors import OrchestratorError, failure_line
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import MlflowStore
from tests.spacefiles import small_search, write_space


def search_runs(uri: str, study: str) -> list[Any]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(study)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], f"tags.`{schema.KIND}` = '{schema.SEARCH_RUN}'")


def the_parent(uri: str, study: str) -> Any:
    (parent,) = search_runs(uri, study)
    return parent


def space_file(tmp_path: Path, study: str, trials: int = 4) -> Path:
    return write_space(tmp_path / "search_spaces", study=study, **small_search(trials))


def options(tmp_path: Path, tracking_uri: str) -> SearchOptions:
    return SearchOptions(tracking_uri=tracking_uri, storage=str(tmp_path / "ray"), live=False)


def test_storage_that_cannot_be_written_fails_before_the_parent_run(tmp_path: Path, store_uri: str) -> None:
    space = space_file(tmp_path, "badstorage")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    opts = options(tmp_path, store_uri)
    opts.storage = str(blocker / "ray")
    with pytest.raises(OrchestratorError, match=rf"storage {blocker / 'ray'} cannot be written: "):
        run_search(space, opts, lambda _: None)
    assert search_runs(store_uri, "badstorage") == [], "nothing was started, so nothing is left RUNNING"


class Unpicklable:
    """A searcher stand-in that cannot be pickled (Ray Tune pickles what it is given)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


def unpicklable_tuner(*args: Any, **kwargs: Any) -> Any:
    pickle.dumps(Unpicklable())  # raises TypeError: cannot pickle '_thread.lock' object
    raise AssertionError("unreachable")


class FailingTuner:
    def fit(self) -> Any:
        raise RuntimeError("the trial executor died")


class InterruptedTuner:
    def fit(self) -> Any:
        raise KeyboardInterrupt


def storage_write_fails(self: Experiment, meta: dict[str, Any]) -> None:
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize(
    ("target", "replacement", "error", "status", "reason"),
    [
        ("build_tuner", unpicklable_tuner, TypeError, "FAILED", "TypeError: cannot pickle '_thread.lock' object"),
        (
            "build_tuner",
            lambda *a, **k: FailingTuner(),
            OrchestratorError,
            "FAILED",
            "the search failed: RuntimeError: the trial executor died",
        ),
        ("build_tuner", lambda *a, **k: InterruptedTuner(), KeyboardInterrupt, "KILLED", "interrupted (Ctrl-C)"),
        ("write_meta", storage_write_fails, OSError, "FAILED", "OSError: [Errno 28] No space left on device"),
    ],
    ids=["unpicklable", "fit-raises", "ctrl-c", "storage-write"],
)
@pytest.mark.slow
def test_failure_after_the_parent_run_closes_it_with_the_reason(
    tmp_path: Path,
    store_uri: str,
    local_ray: None,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    target: str,
    replacement: Any,
    error: type[BaseException],
    status: str,
    reason: str,
) -> None:
    if target == "write_meta":
        monkeypatch.setattr(Experiment, "write_meta", replacement)
    else:
        monkeypatch.setattr(runner, target, replacement)
    study = f"failing-{request.node.callspec.id}"
    space = space_file(tmp_path, study)
    opts = options(tmp_path, store_uri)
    with pytest.raises(error):
        run_search(space, opts, lambda _: None)
    parent = the_parent(store_uri, study)
    assert parent.info.status == status
    assert parent.data.tags[schema.END_REASON] == reason


@pytest.mark.slow
def test_failed_resume_closes_the_reopened_parent_run(
    tmp_path: Path, store_uri: str, local_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resume whose tuner fails closes the parent run it reopened FAILED, with the new reason."""
    space = space_file(tmp_path, "noresume")
    opts = options(tmp_path, store_uri)
    with monkeypatch.context() as patch:
        patch.setattr(runner, "build_tuner", lambda *a, **k: InterruptedTuner())
        with pytest.raises(KeyboardInterrupt):
            run_search(space, opts, lambda _: None)
    (experiment,) = (tmp_path / "ray").iterdir()
    lines: list[str] = []
    monkeypatch.setattr(runner, "build_tuner", lambda *a, **k: FailingTuner())
    with pytest.raises(Exception) as raised:
        resume_search(str(experiment), SearchOptions(live=False), lines.append)
    parent = the_parent(store_uri, "noresume")
    assert parent.info.status == "FAILED", "the resume reopened the run and must close it again"
    assert parent.data.tags[schema.END_REASON] == failure_line(raised.value)
    assert parent.data.tags[schema.END_REASON] != "interrupted (Ctrl-C)"


def test_a_store_that_cannot_be_reached_when_closing_is_one_line(tmp_path: Path) -> None:
    lines: list[str] = []

    class DeadStore:
        def log_batch(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("Connection refused\nand a long traceback")

    end_parent(DeadStore(), "r1", "FAILED", "boom", lines.append)  # type: ignore[arg-type]
    assert lines == ["tracking: could not mark the search's run r1 FAILED (Connection refused)"]


def test_failure_line_names_the_error() -> None:
    assert failure_line(OrchestratorError("storage x cannot be written")) == "storage x cannot be written"
    assert failure_line(ValueError("bad\nmore")) == "ValueError: bad"
    assert failure_line(ValueError()) == "ValueError"


class StoppedGrid:
    """What ``Tuner.fit`` returns when Ray Tune stops on Ctrl-C before any trial ended."""

    num_terminated = num_errors = 0

    def get_best_result(self, **kwargs: Any) -> Any:
        raise RuntimeError("no trial reported the metric")

    def __iter__(self) -> Any:
        return iter(())


class StoppedTuner:
    def fit(self) -> StoppedGrid:
        return StoppedGrid()


class FinishedGrid(StoppedGrid):
    """What ``Tuner.fit`` returns when the search's two trials are done."""

    num_terminated = 2


class FinishedTuner:
    def fit(self) -> FinishedGrid:
        return FinishedGrid()


@pytest.mark.slow
def test_a_search_ray_tune_stopped_early_is_killed_with_the_resume_command(
    tmp_path: Path, store_uri: str, local_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "build_tuner", lambda *a, **k: StoppedTuner())
    space = space_file(tmp_path, "stopped", trials=2)
    lines: list[str] = []
    result = run_search(space, options(tmp_path, store_uri), lines.append)
    assert result.interrupted
    parent = the_parent(store_uri, "stopped")
    assert parent.info.status == "KILLED"
    reason = f"interrupted after 0 of 2 trials; continue with: orchestrator resume {result.experiment_path}"
    assert parent.data.tags[schema.END_REASON] == reason and lines[-1] == reason


def test_a_run_whose_params_cannot_be_logged_is_ended_failed(store_uri: str) -> None:
    store = MlflowStore(store_uri)
    experiment_id = store.experiment_id("paramsfail")
    assert experiment_id is not None
    logged = store.log_batch

    def params_fail(run_id: str, metrics: Any = (), params: Any = None, tags: Any = None) -> None:
        if params:
            raise ConnectionError("the server went away")
        logged(run_id, metrics, params, tags)

    store.log_batch = params_fail  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        store.create_run(experiment_id, "s", {schema.KIND: schema.SEARCH_RUN}, {"trials": 2})
    assert [r.info.status for r in search_runs(store_uri, "paramsfail")] == ["FAILED"]


@pytest.mark.slow
def test_a_resumed_search_that_finishes_drops_the_old_reason(
    tmp_path: Path, store_uri: str, local_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    space = space_file(tmp_path, "resumedok", trials=2)
    with monkeypatch.context() as patch:
        patch.setattr(runner, "build_tuner", lambda *a, **k: InterruptedTuner())
        with pytest.raises(KeyboardInterrupt):
            run_search(space, options(tmp_path, store_uri), lambda _: None)
    assert the_parent(store_uri, "resumedok").data.tags[schema.END_REASON] == "interrupted (Ctrl-C)"
    (experiment,) = (tmp_path / "ray").iterdir()
    monkeypatch.setattr(runner, "build_tuner", lambda *a, **k: FinishedTuner())
    result = resume_search(str(experiment), SearchOptions(live=False), lambda _: None)
    assert result.finished == 2 and not result.interrupted
    parent = the_parent(store_uri, "resumedok")
    assert parent.info.status == "FINISHED" and schema.END_REASON not in parent.data.tags
