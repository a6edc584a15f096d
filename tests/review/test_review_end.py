"""The review process of a run from before Ray starts to the run's end: started early, taken by the callback, waited
for after the kind's end hook with lines that say what for, and stopped whatever happens."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.review import trial as review_module
from orchestrator.review import trial_callback
from orchestrator.review.trial import ModelOutcome, ReviewOutcome, TrialReviews, WorkerReady, spare_cpus
from orchestrator.spaces import load_version
from orchestrator.tracking.async_logger import AsyncTrialLogger

SPACE = Path(__file__).resolve().parents[2] / "search_spaces" / "convnet_digits" / "v1.yaml"


class FakeWorker:
    """Stands in for the review process: records how it was started, held and stopped; hands out outcomes queued by
    the test (``later``: one per ``outcomes`` call, as if rendered in the meantime)."""

    started: list[FakeWorker] = []

    def __init__(self, trainable: str, tracking_uri: str, held: bool = True) -> None:
        self.trainable, self.tracking_uri = trainable, tracking_uri
        self.held = held
        self.at_end = False
        self.stopped = False
        self.submitted: list[Any] = []
        self.later: list[Any] = []
        FakeWorker.started.append(self)

    def pause(self, paused: bool) -> None:
        self.held = paused

    def trials_over(self) -> None:
        self.at_end, self.held = True, False

    def submit(self, job: Any) -> None:
        self.submitted.append(job)

    def outcomes(self, timeout: float = 0.0) -> Iterator[Any]:
        if self.later:
            time.sleep(min(timeout, 0.05))
            yield self.later.pop(0)

    @property
    def exit_code(self) -> int | None:
        return 0 if self.stopped else None

    def stop(self, timeout: float = 0.0) -> None:
        self.stopped = True


class FakeLogger:
    """The tracking logger as the reviews use it: runs exist at once; tags recorded."""

    def __init__(self) -> None:
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.stopped = False

    def when_run_exists(self, key: str, callback: Any) -> None:
        callback(f"run-{key}")

    def log(self, key: str, tags: dict[str, str] | None = None, **kwargs: Any) -> None:
        self.tags.append((key, dict(tags or {})))


@pytest.fixture
def fake_worker(monkeypatch: pytest.MonkeyPatch) -> type[FakeWorker]:
    FakeWorker.started = []
    monkeypatch.setattr(review_module, "ReviewWorker", FakeWorker)
    monkeypatch.setattr(trial_callback, "ReviewWorker", FakeWorker)
    return FakeWorker


def reviews_on(worker: FakeWorker | None = None) -> TrialReviews:
    return TrialReviews("convnet", "sqlite:///unused.db", FakeLogger(), worker=worker)  # type: ignore[arg-type]


def test_the_review_process_starts_before_ray_going_on_and_whatever_is_left_stops_with_the_run(
    fake_worker: type[FakeWorker],
) -> None:
    version = load_version(SPACE)
    with trial_callback.early_reviews(version, "sqlite:///unused.db", review_artifacts=True):
        (worker,) = fake_worker.started
        assert not worker.held, "it warms up while Ray and the first trials start"
        session = trial_callback._session_for("convnet", "sqlite:///unused.db")
        assert session is not None and session.worker is worker
        assert trial_callback._session_for("convnet", "sqlite:///unused.db") is None, "one callback takes it"
    assert worker.stopped, "no callback waited for it: stopped with the run"
    with trial_callback.early_reviews(version, "sqlite:///unused.db", review_artifacts=False):
        assert len(fake_worker.started) == 1, "no review artifacts: no process"


def test_the_end_hook_waits_for_the_reviews_after_the_kinds_own_end(
    fake_worker: type[FakeWorker], capsys: pytest.CaptureFixture[str]
) -> None:
    version = load_version(SPACE)
    order: list[str] = []
    with trial_callback.early_reviews(version, "sqlite:///unused.db", review_artifacts=True):
        session = trial_callback._session_for("convnet", "sqlite:///unused.db")
        assert session is not None and session.worker is not None
        reviews = reviews_on(session.worker)  # type: ignore[arg-type]
        session.reviews, session.parent_run_id, session.ended = reviews, "parent", True
        reviews.add("a", {}, object())
        reviews.add("b", {}, object())
        worker = session.worker
        worker.later = [WorkerReady(1.0, 1.0), ReviewOutcome("a"), ReviewOutcome("b")]  # type: ignore[attr-defined]
        assert trial_callback.trial_reviews_of("parent") is reviews

        class Ended:
            class plan:  # what the hook reads of an Ended
                parent_run_id = "parent"

        def kinds_end(ended: Any) -> None:
            order.append(f"kind's end with {reviews.pending} pending")

        trial_callback.with_trial_reviews(kinds_end)(Ended())  # type: ignore[arg-type]
        order.append(f"waited: {reviews.done} done")
    assert order == ["kind's end with 2 pending", "waited: 2 done"]
    assert worker.stopped and worker.at_end, "let go at the end's priority, then stopped"  # type: ignore[attr-defined]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("review artifacts: 0 of 2 trials: waiting for the other 2 (rendered by a low-priority")
    assert lines[-1].startswith("review artifacts: 2 of 2 trials (") and "at the end)" in lines[-1]


def test_after_release_the_worker_goes_on_whatever_the_machine_does(fake_worker: type[FakeWorker]) -> None:
    worker = FakeWorker("convnet", "sqlite:///unused.db", held=False)
    reviews = reviews_on(worker)
    reviews.machine_busy(True)
    assert worker.held, "trials fill the machine: held at once"
    reviews.release()
    assert not worker.held and worker.at_end
    reviews.machine_busy(True)
    assert not worker.held, "the run's trials are over: nothing to protect"
    reviews.stop()


def test_the_best_model_is_asked_of_the_review_process_and_its_outcome_waited_for(
    fake_worker: type[FakeWorker], capsys: pytest.CaptureFixture[str]
) -> None:
    worker = FakeWorker("convnet", "sqlite:///unused.db", held=True)
    reviews = reviews_on(worker)
    assert reviews.ask_model("job")  # type: ignore[arg-type]
    assert worker.submitted == ["job"] and worker.at_end and not worker.held
    worker.later = [ReviewOutcome("before it"), ModelOutcome(model="registered")]  # not there at once
    assert reviews.model(timeout=5).model == "registered"
    assert "the best model is being logged by the review process, once it has warmed up" in capsys.readouterr().err
    worker.stopped = True
    assert not reviews.ask_model("again"), "no process: the driver logs it itself"  # type: ignore[arg-type]
    assert reviews.model(timeout=0.1).error == "the review process stopped"


def test_tags_go_through_the_logger_while_it_runs(fake_worker: type[FakeWorker]) -> None:
    worker = FakeWorker("convnet", "sqlite:///unused.db")
    reviews = reviews_on(worker)
    reviews.add("a", {}, object())
    worker.later = [ReviewOutcome("a", error="ValueError: no")]
    reviews.collect()
    logger = reviews._logger
    assert isinstance(logger, FakeLogger) and logger.tags == [("a", {"orchestrator.review_error": "ValueError: no"})]


@pytest.mark.parametrize(
    ("siblings", "cpus"),
    [("0", 1.0), ("0-1", 2.0), ("0,2", 2.0), ("0-3", 4.0), (None, review_module.REVIEW_SPARE_CPUS)],
)
def test_a_physical_core_is_its_hardware_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, siblings: str | None, cpus: float
) -> None:
    path = tmp_path / "thread_siblings_list"
    if siblings is not None:
        path.write_text(siblings + "\n")
    monkeypatch.setattr(review_module, "_SIBLINGS", path)
    spare_cpus.cache_clear()
    try:
        assert spare_cpus() == cpus
    finally:
        spare_cpus.cache_clear()


def test_the_logger_says_when_it_stopped() -> None:
    logger = AsyncTrialLogger(lambda: None)  # type: ignore[arg-type, return-value]
    logger.start()
    assert not logger.stopped
    with contextlib.suppress(Exception):
        logger.stop(timeout=1)
    assert logger.stopped
