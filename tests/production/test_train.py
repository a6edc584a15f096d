"""``orchestrator train`` (issue 14): the chosen trial retrained per class through the search machinery.

Fast tests check what a train is made of (the pinned version, its models) and the one-line errors on a
hand-made store. The slow ones run a real 2-trial search of a 2-class ``unet_tiny``, then train its best
trial per class: one train run, one nested training run per class, ``<study>-<class>`` registered with the
tags and loadable with ``mlflow.pytorch.load_model``, invisible to the next search's warm start; and a
train whose driver is SIGKILLed that ``orchestrator resume`` finishes, each model registered once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.errors import OrchestratorError
from orchestrator.production.train import (
    PER_CLASS_KEY,
    SourceTrial,
    TrainError,
    chosen_trial,
    source_trial,
    train_version,
    trainings,
)
from orchestrator.spaces import Fixed, dump, parse_version
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import MlflowStore, TrialRow
from tests.plugin import SqliteTemplate
from tests.runs import command
from tests.spacefiles import ROOT, space_doc, write_space

STUDY = "train_study"
CLASSES = ("buildings", "water")  # unet_tiny's classes
SPACE = space_doc(
    STUDY,
    trainable="unet_tiny",
    metric="{name: val_jaccard, mode: max}",
    fixed="{samples_per_epoch: 64}",
    schedule="{scheduler: fifo, max_epochs: 1}",
    resources="{cpu: 1, gpu: 0}",
    search="{trials: 2, startup_trials: 2}",
    params="  lr: {loguniform: [1.0e-3, 1.0e-2]}\n  base_filters: {int: [2, 4]}\n",
)
ANALYTIC_SPACE = space_doc("plain")


def row(config: dict, *, status: str = "FINISHED", space_hash: str = "", trial_id: str = "t1") -> TrialRow:
    return TrialRow(
        run_id="r1",
        study=STUDY,
        version=1,
        space_hash=space_hash,
        trial_id=trial_id,
        status=status,
        config=config,
        metrics={},
        start_time=None,
        end_time=None,
        parent_run_id="",
    )


# --------------------------------------------------------------------------- what a train is


def test_a_per_class_train_pins_the_values_and_plans_one_model_per_class() -> None:
    version = parse_version(SPACE, "v1.yaml")
    source = SourceTrial(row({"lr": 0.004, "base_filters": 3}), version, 77, {"lr": 0.004, "base_filters": 3})
    train = train_version(source, epochs=5, per_class=True)
    assert train.schedule.scheduler == "fifo" and train.schedule.max_epochs == 5
    assert train.search.trials == len(CLASSES)
    assert train.params.params["lr"] == Fixed(0.004) and train.params.params["base_filters"] == Fixed(3)
    assert train.fixed == version.fixed and train.trainable == version.trainable
    planned = trainings(train, source.seed)
    assert [values[PER_CLASS_KEY] for values, _ in planned] == list(CLASSES)
    assert all(values["lr"] == 0.004 and seed == 77 for values, seed in planned)
    assert parse_version(dump(train), "train.yaml").content_hash == train.content_hash  # what resume parses

    single = train_version(source)
    assert single.schedule.max_epochs == version.schedule.max_epochs and single.search.trials == 1
    assert trainings(single, 5) == (({"lr": 0.004, "base_filters": 3}, 5),)


def test_per_class_on_a_trainable_without_per_class_is_one_line() -> None:
    version = parse_version(ANALYTIC_SPACE, "v1.yaml")
    source = SourceTrial(row({"x": 0.5}), version, 1, {"x": 0.5})
    with pytest.raises(TrainError, match=r"--per-class: trainable 'analytic' has no 'per_class' option"):
        train_version(source, per_class=True)


def test_a_space_file_that_is_not_the_trials_is_refused(tmp_path: Path) -> None:
    path = write_space(tmp_path, SPACE, study=STUDY)
    other = parse_version(SPACE.replace("[2, 4]", "[2, 5]"), "v1.yaml")

    class Store:  # what source_trial asks of the store before it reads the seed
        client = None

    with pytest.raises(TrainError, match=r"is not the space of trial t1 \(v1, hash "):
        source_trial(Store(), row({"lr": 0.004}, space_hash=other.content_hash), space=path)  # type: ignore[arg-type]


@dataclass(frozen=True)
class HandMade:
    store: MlflowStore
    finished_trial: str


@pytest.fixture
def hand_made(store: MlflowStore) -> HandMade:
    """A study with one search run and two trial runs (FAILED, FINISHED) and one with a failed trial only."""
    for study, statuses in ((STUDY, ("FAILED", "FINISHED")), ("failed_only", ("FAILED",))):
        experiment = store.experiment_id(study)
        assert experiment is not None
        parent = store.create_run(
            experiment,
            "search",
            {schema.KIND: schema.SEARCH_RUN},
            {schema.PARAM_METRIC: "val_jaccard", schema.PARAM_MODE: "max"},
        )
        for i, status in enumerate(statuses):
            tags = {
                schema.KIND: schema.TRIAL_RUN,
                schema.PARENT: parent,
                schema.TRIAL_ID: f"{study}_{i}",
                schema.CONFIG: '{"lr": 0.001}',
                schema.STUDY: study,
            }
            run = store.create_run(experiment, f"trial {i}", tags, {})
            store.log_batch(run, metrics=[("val_jaccard", 0.1 * (i + 1), 0, 1)])
            store.end_run(run, status)
        store.end_run(parent, "FINISHED")
    return HandMade(store, f"{STUDY}_1")


def test_the_chosen_trial_or_one_line_why_there_is_none(hand_made: HandMade) -> None:
    store = hand_made.store
    assert chosen_trial(store, STUDY).trial_id == hand_made.finished_trial  # --best: the finished one
    assert chosen_trial(store, STUDY, hand_made.finished_trial).status == "FINISHED"
    with pytest.raises(TrainError, match=r"^no study 'nope' in the tracking store "):
        chosen_trial(store, "nope")
    with pytest.raises(TrainError, match=rf"^study '{STUDY}' has no trial 'zzz' "):
        chosen_trial(store, STUDY, "zzz")
    with pytest.raises(TrainError, match=rf"^trial {STUDY}_0 of study '{STUDY}' did not finish \(FAILED\)"):
        chosen_trial(store, STUDY, f"{STUDY}_0")
    with pytest.raises(TrainError, match=r"^study 'failed_only' has no finished trial with its metric yet"):
        chosen_trial(store, "failed_only")


def test_the_command_prints_the_error_in_one_line(hand_made: HandMade, capsys: pytest.CaptureFixture[str]) -> None:
    from orchestrator.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", "nope", "--tracking-uri", hand_made.store.uri])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: no study 'nope' in the tracking store {hand_made.store.uri}"
    )
    with pytest.raises(SystemExit) as exit_:
        main(["train", STUDY, "--best", "--trial", "x", "--tracking-uri", hand_made.store.uri])
    assert exit_.value.code == 2


# --------------------------------------------------------------------------- real trains


@dataclass(frozen=True)
class Searched:
    uri: str
    storage: Path
    best_trial: str
    best_run: str
    space_hash: str


@pytest.fixture(scope="module")
def searched(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: SqliteTemplate, _ray_session: None
) -> Iterator[Searched]:
    """A finished 2-trial search of the 2-class ``unet_tiny`` study in a SQLite store."""
    import ray

    from orchestrator.api import run_search
    from orchestrator.engine.runner import SearchOptions
    from orchestrator.tracking.study import best_trial, study_metric

    root = tmp_path_factory.mktemp("train")
    space = write_space(root / "search_spaces", SPACE, study=STUDY)
    uri = sqlite_template.copy(root)
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    options = SearchOptions(tracking_uri=uri, storage=str(root / "ray"), live=False, review_artifacts=False)
    result = run_search(space, options, echo=lambda _: None)
    assert result.finished == 2
    store = MlflowStore(uri)
    metric = study_metric(store, STUDY)
    assert metric is not None
    best = best_trial(store.trials(STUDY), metric)
    assert best is not None
    yield Searched(uri, root / "ray", best[0].trial_id, best[0].run_id, best[0].space_hash)


def runs_of_kind(client, kind: str) -> list:
    experiment = client.get_experiment_by_name(STUDY)
    return client.search_runs([experiment.experiment_id], f"tags.`{schema.KIND}` = '{kind}'")


def check_models(client, searched: Searched, train_run: str, epochs: int) -> None:
    """One version of ``<study>-<class>`` per class, from this train, tagged, loadable; each training's steps once."""
    import mlflow.pytorch
    import numpy as np
    import torch

    from orchestrator.models.metadata import read_model_metadata
    from orchestrator.tracking.mlflow_store import fluent_tracking_uri

    trainings_ = [r for r in runs_of_kind(client, schema.TRAINING_RUN) if r.data.tags[schema.PARENT] == train_run]
    assert sorted(r.data.params[PER_CLASS_KEY] for r in trainings_) == list(CLASSES)
    for run in trainings_:
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_jaccard")]
        assert sorted(steps) == list(range(1, epochs + 1)), steps  # nothing logged twice
    for cls in CLASSES:
        versions = client.search_model_versions(f"name = '{STUDY}-{cls}'")
        assert len(versions) == 1, f"{STUDY}-{cls} registered once"
        (version,) = versions
        tags = version.tags
        assert tags[schema.VERSION] == "1" and tags[schema.HASH] == searched.space_hash
        assert tags[schema.TRIAL_ID] == searched.best_trial and tags[schema.SOURCE_RUN] == searched.best_run
        assert tags[schema.TRAIN_RUN_ID] == train_run
        trained = next(r for r in trainings_ if r.data.params[PER_CLASS_KEY] == cls)
        assert tags[schema.TRAINED_RUN] == trained.info.run_id == version.run_id
        assert searched.best_trial in version.description and cls in version.description
        uri = f"models:/{STUDY}-{cls}/{version.version}"
        metadata = read_model_metadata(uri, searched.uri)
        assert metadata.classes == (cls,)
        with fluent_tracking_uri(searched.uri):
            model = mlflow.pytorch.load_model(uri)
        batch = np.random.default_rng(0).standard_normal((3, metadata.input.channels, 32, 32)).astype(np.float32)
        with torch.no_grad():
            out = model(torch.from_numpy(batch))
        assert tuple(out.shape) == (3, 1, 32, 32)


@pytest.mark.slow
def test_train_best_per_class_registers_one_model_per_class(searched: Searched) -> None:
    from mlflow.tracking import MlflowClient

    from orchestrator.api import resume_search, train_models
    from orchestrator.engine.runner import SearchOptions
    from orchestrator.spaces import load_version
    from orchestrator.tracking.carried import carried_trials

    lines: list[str] = []
    options = SearchOptions(
        tracking_uri=searched.uri, storage=str(searched.storage), review_artifacts=False, live=False
    )
    result = train_models(STUDY, options, epochs=2, per_class=True, echo=lines.append)
    assert result.run.finished == 2 and result.run.failed == 0 and not result.run.interrupted, lines
    assert result.source_trial_id == searched.best_trial
    assert sorted(m.name for m in result.models) == [f"{STUDY}-{cls}" for cls in CLASSES]
    client = MlflowClient(searched.uri)
    (train_run,) = runs_of_kind(client, schema.TRAIN_RUN)
    assert train_run.info.run_id == result.run.parent_run_id and train_run.info.status == "FINISHED"
    assert train_run.data.tags[schema.TRIAL_ID] == searched.best_trial
    assert train_run.data.params[schema.PARAM_EPOCHS] == "2"
    check_models(client, searched, result.run.parent_run_id, epochs=2)

    # the study's next search carries its 2 trials, not the trainings
    store = MlflowStore(searched.uri)
    assert len(store.trials(STUDY)) == 2 and len(store.trials(STUDY, kind=schema.TRAINING_RUN)) == 2
    report, _, _ = carried_trials(
        store, load_version(searched.storage.parent / "search_spaces" / STUDY / "v1.yaml"), None
    )
    assert len(report.carried) == 2 and report.total == 2

    with pytest.raises(OrchestratorError, match="already finished"):  # a finished train is not resumed
        resume_search(result.run.experiment_path, SearchOptions(live=False), lambda _: None)


@pytest.mark.slow
def test_a_killed_train_resumes_and_registers_each_model_once(searched: Searched, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    study_runs = MlflowClient(searched.uri)
    for cls in CLASSES:  # the other slow test may have registered these: start from none
        for version in study_runs.search_model_versions(f"name = '{STUDY}-{cls}'"):
            study_runs.delete_model_version(version.name, version.version)
    before = {r.info.run_id for r in runs_of_kind(study_runs, schema.TRAIN_RUN)}
    epochs = 3
    storage = tmp_path / "ray"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "driver.log"
    with log_path.open("w") as log:
        driver = subprocess.Popen(
            command(
                "train",
                STUDY,
                "--per-class",
                "--epochs",
                str(epochs),
                "--tracking-uri",
                searched.uri,
                "--storage",
                str(storage),
                "--no-live",
                "--no-review-artifacts",
            ),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            running = [
                r
                for r in runs_of_kind(study_runs, schema.TRAINING_RUN)
                if r.info.status == "RUNNING" and r.data.tags[schema.PARENT] not in before
            ]
            if any(study_runs.get_metric_history(r.info.run_id, "val_jaccard") for r in running):
                break  # a training has a checkpoint to continue from
            assert driver.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.2)
        else:
            pytest.fail("the train did not get going: " + log_path.read_text()[-3000:])
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started die at once
        driver.wait()
    (train_run,) = [r for r in runs_of_kind(study_runs, schema.TRAIN_RUN) if r.info.run_id not in before]
    assert not study_runs.search_model_versions(f"name = '{STUDY}-{CLASSES[0]}'"), "killed before registering"

    (experiment,) = [p for p in storage.iterdir() if p.is_dir()]
    resumed = subprocess.run(
        command("resume", str(experiment), "--no-live"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "2 finished, 0 failed" in resumed.stdout
    assert study_runs.get_run(train_run.info.run_id).info.status == "FINISHED"
    statuses = Counter(
        r.info.status
        for r in runs_of_kind(study_runs, schema.TRAINING_RUN)
        if r.data.tags[schema.PARENT] == train_run.info.run_id
    )
    assert statuses == Counter({"FINISHED": 2}), statuses
    check_models(study_runs, searched, train_run.info.run_id, epochs=epochs)
