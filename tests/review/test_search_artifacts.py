"""A search's review artifacts on its parent run, and the best model in the MLflow Model Registry (issue 11).

A tiny real search (``convnet_tiny`` on a local Ray, a SQLite store) is read back the way a reviewer
would: the leaderboard files against the trials' own runs, the best values against the space, the
pictures decoded, the importance numbers, and the registered model loaded and evaluated again on the
same validation data. The failure paths (too few trials for importance, a model that cannot be logged)
must leave a tag and a FINISHED search; without optuna nothing is missing (importance needs only the core).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from orchestrator.api import run_search
from orchestrator.engine.leaderboard import Leaderboard, TrialOutcome
from orchestrator.engine.runner import SearchOptions, SearchResult
from orchestrator.models.register import ModelSkipped, log_best_model
from orchestrator.redaction import REDACTED
from orchestrator.spaces import Metric, StudyVersion, load_version
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import fluent_tracking_uri
from tests.plugin import SqliteTemplate
from tests.spacefiles import convnet_tiny_search, write_space

STUDY = "review_search"
METRIC = "val_accuracy"
TRIALS = 4  # importance needs 4 finished trials
EPOCHS = 1
PARAMS = "  filters: {int: [2, 6]}\n  dropout: {uniform: [0.0, 0.5]}\n  fc_width: {choice: [8, 16]}\n"
PICTURES = (schema.IMPORTANCE_ARTIFACT, schema.BEST_SO_FAR_ARTIFACT)
MIN_PIXEL_STD = 0.02  # a blank (single-colour) image has 0


@dataclass
class Search:
    result: SearchResult
    version: StudyVersion
    uri: str
    lines: list[str]

    @property
    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.uri)

    def download(self, run_id: str, artifact: str, dst: Path) -> Path:
        return Path(self.client.download_artifacts(run_id, artifact, str(dst)))

    def trial_runs(self) -> list[Any]:
        experiment = self.client.get_experiment_by_name(self.version.study)
        return self.client.search_runs(
            [experiment.experiment_id],
            f"tags.`{schema.PARENT}` = '{self.result.parent_run_id}' and tags.`{schema.KIND}` = '{schema.TRIAL_RUN}'",
        )


@pytest.fixture(scope="module")
def module_ray(_ray_session: None) -> None:
    """A local Ray for the module's searches (``_ray_session``, from the plugin, stops it at the end)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)


def run_tiny_search(root: Path, template: SqliteTemplate, study: str, trials: int, epochs: int) -> Search:
    sections = {
        **convnet_tiny_search(trials),
        "schedule": {"scheduler": "fifo", "max_epochs": epochs},
        "search": {"trials": trials, "startup_trials": trials},
    }
    space = write_space(root / "search_spaces", study=study, params=PARAMS, **sections)
    uri = template.copy(root)
    lines: list[str] = []
    # the per-trial review artifacts are not what these tests read (tests/review/test_trial_artifacts.py)
    options = SearchOptions(
        tracking_uri=uri, storage=str(root / "ray"), concurrency=2, live=False, review_artifacts=False
    )
    result = run_search(space, options, echo=lines.append)
    assert result.finished == trials and result.failed == 0
    return Search(result, load_version(space), uri, lines)


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory, sqlite_template: SqliteTemplate, module_ray: None) -> Search:
    return run_tiny_search(tmp_path_factory.mktemp("review-search"), sqlite_template, STUDY, TRIALS, EPOCHS)


# --------------------------------------------------------------------------- the real search


@pytest.mark.slow
def test_the_parent_run_lists_every_review_artifact(search: Search) -> None:
    parent = search.client.get_run(search.result.parent_run_id)
    assert parent.info.status == "FINISHED"
    for reason in (schema.REVIEW_ERROR, schema.IMPORTANCE_SKIPPED, schema.MODEL_SKIPPED):
        assert reason not in parent.data.tags, parent.data.tags[reason]
    listed = {a.path for a in search.client.list_artifacts(search.result.parent_run_id, schema.REVIEW_ARTIFACT_DIR)}
    assert listed >= {
        schema.LEADERBOARD_ARTIFACT,
        schema.LEADERBOARD_TABLE_ARTIFACT,
        schema.BEST_CONFIG_ARTIFACT,
        schema.IMPORTANCE_ARTIFACT,
        schema.IMPORTANCE_VALUES_ARTIFACT,
        schema.BEST_SO_FAR_ARTIFACT,
    }
    assert any(line.startswith("review: best model models:/") for line in search.lines)


@pytest.mark.slow
def test_leaderboard_table_equals_the_trials_runs_best_first(search: Search, tmp_path: Path) -> None:
    table = pq.read_table(search.download(search.result.parent_run_id, schema.LEADERBOARD_TABLE_ARTIFACT, tmp_path))
    rows = table.to_pylist()
    best_key = schema.best_metric(METRIC)
    runs = {r.data.tags[schema.TRIAL_ID]: r for r in search.trial_runs()}
    assert len(rows) == len(runs) == TRIALS
    assert {row["trial_id"] for row in rows} == set(runs)
    assert [row["rank"] for row in rows] == list(range(1, TRIALS + 1))
    assert [row["value"] for row in rows] == sorted((r.data.metrics[best_key] for r in runs.values()), reverse=True)
    for row in rows:
        run = runs[row["trial_id"]]
        assert row["run_id"] == run.info.run_id and row["status"] == "FINISHED" and row["epoch"] == EPOCHS
        assert json.loads(row["config"]) == json.loads(run.data.tags[schema.CONFIG])
    assert rows[0]["value"] == search.result.best_value

    markdown = search.download(search.result.parent_run_id, schema.LEADERBOARD_ARTIFACT, tmp_path / "md").read_text()
    assert all(f"`{row['trial_id']}`" in markdown for row in rows)
    best_run = rows[0]["run_id"]
    assert schema.LEADERBOARD_ARTIFACT in {a.path for a in search.client.list_artifacts(best_run, "review")}


@pytest.mark.slow
def test_best_config_fragment_pins_values_of_the_space(search: Search, tmp_path: Path) -> None:
    text = search.download(search.result.parent_run_id, schema.BEST_CONFIG_ARTIFACT, tmp_path).read_text()
    assert STUDY in text and search.version.content_hash in text
    fragment = yaml.safe_load(text)
    pinned = {name: spec["fixed"] if isinstance(spec, dict) else spec for name, spec in fragment["params"].items()}
    assert search.version.params.contains(pinned) is None
    table = pq.read_table(search.download(search.result.parent_run_id, schema.LEADERBOARD_TABLE_ARTIFACT, tmp_path))
    assert pinned == json.loads(table.to_pylist()[0]["config"])  # the values of the leaderboard's first trial


@pytest.mark.slow
@pytest.mark.parametrize("artifact", PICTURES)
def test_pictures_are_real_non_blank_images(search: Search, tmp_path: Path, artifact: str) -> None:
    import matplotlib.image

    pixels = matplotlib.image.imread(search.download(search.result.parent_run_id, artifact, tmp_path))
    height, width = pixels.shape[:2]
    assert 300 <= width <= 3000 and 200 <= height <= 3000
    assert float(np.std(pixels[..., :3])) > MIN_PIXEL_STD


@pytest.mark.slow
def test_importance_numbers_share_one_over_the_spaces_parameters(search: Search, tmp_path: Path) -> None:
    numbers = json.loads(
        search.download(search.result.parent_run_id, schema.IMPORTANCE_VALUES_ARTIFACT, tmp_path).read_text()
    )
    assert numbers["evaluator"] == "gp_main_effect" and numbers["trials"] == TRIALS and numbers["metric"] == METRIC
    labels = {label for label, _ in search.version.params.walk()}
    assert set(numbers["importance"]) == labels == {"filters", "dropout", "fc_width"}
    assert sum(numbers["importance"].values()) == pytest.approx(1.0, abs=1e-6)
    assert all(value >= 0 for value in numbers["importance"].values())


@pytest.mark.slow
def test_registered_model_gives_the_logged_metric_on_the_same_validation_data(search: Search) -> None:
    import mlflow.pytorch
    import torch

    from trainables.loop import prepare

    client = search.client
    versions = client.search_model_versions(f"name='{STUDY}'")
    assert len(versions) == 1
    model_version = versions[0]
    tags = model_version.tags
    source = client.get_run(tags[schema.SOURCE_RUN])
    assert tags[schema.VERSION] == "1" and tags[schema.HASH] == search.version.content_hash
    assert tags[schema.TRIAL_ID] == source.data.tags[schema.TRIAL_ID]
    assert source.data.metrics[schema.best_metric(METRIC)] == search.result.best_value
    logged_model = client.get_logged_model(model_version.model_id or model_version.source.rpartition("/")[2])
    study_experiment = client.get_experiment_by_name(STUDY)
    assert logged_model.experiment_id == study_experiment.experiment_id, "filed under the study, not Default"
    assert logged_model.artifact_location.startswith(study_experiment.artifact_location), "not under ./mlruns"
    logged = float(tags[schema.model_metric(METRIC)])
    parent = client.get_run(search.result.parent_run_id)
    assert parent.data.metrics[schema.model_metric(METRIC)] == pytest.approx(logged, abs=1e-9)

    with fluent_tracking_uri(search.uri):
        model = mlflow.pytorch.load_model(f"models:/{STUDY}/{model_version.version}")
    values = json.loads(source.data.tags[schema.CONFIG])
    config = {
        **search.version.trial_config(values),
        "max_epochs": EPOCHS,
        "seed": int(source.data.tags[schema.SEED]),
        "device": "cpu",
        "precision": "fp32",
    }
    task, _, _ = prepare("convnet_tiny", config)
    task.evaluator.reset()  # the loop's evaluate() calls .eval(), which an exported (pt2) model does not have
    with torch.no_grad():
        for inputs, targets in task.val.epoch(torch.Generator().manual_seed(0)):
            task.evaluator.update(model(inputs).float(), targets)
    assert task.evaluator.compute()[METRIC] == pytest.approx(logged, abs=1e-6)


# --------------------------------------------------------------------------- failures never fail the search


@pytest.fixture
def no_optuna(monkeypatch: pytest.MonkeyPatch) -> None:
    """optuna as if it were not installed: importing it (or our module that speaks it) raises ImportError."""
    monkeypatch.setitem(sys.modules, "optuna", None)
    monkeypatch.delitem(sys.modules, "orchestrator.engine.backends.optuna", raising=False)


@pytest.mark.slow
def test_too_few_trials_for_importance_and_a_failing_model_log_are_tags_on_a_finished_search(
    tmp_path: Path,
    sqlite_template: SqliteTemplate,
    module_ray: None,
    no_optuna: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow.pytorch

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the registry is read-only today")

    monkeypatch.setattr(mlflow.pytorch, "log_model", refuse)
    search = run_tiny_search(tmp_path, sqlite_template, "review_failures", trials=2, epochs=1)
    parent = search.client.get_run(search.result.parent_run_id)
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    # 2 trials: too few for importance (optuna is not installed here, and importance does not need it).
    skipped = tags[schema.IMPORTANCE_SKIPPED]
    assert skipped == "parameter importance needs at least 4 finished trials, this search has 2"
    assert tags[schema.MODEL_SKIPPED] == "failed: RuntimeError: the registry is read-only today"
    assert schema.REVIEW_ERROR not in tags
    listed = {a.path for a in search.client.list_artifacts(search.result.parent_run_id, schema.REVIEW_ARTIFACT_DIR)}
    assert schema.LEADERBOARD_ARTIFACT in listed and schema.BEST_SO_FAR_ARTIFACT in listed
    assert schema.IMPORTANCE_ARTIFACT not in listed
    assert not search.client.search_model_versions("name='review_failures'")
    assert any(skipped in line for line in search.lines)


# --------------------------------------------------------------------------- the pieces, without a search


def outcome(trial_id: str, value: float, ended_ms: int, **config: Any) -> TrialOutcome:
    return TrialOutcome(trial_id, value, 3, "FINISHED", config, ended_ms=ended_ms)


def test_leaderboard_ranks_by_mode_and_redacts_every_rendering() -> None:
    trials = [
        outcome("t1", 0.5, 30, x=0.1, api_key="a"),
        outcome("t2", 0.2, 10, x=0.3, api_key="b"),
        outcome("t3", float("nan"), 20, x=0.0, api_key="a"),
    ]
    board = Leaderboard.rank(Metric("loss", "min"), trials)
    assert [r.trial_id for r in board.rows] == ["t2", "t1"]  # NaN has no rank
    assert [r.trial_id for r in board.completion_order()] == ["t2", "t1"]
    assert [r.trial_id for r in Leaderboard.rank(Metric("loss", "max"), trials).rows] == ["t1", "t2"]
    table = board.table().to_pylist()
    assert [json.loads(row["config"])["api_key"] for row in table] == [REDACTED, REDACTED]
    for text in (board.markdown("pieces"), board.text()):
        assert REDACTED in text and "'b'" not in text and '"b"' not in text


def test_a_trainable_without_a_torch_model_is_skipped_with_a_reason(tmp_path: Path) -> None:
    version = load_version(write_space(tmp_path, study="pieces"))
    with pytest.raises(ModelSkipped, match="'analytic' has no PyTorch model"):
        log_best_model(store=None, version=version, parent_run_id="run", best=outcome("t1", 0.1, 1, x=0.0), result=None)  # type: ignore[arg-type]
