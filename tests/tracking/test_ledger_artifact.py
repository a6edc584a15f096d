"""The ledger artifact a finished search writes on its run, and warm start reading it back plus newer runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.tracking import ledger, schema
from orchestrator.tracking.mlflow_store import MlflowStore, TrialRow

STUDY = "artifact_study"


@pytest.fixture(autouse=True)
def _run_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process runs in a folder of its own, set before the store opens: no artifact may land there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)


def add_trial(
    store: MlflowStore, parent: str, i: int, config: dict[str, Any], loss: float, ended_ms: int | None = None
) -> str:
    """A finished trial run laid out as the tracking callback writes it; ``ended_ms`` backdates its end."""
    exp = store.experiment_id(STUDY)
    assert exp is not None
    tags = {
        schema.PARENT: parent,
        schema.KIND: schema.TRIAL_RUN,
        schema.STUDY: STUDY,
        schema.VERSION: "1",
        schema.HASH: "h1",
        schema.TRIAL_ID: f"t{i}",
        schema.CONFIG: json.dumps(config),
    }
    run = store.create_run(exp, f"t{i}", tags, {})
    store.log_batch(run, metrics=[("loss", loss, int(time.time() * 1000), 1)])
    store.client.set_terminated(run, "FINISHED", end_time=ended_ms or int(time.time() * 1000))
    return run


def search_run(store: MlflowStore) -> str:
    exp = store.experiment_id(STUDY)
    assert exp is not None
    return store.create_run(exp, "search", {schema.KIND: schema.SEARCH_RUN, schema.STUDY: STUDY}, {})


def by_id(rows: list[TrialRow]) -> dict[str, TrialRow]:
    return {r.run_id: r for r in rows}


CONFIGS = [
    {"lr": 0.001, "depth": 3, "act": "relu", "opt": {"name": "sgd", "momentum": 0.9}},
    {"lr": 0.1, "depth": 8, "act": "gelu", "opt": {"name": "adam"}},
    {"lr": 1e-05, "depth": 2, "act": "tanh", "opt": {"name": "adam"}, "flag": True},
]


def test_a_sqlite_store_keeps_its_artifacts_beside_the_database(store: MlflowStore, tmp_path: Path) -> None:
    parent = search_run(store)
    add_trial(store, parent, 0, CONFIGS[0], 1.0)
    ledger.write_artifact(store, STUDY, parent)
    assert list((tmp_path / "store" / "artifacts" / STUDY).rglob("trials.parquet"))
    assert not (tmp_path / "elsewhere" / "mlruns").exists()  # not in the folder the process runs in


def test_no_artifact_reads_the_store(store: MlflowStore) -> None:
    parent = search_run(store)
    run = add_trial(store, parent, 0, CONFIGS[0], 1.0)
    rows, source = ledger.trials_with_ledger(store, STUDY, None)
    assert [r.run_id for r in rows] == [run] and source == "tracking store"


def test_artifact_read_back_equals_the_runs(store: MlflowStore) -> None:
    parent = search_run(store)
    old_end = int(time.time() * 1000) - 10 * ledger.CLOCK_SKEW_MS  # long before the ledger's as-of time
    for i, config in enumerate(CONFIGS):
        add_trial(store, parent, i, config, 0.5 + i, ended_ms=old_end + i)
    assert ledger.write_artifact(store, STUDY, parent) == len(CONFIGS)
    newest = store.newest_ledger(STUDY)
    assert newest is not None and newest[0] == parent
    assert int(store.client.get_run(parent).data.tags[schema.LEDGER_AS_OF]) == newest[1]

    rows, source = ledger.trials_with_ledger(store, STUDY, None)
    assert source == f"ledger artifact of run {parent} (3 trials) + 0 newer runs from the store"
    assert by_id(rows) == by_id(store.trials(STUDY))  # same rows, values, configs (exact types), times
    assert sorted(json.dumps(r.config, sort_keys=True) for r in rows) == sorted(
        json.dumps(c, sort_keys=True) for c in CONFIGS
    )


def test_a_ledger_older_than_new_runs_is_topped_up(store: MlflowStore) -> None:
    first = search_run(store)
    old_end = int(time.time() * 1000) - 10 * ledger.CLOCK_SKEW_MS
    kept = add_trial(store, first, 0, CONFIGS[0], 1.0, ended_ms=old_end)
    updated = add_trial(store, first, 1, CONFIGS[1], 2.0, ended_ms=old_end + 1)
    ledger.write_artifact(store, STUDY, first)

    second = search_run(store)
    new = add_trial(store, second, 2, CONFIGS[2], 3.0)  # ended after the ledger
    store.reopen_run(updated)  # resumed and finished again, with a new value, after the ledger
    store.log_batch(updated, metrics=[("loss", 0.25, int(time.time() * 1000), 2)])
    store.end_run(updated, "FINISHED")

    rows, source = ledger.trials_with_ledger(store, STUDY, None)
    got = by_id(rows)
    assert len(rows) == 3 and set(got) == {kept, updated, new}
    assert got[updated].metrics["loss"] == 0.25  # from the store, not the ledger's 2.0
    assert got == by_id(store.trials(STUDY))
    assert source == f"ledger artifact of run {first} (2 trials) + 2 newer runs from the store"


def test_the_newest_artifact_is_read_and_each_search_reads_only_newer_runs(store: MlflowStore) -> None:
    first = search_run(store)
    add_trial(store, first, 0, CONFIGS[0], 1.0, ended_ms=int(time.time() * 1000) - 10 * ledger.CLOCK_SKEW_MS)
    ledger.write_artifact(store, STUDY, first)
    second = search_run(store)
    add_trial(store, second, 1, CONFIGS[1], 2.0)
    assert ledger.write_artifact(store, STUDY, second) == 2  # the first ledger + the one newer run
    newest = store.newest_ledger(STUDY)
    assert newest is not None and newest[0] == second
    rows, source = ledger.trials_with_ledger(store, STUDY, None)
    assert by_id(rows) == by_id(store.trials(STUDY)) and source.startswith(f"ledger artifact of run {second} ")


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_an_unreadable_artifact_falls_back_to_the_store(store: MlflowStore, tmp_path: Path, damage: str) -> None:
    parent = search_run(store)
    run = add_trial(store, parent, 0, CONFIGS[0], 1.0)
    ledger.write_artifact(store, STUDY, parent)
    local = Path(store.client.get_run(parent).info.artifact_uri.removeprefix("file://")) / schema.LEDGER_ARTIFACT
    assert local.is_file()
    if damage == "corrupt":
        local.write_bytes(b"not parquet")
    else:
        local.unlink()
    rows, source = ledger.trials_with_ledger(store, STUDY, None)
    assert [r.run_id for r in rows] == [run]
    assert source.startswith(f"tracking store; ledger artifact of run {parent} unreadable (")
    assert "\n" not in source


def test_a_hand_given_ledger_still_wins(store: MlflowStore, tmp_path: Path) -> None:
    parent = search_run(store)
    add_trial(store, parent, 0, CONFIGS[0], 1.0, ended_ms=int(time.time() * 1000) - 10 * ledger.CLOCK_SKEW_MS)
    ledger.write_artifact(store, STUDY, parent)
    path = tmp_path / "export.parquet"
    ledger.write(store.trials(STUDY), path)
    rows, source = ledger.trials_with_ledger(store, STUDY, path)
    assert by_id(rows) == by_id(store.trials(STUDY)) and source.startswith(f"ledger {path} (1 trials)")


def test_finishing_a_search_writes_the_artifact_and_a_failure_never_fails_it(
    store: MlflowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from orchestrator.engine import runner
    from orchestrator.engine.hooks import NO_HOOKS, Ended

    version = SimpleNamespace(study=STUDY, metric=SimpleNamespace(name="loss"))
    parent = search_run(store)
    add_trial(store, parent, 0, CONFIGS[0], 1.0)
    result = runner.SearchResult(STUDY, 1, "exp", parent, store.uri, planned=1, finished=1, best_value=1.0)
    plan = SimpleNamespace(version=version, warm_start=True)
    lines: list[str] = []
    runner._record_end(Ended(store, plan, result, None, (), lines.append), NO_HOOKS)  # type: ignore[arg-type]
    assert lines == [] and store.newest_ledger(STUDY) is not None
    assert store.client.get_run(parent).info.status == "FINISHED"

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("artifact store is read-only")

    other = search_run(store)
    monkeypatch.setattr(store, "log_artifact", broken)
    result.parent_run_id = other
    runner._record_end(Ended(store, plan, result, None, (), lines.append), NO_HOOKS)  # type: ignore[arg-type]
    assert len(lines) == 1 and "artifact store is read-only" in lines[0] and other in lines[0]
    assert store.client.get_run(other).info.status == "FINISHED"
    assert schema.LEDGER_AS_OF not in store.client.get_run(other).data.tags
