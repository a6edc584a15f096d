"""Resuming never runs code from the storage: only JSON and ``weights_only`` torch weights are read back.

Someone who can write the shared storage can replace what Ray Tune pickled there (``tuner.pkl``, the
trials' blobs in ``experiment_state-*.json``, the searcher state, ``params.pkl``) or a checkpoint's
``state.pt``. Here each is replaced by a pickle that creates a marker file when it is loaded: resume
rebuilds the search from ``orchestrator.json`` and the tracking store, so the marker never appears.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.api import resume_search, run_search
from orchestrator.engine.runner import SearchOptions, SearchResult
from orchestrator.engine.searchers import searcher_class
from orchestrator.engine.searchers.base import REPLAYED, Replay
from orchestrator.engine.storage import CHECKPOINT_EPOCH, copy_to_local, open_experiment
from orchestrator.spaces import parse_version
from orchestrator.tracking import schema
from tests.runs import ray_epochs
from tests.spacefiles import convnet_tiny_search, small_search, space_doc, write_space

PARAMS = "  x: {uniform: [-1.0, 1.0]}\n  y: {int: [-2, 2]}\n"


class Planted:
    """What an attacker plants: a pickle whose loading creates ``marker`` (any code could run instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def options(tmp_path: Path, tracking_uri: str) -> SearchOptions:
    return SearchOptions(tracking_uri=tracking_uri, storage=str(tmp_path / "ray"), live=False)


def trial_runs(uri: str, result: SearchResult) -> list[Any]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(result.study)
    return client.search_runs([experiment.experiment_id], f"tags.`{schema.PARENT}` = '{result.parent_run_id}'")


def as_if_the_driver_died(experiment: Path, uri: str, run: Any, planned: int) -> Path:
    """The search state a driver killed during ``run`` leaves: the run RUNNING, the search unfinished with
    ``planned`` trials; returns the trial's folder."""
    meta_file = experiment / "orchestrator.json"
    meta = json.loads(meta_file.read_text())
    meta.update(planned=planned, finished=False)
    meta_file.write_text(json.dumps(meta))
    MlflowClient(uri).update_run(run.info.run_id, status="RUNNING")
    folder = open_experiment(str(experiment)).trial_folder(run.data.tags[schema.TRIAL_ID])
    assert folder is not None
    return experiment / folder


def plant_pickles(experiment: Path, payload: bytes) -> list[Path]:
    """Replace every pickle Ray Tune keeps in ``experiment`` with ``payload``; returns the files replaced."""
    replaced = list(experiment.rglob("*.pkl"))
    for path in replaced:
        path.write_bytes(payload)
    for path in experiment.glob("experiment_state-*.json"):
        path.write_text(json.dumps(_replace_blobs(json.loads(path.read_text()), payload.hex())))
        replaced.append(path)
    assert {p.name for p in replaced} >= {"tuner.pkl", "params.pkl"}, replaced
    assert any(p.name.startswith("searcher-state") for p in replaced) and any(p.suffix == ".json" for p in replaced)
    return replaced


def _replace_blobs(value: Any, blob: str) -> Any:
    """``value`` (Ray Tune's experiment state) with every cloudpickled blob replaced by ``blob``."""
    if isinstance(value, dict):
        if value.get("_type") == "CLOUDPICKLE_FALLBACK":
            return {**value, "value": blob}
        return {k: _replace_blobs(v, blob) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_blobs(v, blob) for v in value]
    if isinstance(value, str) and value.lstrip().startswith(("{", "[")):  # trials are JSON inside the JSON
        try:
            return json.dumps(_replace_blobs(json.loads(value), blob))
        except json.JSONDecodeError:
            return value
    return value


@pytest.mark.slow
def test_planted_pickles_never_run_and_the_search_completes(tmp_path: Path, store_uri: str, local_ray: None) -> None:
    marker = tmp_path / "planted-code-ran"
    space = write_space(tmp_path / "search_spaces", study="untrusted", params=PARAMS, **small_search(2, 3, startup=2))
    first = run_search(space, options(tmp_path, store_uri), lambda _: None)
    experiment = Path(first.experiment_path)
    interrupted = next(r for r in trial_runs(store_uri, first) if r.data.tags.get(schema.KIND) == schema.TRIAL_RUN)
    trial_folder = as_if_the_driver_died(experiment, store_uri, interrupted, planned=4)
    shutil.rmtree(max(trial_folder.glob("checkpoint_*")))  # epoch 3's checkpoint was never stored
    plant_pickles(experiment, pickle.dumps(Planted(marker)))

    lines: list[str] = []
    result = resume_search(str(experiment), SearchOptions(live=False), lines.append)

    assert not marker.exists(), "resume loaded a pickle from the storage"
    assert result.finished == 4 and result.failed == 0 and not result.interrupted, lines
    assert "1 finished, 0 failed of 4 planned; 1 interrupted continue (1 from a checkpoint)" in lines[0], lines
    runs = [r for r in trial_runs(store_uri, first) if r.data.tags.get(schema.KIND) == schema.TRIAL_RUN]
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags[schema.TRIAL_ID] for r in runs}) == 4, "one run per trial"
    continued = next(r for r in runs if r.info.run_id == interrupted.info.run_id)
    assert continued.data.tags[schema.SEED] == interrupted.data.tags[schema.SEED]
    assert continued.data.tags[schema.CONFIG] == interrupted.data.tags[schema.CONFIG]
    assert continued.data.metrics[schema.best_metric("loss")] == interrupted.data.metrics[schema.best_metric("loss")]
    resumed_as = open_experiment(str(experiment)).trial_folder(continued.data.tags[schema.RESUMED_AS])
    assert ray_epochs(experiment / str(resumed_as)) == [3], "continued from epoch 2's checkpoint"
    history = MlflowClient(store_uri).get_metric_history(continued.info.run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3], "each epoch logged once"


@pytest.mark.slow
def test_a_planted_checkpoint_fails_its_trial_and_the_search_goes_on(
    tmp_path: Path, store_uri: str, local_ray: None
) -> None:
    marker = tmp_path / "planted-code-ran"
    space = write_space(
        tmp_path / "search_spaces",
        study="untrusted_weights",
        params="  dropout: {uniform: [0.0, 0.5]}\n",
        **convnet_tiny_search(trials=1),
    )
    first = run_search(space, options(tmp_path, store_uri), lambda _: None)
    experiment = Path(first.experiment_path)
    (interrupted,) = [r for r in trial_runs(store_uri, first) if r.data.tags.get(schema.KIND) == schema.TRIAL_RUN]
    trial_folder = as_if_the_driver_died(experiment, store_uri, interrupted, planned=2)
    weights = list(trial_folder.glob("checkpoint_*/state.pt"))
    assert weights, "the shared loop's checkpoints"
    for path in weights:
        path.write_bytes(pickle.dumps(Planted(marker)))

    result = resume_search(str(experiment), SearchOptions(live=False), lambda _: None)

    assert not marker.exists(), "a checkpoint is loaded with weights_only=True"
    assert (result.finished, result.failed, result.interrupted) == (1, 1, False)
    failed = MlflowClient(store_uri).get_run(interrupted.info.run_id)
    assert failed.info.status == "FAILED"
    assert "TrialFailed: cannot load checkpoint" in failed.data.tags[schema.FAILURE]
    assert "state.pt: UnpicklingError" in failed.data.tags[schema.FAILURE]


# --------------------------------------------------------------------------- the pieces, without Ray


@pytest.mark.parametrize("algorithm", ["tpe", "random", "optuna_tpe"])
def test_a_searcher_suggests_replays_first_then_learns_from_them(algorithm: str) -> None:
    text = space_doc(
        "replay",
        params=PARAMS,
        schedule="{scheduler: fifo, max_epochs: 3}",
        search=f"{{algorithm: {algorithm}, trials: 8, startup_trials: 2}}",
    )
    version = parse_version(text, "replay/v1.yaml")
    prior = [({"x": 0.5, "y": 1}, 0.3), ({"x": -0.5, "y": -1}, 0.7)]
    searcher = searcher_class(algorithm)(version, prior, seed=3)
    replays = [Replay({"x": 0.25, "y": 2}, 4242, {"private": {"trial_id": "old1"}}), Replay({"x": -0.75, "y": 0}, 17)]
    searcher.replay_first(replays)

    first, second, fresh = searcher.suggest("t1"), searcher.suggest("t2"), searcher.suggest("t3")

    assert (first["x"], first["y"], first["seed"], first["private"]) == (0.25, 2, 4242, {"trial_id": "old1"})
    assert (second["x"], second["y"], second["seed"]) == (-0.75, 0, 17) and "private" not in second
    assert "private" not in fresh and searcher.suggested_by["t3"] != REPLAYED
    assert searcher.suggested_by["t1"] == searcher.suggested_by["t2"] == REPLAYED
    for trial_id in ("t1", "t2", "t3"):
        searcher.on_trial_complete(trial_id, {"loss": 0.1, "training_iteration": 3})
    assert searcher.n_scored == 5, "replayed trials are scored like any suggestion"
    assert searcher.suggest("t4") is not None


def test_the_checkpoint_to_continue_from_is_the_newest_the_store_saw(tmp_path: Path) -> None:
    experiment = open_experiment(str(tmp_path / "search"))
    trial = tmp_path / "search" / "analytic_ab12cd34"
    for index, epoch in enumerate([1, 2, 3]):
        checkpoint = trial / f"checkpoint_{index:06d}"
        checkpoint.mkdir(parents=True)
        (checkpoint / CHECKPOINT_EPOCH).write_text(json.dumps({"epoch": epoch}))
    (trial / "checkpoint_000003").mkdir()  # cut short: no epoch recorded
    (tmp_path / "search" / "analytic_ab12cd3499").mkdir()  # another trial whose id starts the same

    assert experiment.trial_folder("ab12cd34") == "analytic_ab12cd34"
    checkpoints = f"{experiment.uri}/analytic_ab12cd34/checkpoint_"
    assert experiment.last_checkpoint("ab12cd34", upto_epoch=5) == f"{checkpoints}000002"
    assert experiment.last_checkpoint("ab12cd34", upto_epoch=2) == f"{checkpoints}000001"
    assert experiment.last_checkpoint("ab12cd34", upto_epoch=0) is None
    assert experiment.last_checkpoint("ffffffff", upto_epoch=3) is None


def test_a_checkpoint_on_a_uri_storage_is_copied_for_the_trial(tmp_path: Path) -> None:
    checkpoint = tmp_path / "search" / "analytic_ab12cd34" / "checkpoint_000000"
    checkpoint.mkdir(parents=True)
    (checkpoint / CHECKPOINT_EPOCH).write_text(json.dumps({"epoch": 1}))
    (checkpoint / "state.pt").write_bytes(b"weights")
    uri = open_experiment((tmp_path / "search").as_uri()).last_checkpoint("ab12cd34", upto_epoch=1)
    assert uri == checkpoint.as_uri()
    local = copy_to_local(uri, str(tmp_path / "local"))
    assert (Path(local) / "state.pt").read_bytes() == b"weights"
