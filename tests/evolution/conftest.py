"""A SQLite tracking store in tmp_path and a writer of trial runs laid out as a search logs them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.spaces import StudyVersion, parse_version
from orchestrator.tracking.mlflow_store import MlflowStore
from orchestrator.tracking.schema import CONFIG, HASH, KIND, PARENT, SEARCH_RUN, STUDY, TRIAL_RUN, VERSION


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowStore]:
    from orchestrator.tracking.mlflow_store import open_store

    yield open_store(f"sqlite:///{tmp_path_factory.mktemp('tracking') / 'mlflow.db'}", create=True)


def record_search(
    store: MlflowStore,
    version: StudyVersion,
    trials: list[tuple[Mapping[str, Any], dict[int, float]]],
    study: str | None = None,
) -> str:
    """A finished search of ``version`` with one FINISHED trial per ``(config, {epoch: value})``."""
    study = study or version.study
    exp = store.experiment_id(study)
    assert exp is not None
    tags = {KIND: SEARCH_RUN, STUDY: study, VERSION: str(version.version), HASH: version.content_hash}
    parent = store.create_run(exp, f"{version.label} search", tags, {})
    now = int(time.time() * 1000)
    for i, (config, history) in enumerate(trials):
        run = store.create_run(
            exp,
            f"{version.label} t{i}",
            {
                **tags,
                KIND: TRIAL_RUN,
                PARENT: parent,
                CONFIG: json.dumps(dict(config), sort_keys=True),
            },
            {},
        )
        store.log_batch(run, metrics=[(version.metric.name, v, now + e, e) for e, v in sorted(history.items())])
        store.end_run(run, "FINISHED")
    store.end_run(parent, "FINISHED")
    return parent


def write_file(folder: Path, text: str, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def two_versions(study: str) -> tuple[StudyVersion, StudyVersion]:
    """v1 searches x in [-1, 1]; v2 narrows x to [0, 1] and adds y with a default."""
    head = f"study: {study}\ntrainable: analytic\nmetric: {{name: loss, mode: min}}\nfixed: {{function: quadratic}}\n"
    v1 = parse_version(head + "version: 1\nparams:\n  x: {uniform: [-1.0, 1.0]}\n")
    v2 = parse_version(
        head + "version: 2\nparent: 1\nparams:\n  x: {uniform: [0.0, 1.0]}\n  y: {int: [1, 3], default: 1}\n"
    )
    return v1, v2
