"""Per-epoch histories: the trial run's tag that holds one, and the ledger column that keeps it."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.tracking import ledger, schema
from orchestrator.tracking.mlflow_store import (
    HISTORY_DIGITS,
    MAX_TAG_LENGTH,
    MlflowStore,
    TrialRow,
    history_tag,
    read_history_tag,
)

STUDY = "history_study"


@pytest.fixture
def store(tmp_path: Path) -> MlflowStore:
    return MlflowStore(f"sqlite:///{tmp_path / 'mlflow.db'}")


def add_trial(store: MlflowStore, i: int, losses: dict[int, float], *, tagged: bool = True) -> str:
    """A finished trial run that logged ``losses`` per epoch (step = epoch); ``tagged``: with its history tag."""
    exp = store.experiment_id(STUDY)
    assert exp is not None
    tags = {
        schema.KIND: schema.TRIAL_RUN,
        schema.STUDY: STUDY,
        schema.VERSION: "1",
        schema.TRIAL_ID: f"t{i}",
        schema.CONFIG: json.dumps({"x": i / 10}),
    }
    run = store.create_run(exp, f"t{i}", tags, {})
    now = int(time.time() * 1000)
    store.log_batch(run, metrics=[("loss", value, now, epoch) for epoch, value in losses.items()])
    end_tags = {schema.METRIC_HISTORY: history_tag("loss", losses)} if tagged else {}
    store.log_batch(run, tags=end_tags)
    store.end_run(run, "FINISHED")
    return run


def test_the_tag_gives_back_the_history_exactly() -> None:
    history = {3: 0.1 + 0.2, 1: 1 / 3, 2: 2.5e-12}
    text = history_tag("val_loss", history)
    assert text is not None and len(text) <= MAX_TAG_LENGTH
    assert read_history_tag(text) == {"val_loss": history}


def test_the_tag_leaves_out_non_finite_values_and_is_none_without_any() -> None:
    text = history_tag("loss", {1: 0.5, 2: math.nan, 3: math.inf})
    assert text is not None and read_history_tag(text) == {"loss": {1: 0.5}}
    assert history_tag("loss", {1: math.nan}) is None and history_tag("loss", {}) is None


def test_a_long_history_is_rounded_to_fit_and_one_too_long_for_a_tag_is_none() -> None:
    values = {epoch: 1 / (epoch + 1 / 7) for epoch in range(1, 401)}  # 400 epochs, 17 digits each: over the limit
    text = history_tag("loss", values)
    assert text is not None and len(text) <= MAX_TAG_LENGTH
    back = read_history_tag(text)["loss"]
    assert back.keys() == values.keys() and back != values
    assert all(math.isclose(back[e], v, rel_tol=10 ** (1 - HISTORY_DIGITS)) for e, v in values.items())
    assert history_tag("loss", {epoch: 1 / (epoch + 1 / 7) for epoch in range(1, 2001)}) is None


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "not json",
        "[1, 2]",
        '{"metric": "loss", "epochs": [1, 2], "values": [1]}',
        '{"metric": "loss", "epochs": ["a"], "values": [1]}',
    ],
)
def test_a_tag_that_is_not_a_history_reads_as_none(text: str | None) -> None:
    assert read_history_tag(text) == {}


def test_the_store_reads_the_history_with_the_run(store: MlflowStore) -> None:
    tagged = add_trial(store, 0, {1: 0.9, 2: 0.7, 3: 0.4})
    untagged = add_trial(store, 1, {1: 0.8}, tagged=False)
    rows = {r.run_id: r for r in store.trials(STUDY)}
    assert rows[tagged].history == {"loss": {1: 0.9, 2: 0.7, 3: 0.4}}
    assert rows[untagged].history == {}
    assert rows[tagged].prior("loss").history == {1: 0.9, 2: 0.7, 3: 0.4}
    assert rows[untagged].prior("loss").history == {} and rows[tagged].prior("accuracy").history == {}
    # the tag holds what MLflow's metric history holds
    assert store.metric_history(tagged, "loss") == rows[tagged].history["loss"]


def test_the_ledger_round_trip_keeps_the_history(store: MlflowStore, tmp_path: Path) -> None:
    add_trial(store, 0, {1: 0.9, 2: 0.7, 3: 0.4})
    add_trial(store, 1, {1: 0.8}, tagged=False)
    rows = store.trials(STUDY)
    path = tmp_path / "trials.parquet"
    ledger.write(rows, path, "loss")
    back, _ = ledger.read(path)
    assert sorted(back, key=lambda r: r.run_id) == sorted(rows, key=lambda r: r.run_id)
    assert sorted(len(r.history) for r in back) == [0, 1]


def test_an_older_ledger_without_the_history_column_reads_with_no_history(tmp_path: Path) -> None:
    row = TrialRow(
        "r1",
        STUDY,
        1,
        "h",
        "t1",
        "FINISHED",
        {"x": 0.5},
        {"loss": 0.4},
        1000,
        2000,
        "p",
        history={"loss": {1: 0.9, 2: 0.4}},
    )
    path = tmp_path / "old.parquet"
    pq.write_table(ledger.table([row]).drop_columns(["history"]), path)
    (back,), _ = ledger.read(path)
    assert back.history == {} and back.metrics == {"loss": 0.4} and back.config == {"x": 0.5}


def test_a_ledger_with_empty_history_cells_reads_them_as_no_history(tmp_path: Path) -> None:
    rows = [
        TrialRow(
            f"r{i}",
            STUDY,
            1,
            "h",
            f"t{i}",
            "FINISHED",
            {"x": i},
            {"loss": i},
            1000,
            2000,
            "p",
            history={"loss": {1: 2.0 * i}},
        )
        for i in range(3)
    ]
    t = ledger.table(rows)
    column = t.schema.get_field_index("history")
    cells = pa.array([None, [("loss", [(1, 2.0)])], None], t.schema.field("history").type)
    path = tmp_path / "nulls.parquet"
    pq.write_table(t.set_column(column, "history", cells), path)
    back, _ = ledger.read(path)
    assert [r.history for r in back] == [{}, {"loss": {1: 2.0}}, {}]
