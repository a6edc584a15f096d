"""Carried trials bring their per-epoch history, so a warm start under ASHA is fidelity-aware.

The trials are written by the real tracking callback (its logger thread on a SQLite store, no Ray Tune run);
warm start then reads them from the store alone and from a ledger, and the searcher must file each at the ASHA
rungs it reached (rungs 1 and 3 of 9 epochs): a trial stopped early never counts as final.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.engine.searchers import searcher_class
from orchestrator.engine.tracking_callback import MlflowTrialCallback
from orchestrator.engine.trainable import RESUME_KEY
from orchestrator.spaces import StudyVersion, parse_version
from orchestrator.spaces.carry import carry
from orchestrator.spaces.trials import RecordedTrial
from orchestrator.tracking import ledger, schema
from orchestrator.tracking.async_logger import SpillFile
from orchestrator.tracking.carried import carried_trials
from orchestrator.tracking.mlflow_store import MlflowStore
from tests.plugin import SqliteTemplate
from tests.spacefiles import small_search, write_space

STUDY = "fidelity"
EPOCHS = 9  # ASHA rungs 1 and 3 (grace period 1, reduction factor 3), full budget 9
V1 = "  x: {uniform: [-1.0, 1.0]}\n"
V2 = V1 + "  z: {uniform: [-0.5, 0.5], default: 0.0}\n"  # carried trials get z = 0.0, their history unchanged
# (trial id, x, loss per epoch): stopped at rung 1, stopped at rung 3, ran all epochs
TRIALS = [("t0", 0.1, [0.9]), ("t1", 0.2, [0.8, 0.7, 0.6]), ("t2", 0.3, [0.7 - 0.05 * e for e in range(EPOCHS)])]
UNTAGGED = ("t3", 0.4, [0.5] * EPOCHS)  # a run logged before histories were tagged: it counts as final


def load(tmp_path: Path, params: str, version: int = 1, scheduler: str = "asha") -> StudyVersion:
    sections = small_search(epochs=EPOCHS, scheduler=scheduler)
    path = write_space(tmp_path / scheduler / "search_spaces", study=STUDY, version=version, params=params, **sections)
    return parse_version(path.read_text(), str(path))


def search_run(store: MlflowStore) -> tuple[str, str]:
    exp = store.experiment_id(STUDY)
    assert exp is not None
    return exp, store.create_run(exp, "search", {schema.KIND: schema.SEARCH_RUN, schema.STUDY: STUDY}, {})


def callback_for(store: MlflowStore, version: StudyVersion, exp: str, parent: str, tmp_path: Path) -> Any:
    callback = MlflowTrialCallback(version, store.uri, exp, parent, SpillFile.local(tmp_path / "spill.jsonl"))
    callback.setup()
    return callback


def report(callback: Any, trial: Any, losses: Sequence[float], first_epoch: int = 1) -> None:
    for epoch, loss in enumerate(losses, first_epoch):
        callback.on_trial_result(0, [], trial, {"loss": loss, "epoch": epoch, "training_iteration": epoch})


def untagged_trial(store: MlflowStore, exp: str, parent: str) -> None:
    trial_id, x, losses = UNTAGGED
    tags = {
        schema.PARENT: parent,
        schema.KIND: schema.TRIAL_RUN,
        schema.STUDY: STUDY,
        schema.VERSION: "1",
        schema.TRIAL_ID: trial_id,
        schema.CONFIG: json.dumps({"x": x}),
    }
    run = store.create_run(exp, trial_id, tags, {})
    now = int(time.time() * 1000)
    store.log_batch(run, metrics=[("loss", loss, now, epoch) for epoch, loss in enumerate(losses, 1)])
    store.end_run(run, "FINISHED")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, sqlite_template: SqliteTemplate) -> MlflowStore:
    """A v1 search of ``TRIALS`` through the tracking callback, plus one older run without a history tag (read only:
    shared by the tests of this module)."""
    tmp_path = tmp_path_factory.mktemp("study")
    store = MlflowStore(sqlite_template.copy(tmp_path))
    exp, parent = search_run(store)
    callback = callback_for(store, load(tmp_path, V1), exp, parent, tmp_path)
    for trial_id, x, losses in TRIALS:
        trial = SimpleNamespace(trial_id=trial_id, config={"x": x, "seed": 0}, checkpoint=None)
        callback.on_trial_start(0, [], trial)
        report(callback, trial, losses)
        callback.on_trial_complete(0, [], trial)
    callback.on_experiment_end([])
    untagged_trial(store, exp, parent)
    return store


def loss_at_rungs(losses: Sequence[float]) -> dict[int, float]:
    """What ASHA (and the searcher) keep of a trial: its loss at each budget (1, 3, 9) it reached."""
    return {budget: losses[budget - 1] for budget in (1, 3, EPOCHS) if budget <= len(losses)}


def test_the_callback_tags_each_trial_with_its_history(study: MlflowStore) -> None:
    rows = {r.trial_id: r for r in study.trials(STUDY)}
    for trial_id, _, losses in TRIALS:
        assert rows[trial_id].history == {"loss": dict(enumerate(losses, 1))}
        assert rows[trial_id].history["loss"] == study.metric_history(rows[trial_id].run_id, "loss")
    assert rows[UNTAGGED[0]].history == {}


def test_warm_start_from_the_store_and_from_a_ledger_hand_the_searcher_the_same_histories(
    study: MlflowStore, tmp_path: Path
) -> None:
    v2 = load(tmp_path, V2, version=2)
    path = tmp_path / "trials.parquet"
    ledger.write(study.trials(STUDY), path, "loss")
    from_store, _, store_source = carried_trials(study, v2, None)
    from_ledger, _, ledger_source = carried_trials(study, v2, path)
    assert store_source == "tracking store" and ledger_source.startswith(f"ledger {path} (4 trials) + 0 newer")

    def by_x(carried: list[Any]) -> list[Any]:
        return sorted(carried, key=lambda trial: trial[0]["x"])

    assert by_x(from_store.carried) == by_x(from_ledger.carried)
    expected = [({"x": x, "z": 0.0}, losses[-1], dict(enumerate(losses, 1))) for _, x, losses in TRIALS]
    assert by_x(from_store.carried) == [*expected, ({"x": UNTAGGED[1], "z": 0.0}, UNTAGGED[2][-1])]

    for report_ in (from_store, from_ledger):
        searcher = searcher_class(v2.search.algorithm)(v2, report_.carried, seed=0)
        assert searcher.budgets == (1, 3, EPOCHS)
        budgets = {config["x"]: b for config, b in searcher._prior}
        assert budgets == {x: loss_at_rungs(losses) for _, x, losses in TRIALS} | {UNTAGGED[1]: {EPOCHS: 0.5}}
        # at rung 1: t0, t1, t2; at rung 3: t1, t2; final: t2 and the untagged trial (no history: final)
        assert [searcher.observed_at(b) for b in searcher.budgets] == [3, 2, 2]


def test_a_fifo_warm_start_is_as_before(study: MlflowStore, tmp_path: Path) -> None:
    fifo = load(tmp_path, V2, version=2, scheduler="fifo")
    carried, _, _ = carried_trials(study, fifo, None)
    without_history = carry(
        (
            RecordedTrial(r.config, r.metrics.get("loss"), status=r.status, version=r.version, run_id=r.run_id)
            for r in study.trials(STUDY)
        ),
        fifo,
    )
    assert carried.carried == without_history.carried and all(len(trial) == 2 for trial in carried.carried)
    searcher = searcher_class(fifo.search.algorithm)(fifo, carried.carried, seed=0)
    assert searcher.budgets == (EPOCHS,) and searcher.observed_at(EPOCHS) == 4


def test_a_history_is_carried_as_losses_in_the_searchers_sense(tmp_path: Path) -> None:
    path = write_space(
        tmp_path / "search_spaces", study=STUDY, params=V1, **small_search(epochs=EPOCHS, scheduler="asha")
    )
    version = parse_version(path.read_text().replace("{name: loss, mode: min}", "{name: acc, mode: max}"))
    (trial,) = carry([RecordedTrial({"x": 0.5}, 0.8, history={1: 0.5, 2: float("nan"), 3: 0.8})], version).carried
    assert trial == ({"x": 0.5}, -0.8, {1: -0.5, 3: -0.8})


def test_a_resumed_trial_keeps_the_epochs_the_dead_driver_logged(tmp_path: Path, store: MlflowStore) -> None:
    exp, parent = search_run(store)
    version = load(tmp_path, V1)
    first = callback_for(store, version, exp, parent, tmp_path)
    trial = SimpleNamespace(trial_id="t0", config={"x": 0.1, "seed": 0}, checkpoint=None)
    first.on_trial_start(0, [], trial)
    report(first, trial, [0.9, 0.8])
    first.shutdown()  # the driver dies: the run is left RUNNING, without a history tag
    (left,) = store.trials(STUDY)
    assert left.status == "RUNNING" and left.history == {}

    second = callback_for(store, version, exp, parent, tmp_path)  # `orchestrator resume`
    continued = SimpleNamespace(
        trial_id="t0b", config={"x": 0.1, "seed": 0, RESUME_KEY: {"trial_id": "t0"}}, checkpoint=None
    )
    second.on_trial_start(0, [], continued)
    report(second, continued, [0.7, 0.6], first_epoch=3)
    second.on_trial_complete(0, [], continued)
    second.on_experiment_end([])
    (row,) = store.trials(STUDY)
    assert row.run_id == left.run_id and row.status == "FINISHED"
    assert row.history == {"loss": {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.6}}
