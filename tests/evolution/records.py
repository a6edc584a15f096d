"""Trial runs laid out in a tracking store as a search logs them, without running one; two versions of a study."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from orchestrator.spaces import StudyVersion, parse_version
from orchestrator.tracking.mlflow_store import MlflowStore
from orchestrator.tracking.schema import CONFIG, HASH, KIND, PARENT, SEARCH_RUN, STUDY, TRIAL_RUN, VERSION
from tests.spacefiles import space_doc


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


def two_versions(study: str) -> tuple[StudyVersion, StudyVersion]:
    """v1 searches x in [-1, 1]; v2 narrows x to [0, 1] and adds y with a default."""
    v1 = parse_version(space_doc(study))
    v2 = parse_version(space_doc(study, 2, params="  x: {uniform: [0.0, 1.0]}\n  y: {int: [1, 3], default: 1}\n"))
    return v1, v2
