"""Per-trial review artifacts: the hooks render real pictures, the worker uploads or tags, searches log them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

import trainables
from orchestrator.api import run_search
from orchestrator.engine.runner import SearchOptions
from orchestrator.errors import failure_line
from orchestrator.review import trial as review_module
from orchestrator.review.trial import ReviewJob, ReviewOutcome, ReviewWorker, TrialReviews, WorkerReady, review_trial
from orchestrator.settings import REVIEW_WAIT_ENV, review_wait_s
from orchestrator.tracking import schema
from orchestrator.tracking.async_logger import AsyncTrialLogger
from tests.spacefiles import convnet_tiny_search, write_space
from trainables.convnet.review import confusion_matrix
from trainables.convnet.review import render as render_convnet
from trainables.loop import Task, evaluate, prepare, save_checkpoint
from trainables.unet.review import render as render_unet
from trainables.unet.review import rgb_composite

TRIAL_FILES = {
    "convnet_tiny": {schema.MODEL_SUMMARY_ARTIFACT, schema.ARCHITECTURE_ARTIFACT, schema.CONFUSION_MATRIX_ARTIFACT},
    "unet_tiny": {schema.MODEL_SUMMARY_ARTIFACT, schema.ARCHITECTURE_ARTIFACT, schema.PREDICTIONS_ARTIFACT},
}


def assert_real_picture(path: Path, min_side: int = 200, max_side: int = 2500) -> None:
    """A PNG that decodes, of a plausible size, with content (not one flat colour)."""
    pixels = imread(path)
    height, width = pixels.shape[:2]
    assert min_side <= height <= max_side and min_side <= width <= max_side, f"{path.name}: {width}x{height}"
    rgb = pixels[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.05, f"{path.name} is blank"
    assert len(np.unique(rgb, axis=0)) > 10, f"{path.name} has almost no colours"


def total_params_line(summary: str) -> int:
    line = next(ln for ln in summary.splitlines() if ln.startswith("Total params:"))
    return int(line.split(":")[1].replace(",", ""))


def render_into(tmp_path: Path, name: str, render: Callable[..., list[Path]], overrides: dict[str, Any]) -> Task:
    task, runtime, cfg = prepare(name, overrides)
    written = render(task, runtime, cfg, tmp_path)
    assert {f"{schema.REVIEW_ARTIFACT_DIR}/{p.name}" for p in written} == TRIAL_FILES[name]
    assert sorted(tmp_path.iterdir()) == sorted(written)
    return task


# --------------------------------------------------------------------------- the families' hooks


@pytest.mark.parametrize("overrides", [{}, {"conv_layers": 2, "fc_layers": 2, "dropout": 0.3}, {"ensemble": 2}])
def test_convnet_review_writes_summary_architecture_and_confusion_matrix(tmp_path: Path, overrides: dict) -> None:
    task = render_into(tmp_path, "convnet_tiny", render_convnet, overrides)
    summary = (tmp_path / "model_summary.txt").read_text()
    assert total_params_line(summary) == sum(p.numel() for p in task.model.parameters())
    assert "multiply-adds per sample" in summary.splitlines()[0] and "Mult-Adds" in summary
    assert_real_picture(tmp_path / "architecture.png")
    assert_real_picture(tmp_path / "confusion_matrix.png")


def test_confusion_matrix_counts_every_validation_sample_and_agrees_with_the_evaluator() -> None:
    task, runtime, _ = prepare("convnet_tiny", {"ensemble": 3, "vote": "majority"})
    matrix = confusion_matrix(task, 10, "majority")
    assert matrix.shape == (10, 10) and matrix.sum() == task.val.samples
    assert np.trace(matrix) / matrix.sum() == pytest.approx(evaluate(task, runtime)["val_accuracy"])


@pytest.mark.parametrize("overrides", [{}, {"depth": 3, "dropout": 0.2, "upsampling": "bilinear"}])
def test_unet_review_writes_summary_architecture_and_predictions(tmp_path: Path, overrides: dict) -> None:
    task = render_into(tmp_path, "unet_tiny", render_unet, overrides)
    summary = (tmp_path / "model_summary.txt").read_text()
    assert total_params_line(summary) == sum(p.numel() for p in task.model.parameters())
    assert_real_picture(tmp_path / "architecture.png")
    assert_real_picture(tmp_path / "predictions.png")


def test_rgb_composite_picks_the_named_bands_and_stretches_them() -> None:
    tiles = np.zeros((2, 5, 4, 4), dtype=np.float32)
    tiles[:, 2] = np.arange(16).reshape(4, 4)  # "r" is the third channel
    rgb = rgb_composite(tiles, ["m0", "g", "r", "b", "ndwi"])
    assert rgb.shape == (2, 4, 4, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert rgb[0, 3, 3, 0] == 1.0 and rgb[0, 0, 0, 0] == 0.0  # red from channel 2, stretched to [0, 1]
    assert np.all(rgb[..., 1] == 0)  # "g" (channel 1) is flat
    unnamed = rgb_composite(tiles, [])
    assert np.all(unnamed[..., 2] == rgb[..., 0])  # without names: the first three channels


# --------------------------------------------------------------------------- the worker's job


@pytest.fixture
def convnet_checkpoint(tmp_path: Path) -> tuple[dict[str, Any], Any]:
    """The config of a convnet_tiny trial and a Ray Tune checkpoint of its untrained model."""
    from ray.tune import Checkpoint

    config = {"seed": 3}
    task, _, _ = prepare("convnet_tiny", config)
    save_checkpoint(tmp_path / "checkpoint", task, epoch=1)
    return config, Checkpoint.from_directory(str(tmp_path / "checkpoint"))


def test_review_job_uploads_under_review(store_uri: str, convnet_checkpoint: tuple[dict, Any]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri)
    run_id = client.create_run(client.create_experiment("jobs")).info.run_id
    config, checkpoint = convnet_checkpoint
    outcome = review_trial(ReviewJob("t1", "convnet_tiny", config, checkpoint, store_uri, run_id))
    assert outcome.trial_id == "t1" and outcome.error == ""
    listed = {a.path for a in client.list_artifacts(run_id, schema.REVIEW_ARTIFACT_DIR)}
    assert listed == TRIAL_FILES["convnet_tiny"]


def test_the_worker_starts_held_warms_up_when_let_go_then_reports_each_jobs_cpu_time(
    store_uri: str, convnet_checkpoint: tuple[dict, Any]
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store_uri)
    run_id = client.create_run(client.create_experiment("worker")).info.run_id
    config, checkpoint = convnet_checkpoint
    worker = ReviewWorker("convnet_tiny", store_uri)
    try:
        assert worker.held, "held from the start, its warm-up too"
        assert list(worker.outcomes(timeout=2.0)) == [], "no warm-up before the driver lets it go on"
        worker.pause(False)
        ready = next(worker.outcomes(timeout=120))
        assert isinstance(ready, WorkerReady) and ready.cpu_s > 0.5 and ready.wall_s >= ready.cpu_s * 0.5
        worker.pause(True)
        worker.submit(ReviewJob("t1", "convnet_tiny", config, checkpoint, store_uri, run_id))
        assert list(worker.outcomes(timeout=1.0)) == [], "held: the job waits"
        worker.pause(False)
        done = next(worker.outcomes(timeout=120))
        assert isinstance(done, ReviewOutcome) and done.error == "" and 0 < done.cpu_s < ready.cpu_s
    finally:
        worker.stop()
    assert worker.exit_code is not None  # ended (at SCHED_IDLE on a loaded machine it may be terminated)
    assert {a.path for a in client.list_artifacts(run_id, schema.REVIEW_ARTIFACT_DIR)} == TRIAL_FILES["convnet_tiny"]


def test_each_warm_up_step_waits_for_the_gate_and_a_failing_step_is_left_to_the_jobs(store_uri: str) -> None:
    steps = review_module.warm_up_steps("convnet_tiny", store_uri)
    assert len(steps) == 4
    waits: list[int] = []
    ready = review_module.warm_up("convnet_tiny", store_uri, wait=lambda: waits.append(len(waits)))
    assert waits == [0, 1, 2, 3] and ready.cpu_s > 0
    assert len(ready.steps) == 4 and all(start <= end and cpu >= 0 for start, end, cpu in ready.steps)
    assert sum(cpu for _, _, cpu in ready.steps) == pytest.approx(ready.cpu_s, abs=0.05)
    unknown = review_module.warm_up("no_such_trainable", store_uri)  # every step fails: no error here
    assert isinstance(unknown, WorkerReady)


def test_review_job_that_fails_returns_one_line(tmp_path: Path, convnet_checkpoint: tuple[dict, Any]) -> None:
    config, checkpoint = convnet_checkpoint
    store = (tmp_path / "mlruns").as_uri()  # a file store: no run with this id
    missing_run = review_trial(ReviewJob("t1", "convnet_tiny", config, checkpoint, store, "0" * 32))
    assert missing_run.trial_id == "t1" and missing_run.error and "\n" not in missing_run.error
    broken = review_trial(ReviewJob("t2", "convnet_tiny", {"conv_layers": 9}, checkpoint, store, "0" * 32))
    assert broken.error.startswith("trainable 'convnet_tiny': ") and "conv_layers" in broken.error


def test_a_failure_line_names_the_error_without_credentials() -> None:
    error = ConnectionError("cannot reach http://someone:hunter2@mlflow.example/api\nsecond line")
    assert failure_line(error) == "ConnectionError: cannot reach http://mlflow.example/api"


def test_review_wait_is_bounded_and_its_variable_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REVIEW_WAIT_ENV, "12.5")
    assert review_wait_s() == 12.5
    monkeypatch.setenv(REVIEW_WAIT_ENV, "soon")
    with pytest.raises(Exception, match=f"{REVIEW_WAIT_ENV}='soon': give the seconds to wait"):
        review_wait_s()


class _FakeWorker:
    """Stands in for the review process: records when it is held or let go, hands out queued outcomes."""

    def __init__(self, trainable: str, tracking_uri: str) -> None:
        self.held = True
        self.changes: list[bool] = []  # the held state after each pause() that changed it
        self.ready: list[ReviewOutcome | WorkerReady] = []
        self.let_go = threading.Event()  # set when a pause(False) lets the worker go on

    def pause(self, paused: bool) -> None:
        if paused != self.held:
            self.changes.append(paused)
        self.held = paused
        if not paused:
            self.let_go.set()

    def outcomes(self, timeout: float = 0.0) -> Iterator[ReviewOutcome | WorkerReady]:
        while self.ready:
            yield self.ready.pop(0)

    exit_code = None

    def stop(self, timeout: float = 0.0) -> None:
        pass


@pytest.fixture
def fake_reviews(monkeypatch: pytest.MonkeyPatch) -> tuple[TrialReviews, _FakeWorker]:
    monkeypatch.setattr(review_module, "ReviewWorker", _FakeWorker)
    reviews = TrialReviews("convnet_tiny", "sqlite:///unused.db", logger=None)  # type: ignore[arg-type]
    worker = reviews._worker
    assert isinstance(worker, _FakeWorker)
    return reviews, worker


def test_the_gate_closes_at_once_and_opens_only_once_the_machine_stayed_free(
    fake_reviews: tuple[TrialReviews, _FakeWorker],
) -> None:
    reviews, worker = fake_reviews
    settle = 0.3
    reviews.machine_busy(False, settle_s=settle)
    time.sleep(settle / 3)  # free for a third of the settle time (the scenario's clock, not a wait for an event)
    reviews.machine_busy(False, settle_s=settle)  # still free: the clock is not restarted
    reviews.machine_busy(True, settle_s=settle)  # a trial started before the settle time passed
    assert not worker.let_go.wait(settle * 1.5), "the cancelled release never comes"
    assert worker.held and worker.changes == [], "never let go: the machine was free for less than the settle time"
    reviews.machine_busy(False, settle_s=settle)
    assert not worker.let_go.wait(settle / 3)
    assert worker.held
    assert worker.let_go.wait(30), "let go once the machine stayed free for the settle time"
    assert not worker.held and worker.changes == [False]
    reviews.machine_busy(True, settle_s=settle)
    assert worker.held and worker.changes == [False, True], "held at once"
    reviews.machine_busy(False, settle_s=0)
    assert not worker.held, "no settle time (the search's end): at once"
    reviews.stop()


def test_collect_records_the_warm_up_and_each_jobs_cpu_time(fake_reviews: tuple[TrialReviews, _FakeWorker]) -> None:
    reviews, worker = fake_reviews
    ready = WorkerReady(cpu_s=6.0, wall_s=9.0, steps=((1.0, 4.0, 6.0),))
    worker.ready = [ready, ReviewOutcome("a", cpu_s=0.2, started=5.0, ended=5.5), ReviewOutcome("b", cpu_s=0.3)]
    reviews.collect()
    assert reviews.warm_up == ready and reviews.job_cpu_s == [0.2, 0.3] and reviews.done == 2
    assert reviews.activity == [(1.0, 4.0, 6.0), (5.0, 5.5, 0.2), (0.0, 0.0, 0.3)]  # set beside trials by the bench


class _RecordingStore:
    """A tracking store that creates runs named r<k>, after ``gate`` is set."""

    def __init__(self, gate: threading.Event):
        self.gate = gate
        self.created = 0

    def create_run(self, *args: Any) -> str:
        self.gate.wait(10)
        self.created += 1
        return f"r{self.created}"

    def log_batch(self, *args: Any, **kwargs: Any) -> None:
        pass

    def end_run(self, *args: Any) -> None:
        pass


def test_logger_calls_back_once_the_run_exists_without_blocking() -> None:
    gate = threading.Event()
    store = _RecordingStore(gate)
    logger = AsyncTrialLogger(lambda: store)  # type: ignore[arg-type, return-value]
    logger.start()
    seen: list[tuple[str, str]] = []
    logger.open("a", "exp", "a", {}, {})
    logger.when_run_exists("a", lambda run: seen.append(("a", run)))
    assert seen == [], "the run does not exist yet: the call returns at once"
    gate.set()
    assert logger.flush(10)
    assert seen == [("a", "r1")]
    logger.when_run_exists("a", lambda run: seen.append(("again", run)))
    assert seen[-1] == ("again", "r1"), "an existing run: called at once"
    logger.stop()


# --------------------------------------------------------------------------- real searches


def search(tmp_path: Path, study: str, uri: str, **options: Any) -> list[Any]:
    """Run a 2-trial convnet_tiny search; its child runs."""
    from mlflow.tracking import MlflowClient

    space = write_space(tmp_path, study=study, params="  filters: {int: [2, 6]}\n", **convnet_tiny_search(2))
    result = run_search(
        space, SearchOptions(tracking_uri=uri, storage=str(tmp_path / "ray"), live=False, **options), lambda _: None
    )
    assert result.finished == 2 and result.failed == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id], f"tags.`{schema.KIND}` = '{schema.TRIAL_RUN}'")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    return runs


def review_files(uri: str, run_id: str) -> set[str]:
    from mlflow.tracking import MlflowClient

    return {a.path for a in MlflowClient(uri).list_artifacts(run_id, schema.REVIEW_ARTIFACT_DIR)}


@pytest.mark.slow
def test_every_finished_trial_gets_its_review_artifacts(tmp_path: Path, store_uri: str, local_ray: None) -> None:
    from mlflow.tracking import MlflowClient

    for run in search(tmp_path, "reviewed", store_uri):
        assert TRIAL_FILES["convnet_tiny"] <= review_files(store_uri, run.info.run_id)  # the best has more (part B)
        assert schema.REVIEW_ERROR not in run.data.tags
        client = MlflowClient(store_uri)
        assert_real_picture(
            Path(client.download_artifacts(run.info.run_id, schema.ARCHITECTURE_ARTIFACT, str(tmp_path)))
        )


@pytest.mark.slow
def test_a_review_that_cannot_upload_is_a_tag_and_the_trials_still_finish(
    tmp_path: Path, store_uri: str, local_ray: None
) -> None:
    blocked = Path(store_uri.removeprefix("sqlite:///")).parent / "artifacts" / "unwritable"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the study's artifact folder would be")
    for run in search(tmp_path, "unwritable", store_uri):
        assert run.data.tags[schema.REVIEW_ERROR], "the failure is on the trial's run"
        assert "\n" not in run.data.tags[schema.REVIEW_ERROR]


@pytest.mark.slow
def test_no_review_artifacts_when_turned_off(tmp_path: Path, store_uri: str, local_ray: None) -> None:
    for run in search(tmp_path, "unreviewed", store_uri, review_artifacts=False):
        assert not review_files(store_uri, run.info.run_id) & set.union(*TRIAL_FILES.values())
        assert schema.REVIEW_ERROR not in run.data.tags


def test_the_shipped_families_name_their_review_hooks() -> None:
    assert trainables.get("convnet").review == "trainables.convnet.review:render"
    assert trainables.get("unet_tiny").review == "trainables.unet.review:render"
    assert trainables.get("analytic").review == ""
