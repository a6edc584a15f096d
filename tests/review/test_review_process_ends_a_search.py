"""A real search's end: the review process it started before Ray logs the best model and every trial's artifacts; the
trials keep Ray Tune's JSON log only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.api import run_search
from orchestrator.engine.runner import SearchOptions
from orchestrator.review import search as search_review
from orchestrator.tracking import schema
from tests.spacefiles import convnet_tiny_search, write_space

TRIAL_FILES = {"review/model_summary.txt", "review/architecture.png", "review/confusion_matrix.png"}


@pytest.mark.slow
def test_the_review_process_logs_the_best_model_and_every_trials_artifacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_ray: None
) -> None:
    from mlflow.tracking import MlflowClient

    def not_in_the_driver(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the driver logged the model: the review process should have")

    monkeypatch.setattr(search_review, "log_best_model", not_in_the_driver)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    space = write_space(tmp_path, study="ended", params="  filters: {int: [2, 6]}\n", **convnet_tiny_search(trials=3))
    lines: list[str] = []
    result = run_search(space, SearchOptions(tracking_uri=uri, storage=str(tmp_path / "ray"), live=False), lines.append)
    assert result.finished == 3
    assert any(line.startswith("review: best model models:/ended/1") for line in lines), lines
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ended")
    runs = client.search_runs([experiment.experiment_id], f"tags.`{schema.KIND}` = '{schema.TRIAL_RUN}'")
    assert len(runs) == 3
    for run in runs:
        assert {a.path for a in client.list_artifacts(run.info.run_id, schema.REVIEW_ARTIFACT_DIR)} >= TRIAL_FILES
        assert schema.REVIEW_ERROR not in run.data.tags
    parent = client.get_run(result.parent_run_id)
    assert schema.MODEL_SKIPPED not in parent.data.tags
    folders = [p for p in Path(result.experiment_path).iterdir() if p.is_dir()]
    assert len(folders) == 3
    for folder in folders:  # Ray Tune's JSON log per trial, not its CSV or TensorBoard ones
        names = {p.name for p in folder.iterdir()}
        assert "result.json" in names and "progress.csv" not in names
        assert not any(name.startswith("events.out.tfevents") for name in names)
