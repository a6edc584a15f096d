"""The MLflow UI as a reviewer opens it, in a real headless Chromium (issue 11).

A real ``mlflow server`` on loopback, a tiny real search of two objectives logging to it over HTTP, then
Debian's ``chromium`` driven by the ``playwright`` package (no browser download): the experiments list, the
study's runs, the best trial's run (the knee of the front) and its review artifacts, the search run's
Pareto-front picture among its artifacts, and the registered model. Every step
leaves a screenshot in ``test-artifacts/ui/`` at the repository root (the environment variable
``ORCHESTRATOR_UI_SCREENSHOTS`` names another folder), which CI keeps as artifacts.

Skipped, with the reason, only where Chromium is not installed or playwright is not importable.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from orchestrator.api import run_search
from orchestrator.engine.ray_session import ray_session
from orchestrator.engine.runner import SearchOptions, SearchResult
from orchestrator.review.ui import study_links
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import MlflowStore
from orchestrator.tracking.server import LoopbackMlflowServer
from tests.plugin import SqliteTemplate
from tests.spacefiles import space_doc, write_space

if TYPE_CHECKING:
    from mlflow.entities import Run
    from playwright.sync_api import Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS_ENV = "ORCHESTRATOR_UI_SCREENSHOTS"
DEFAULT_SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
UI_TIMEOUT_MS = 30_000  # a page of a fresh server on a busy 2-core machine can take many seconds

STUDY = "ui_review"
METRIC = "val_accuracy"
SECOND = "params"  # the second objective, min: a bigger network is more accurate and larger
TRIALS = 4
SPACE = space_doc(
    STUDY,
    trainable="convnet_tiny",
    metric=None,
    objectives=f"[{{name: {METRIC}, mode: max}}, {{name: {SECOND}, mode: min}}]",
    fixed=None,
    schedule="{scheduler: fifo, max_epochs: 1}",
    resources="{cpu: 1, gpu: 0}",
    search=f"{{trials: {TRIALS}, startup_trials: {TRIALS}}}",
    params="""\
  filters: {choice: [4, 8]}
  optimizer:
    choice:
      - {name: adam, lr: {loguniform: [1.0e-3, 1.0e-2]}}
""",
)
# What the best trial's Artifacts tab lists under review/: the architecture picture, the confusion matrix
# (convnet_tiny classifies) and the search's leaderboard.
BEST_RUN_ARTIFACTS = (schema.ARCHITECTURE_ARTIFACT, schema.CONFUSION_MATRIX_ARTIFACT, schema.LEADERBOARD_ARTIFACT)
# What the search run's Artifacts tab lists under review/: the Pareto front (previewed), the leaderboard.
SEARCH_RUN_ARTIFACTS = (schema.pareto_artifact(METRIC, SECOND), schema.LEADERBOARD_ARTIFACT)
SCREENSHOTS = ("study-link", "runs", "best-run", "artifacts", "models", "search-run")  # one per step, in order
FAILED_SHOT = "failed"  # what the page showed when an expected element did not appear

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (Debian: apt-get install chromium)"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="playwright is not importable (pip install playwright; it drives /usr/bin/chromium, no download)",
    ),
]


def screenshot_dir() -> Path:
    """Where the screenshots go: ``$ORCHESTRATOR_UI_SCREENSHOTS`` or ``test-artifacts/ui/`` at the repository root.

    Screenshots an earlier run left there are removed (only the names this test writes)."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or DEFAULT_SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*SCREENSHOTS, FAILED_SHOT):
        for old in folder.glob(f"[0-9][0-9]-{name}.png"):
            old.unlink()
    return folder


@dataclass(frozen=True)
class LoggedSearch:
    server: LoopbackMlflowServer
    result: SearchResult


@pytest.fixture(scope="module")
def logged_search(tmp_path_factory: pytest.TempPathFactory, sqlite_template: SqliteTemplate) -> Iterator[LoggedSearch]:
    """A tiny real search (review artifacts on, the default) logged over HTTP to a real server on loopback."""
    root = tmp_path_factory.mktemp("ui")
    space = write_space(root / "search_spaces", SPACE, study=STUDY)
    server = sqlite_template.server(root / "mlflow").launch()
    try:
        with ray_session(None):  # Ray starts while the server boots; it is shut down before the browser opens
            server.wait()
            options = SearchOptions(tracking_uri=server.uri, storage=str(root / "ray"), concurrency=2, live=False)
            result = run_search(space, options, echo=lambda line: None)
        assert result.finished == TRIALS and result.failed == 0
        yield LoggedSearch(server, result)
    finally:
        server.stop()


@pytest.fixture
def page() -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            new_page = browser.new_page(viewport={"width": 1400, "height": 900})
            # MLflow announces new features in dialogs over the page (the new model registry UI): close them
            announcement = new_page.get_by_role("dialog")
            new_page.add_locator_handler(announcement, lambda: announcement.get_by_role("button", name="Close").click())
            yield new_page
        finally:
            browser.close()


def best_trial_run(search: LoggedSearch) -> Run:
    """The run of the trial whose model is registered, checked to be the search's best: the knee of its front."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(search.server.uri)
    versions = client.search_model_versions(f"name = '{STUDY}'")
    assert len(versions) == 1, f"one version of the model {STUDY!r} is registered"
    best = client.get_run(versions[0].tags[schema.SOURCE_RUN])
    trials = client.search_runs(
        [best.info.experiment_id],
        f"tags.`{schema.PARENT}` = '{search.result.parent_run_id}' and tags.`{schema.KIND}` = '{schema.TRIAL_RUN}'",
    )
    assert len(trials) == TRIALS and best.info.run_id in {t.info.run_id for t in trials}
    assert best.data.tags[schema.PARETO_RANK] == "0"  # on the front
    search_run = client.get_run(search.result.parent_run_id)
    assert json.loads(best.data.tags[schema.CONFIG]) == json.loads(search_run.data.tags[schema.BEST_CONFIG])
    assert best.data.metrics[METRIC] == search.result.best_value
    return best


class Reviewer:
    """A reviewer's clicks in the MLflow UI, each step waited for and followed by a numbered screenshot."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.shots: list[Path] = []

    def shoot(self, name: str) -> None:
        path = self.folder / f"{len(self.shots) + 1:02d}-{name}.png"
        # The viewport (MLflow's panes fill the window) as painted: animations="disabled" ends the artifact tree's
        # expand motion early, and the tree then drew itself collapsed or one row high in the shot.
        self.page.screenshot(path=str(path))
        self.shots.append(path)

    def visible(self, locator: Locator) -> Locator:
        from playwright.sync_api import expect

        try:
            expect(locator).to_be_visible(timeout=UI_TIMEOUT_MS)
        except AssertionError:
            self.shoot(FAILED_SHOT)
            raise
        return locator

    def main_link(self, name: str) -> Locator:
        return self.visible(self.page.get_by_role("main").get_by_role("link", name=name, exact=True))

    def sidebar_link(self, name: str) -> Locator:
        return self.visible(self.page.get_by_role("navigation").get_by_role("link", name=name, exact=True))

    def follow_study_link(self, url: str, search_run_name: str) -> None:
        """The study's link as ``orchestrator ui`` prints it: MLflow's training view (its runs table) at once, with
        no click on the "Model training" switch (the link's ``?workflowType=machine_learning`` opens it)."""
        self.page.goto(url)
        self.main_link(search_run_name)  # the runs table lists the search
        close = self.page.get_by_role("button", name="Close", exact=True)
        if close.count():  # the assistant panel, when MLflow opens it
            close.first.click()
        self.shoot("study-link")

    def runs_listed(self, search_run_name: str, trial_run_name: str) -> None:
        """Expand the search's run in the runs table (its trials are nested under it) until the trial is listed."""
        search_cell = self.page.get_by_role("gridcell").filter(has=self.page.get_by_role("link", name=search_run_name))
        self.visible(search_cell).get_by_role("button").first.click()
        self.main_link(trial_run_name)
        self.shoot("runs")

    def follow_best_run_link(self, url: str, trial_run_name: str) -> None:
        """The best run's link as ``orchestrator ui`` prints it: the trial's run page in the training view."""
        self.page.goto(url)
        self.visible(self.page.get_by_role("heading", name=trial_run_name, exact=True))
        self.main_link(schema.best_metric(METRIC))  # its metrics are shown
        self.shoot("best-run")

    def artifacts_listed(self, artifacts: tuple[str, ...], shot: str = "artifacts") -> None:
        """Open the Artifacts tab, expand the review folder and wait for each artifact's file name to be listed, then
        preview the first; the shot (list and preview) waits for the list again."""
        self.visible(self.page.get_by_role("tab", name="Artifacts")).click()
        self.visible(self.page.get_by_text(schema.REVIEW_ARTIFACT_DIR, exact=True)).click()
        listed = [self.page.get_by_text(schema.review_file_name(artifact), exact=True) for artifact in artifacts]
        for name in listed:
            self.visible(name)
        listed[0].click()
        self.visible(self.page.get_by_role("img", name=artifacts[0]))
        for name in listed:
            self.visible(name)
        self.shoot(shot)

    def search_run_artifacts(self, study_url: str, search_run_name: str, artifacts: tuple[str, ...]) -> None:
        """Back to the study's runs (its link, in the training view), open the search's own run and list its review
        artifacts, the first previewed."""
        self.page.goto(study_url)
        self.main_link(search_run_name).click()
        self.visible(self.page.get_by_role("heading", name=search_run_name, exact=True))
        self.artifacts_listed(artifacts, shot="search-run")

    def model_registered(self, name: str) -> None:
        self.sidebar_link("Model registry").click()
        row = self.page.get_by_role("row").filter(has=self.page.get_by_role("link", name=name, exact=True))
        self.visible(row.get_by_role("link", name="Version 1", exact=True))
        self.shoot("models")


def test_a_reviewer_finds_the_knees_pictures_the_pareto_front_and_the_registered_model(
    logged_search: LoggedSearch, page: Page
) -> None:
    from mlflow.tracking import MlflowClient

    best = best_trial_run(logged_search)
    search_run = MlflowClient(logged_search.server.uri).get_run(logged_search.result.parent_run_id)
    reviewer = Reviewer(page, screenshot_dir())

    links = study_links(MlflowStore(logged_search.server.uri), STUDY, logged_search.server.uri)
    assert links.best_run_url is not None
    reviewer.follow_study_link(links.experiment_url, search_run.info.run_name)
    reviewer.runs_listed(search_run.info.run_name, best.info.run_name)
    reviewer.follow_best_run_link(links.best_run_url, best.info.run_name)
    reviewer.artifacts_listed(BEST_RUN_ARTIFACTS)
    reviewer.model_registered(STUDY)
    reviewer.search_run_artifacts(links.experiment_url, search_run.info.run_name, SEARCH_RUN_ARTIFACTS)

    assert [p.name for p in reviewer.shots] == [f"{i:02d}-{name}.png" for i, name in enumerate(SCREENSHOTS, 1)]
    assert all(p.stat().st_size > 0 for p in reviewer.shots)
