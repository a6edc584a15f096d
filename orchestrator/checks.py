"""Checks that tie a space to the code that will run it (the trainable registry); no heavy imports."""

from __future__ import annotations

import fnmatch

import trainables
from orchestrator.errors import OrchestratorError
from orchestrator.spaces import Problem, StudyVersion


def trainable_problems(version: StudyVersion) -> list[Problem]:
    """Unknown trainable, keys it does not accept, or a metric it never reports."""
    where = str(version.source) if version.source else None
    try:
        spec = trainables.get(version.trainable)
        trainables.validate_config(version.trainable, {**version.fixed, **dict.fromkeys(version.params.params)})
    except (trainables.UnknownTrainable, trainables.TrainableConfigError) as e:
        path = "trainable" if isinstance(e, trainables.UnknownTrainable) else _key_path(version, e.key)
        return [Problem(path, str(e), where)]
    if spec.metrics and not any(fnmatch.fnmatchcase(version.metric.name, m) for m in spec.metrics):
        message = (
            f"metric {version.metric.name!r} is never reported by trainable {version.trainable!r}; "
            f"it reports: {', '.join(spec.metrics)}"
        )
        return [Problem("metric.name", message, where)]
    return []


def _key_path(version: StudyVersion, key: str) -> str:
    return f"fixed.{key}" if key in version.fixed else f"params.{key}"


def check_trainable(version: StudyVersion) -> trainables.TrainableSpec:
    """Raise on the first problem (for ``orchestrator run``); return the trainable's spec."""
    problems = trainable_problems(version)
    if problems:
        raise OrchestratorError(str(problems[0]))
    return trainables.get(version.trainable)
