"""Checks that tie a space to the code that will run it (trainable and searcher registries); no heavy imports.

``space validate`` and ``space lint`` run :func:`version_problems`; ``run`` and ``resume`` run :func:`check_version`,
which is the same list plus what needs more than the file (the searcher's library installed, the data a trial
would read).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from pathlib import Path

import trainables
from orchestrator.errors import OrchestratorError
from orchestrator.spaces import Problem, StudyVersion
from orchestrator.spaces.check import ValidationReport, validate_paths
from orchestrator.spaces.secrets import secret_problems
from trainables.api import load_object
from trainables.config import Config, resolve

from .searchers import check_available, unknown_searcher, unsupported_liar


def version_problems(version: StudyVersion) -> list[Problem]:
    """What ``space validate`` reports beyond the file itself: trainable problems, an unknown searcher,
    a ``search.liar`` the searcher cannot do, a searched parameter with a secret-looking name."""
    problems = _trainable_problems(version) + secret_problems(version)
    algorithm_problem = unknown_searcher(version.search.algorithm)
    if algorithm_problem:
        problems.append(Problem("search.algorithm", algorithm_problem, _where(version)))
    liar_problem = unsupported_liar(version.search.algorithm, version.search.liar)
    if liar_problem:
        problems.append(Problem("search.liar", liar_problem, _where(version)))
    return problems


def _trainable_problems(version: StudyVersion) -> list[Problem]:
    """Unknown trainable or keys it does not accept (the first of these), else every metric, objective or
    constraint it never reports."""
    where = _where(version)
    try:
        spec = trainables.get(version.trainable)
        trainables.validate_config(version.trainable, {**version.fixed, **dict.fromkeys(version.params.params)})
    except (trainables.UnknownTrainable, trainables.TrainableConfigError) as e:
        path = "trainable" if isinstance(e, trainables.UnknownTrainable) else _key_path(version, e.key)
        return [Problem(path, str(e), where)]
    problems = []
    for path, name in _reported_names(version):
        if spec.metrics and not any(fnmatch.fnmatchcase(name, m) for m in spec.metrics):
            what = (
                "metric"
                if path.startswith("metric")
                else "constraint"
                if path.startswith("constraints")
                else "objective"
            )
            message = (
                f"{what} {name!r} is never reported by trainable {version.trainable!r}; "
                f"it reports: {', '.join(spec.metrics)}"
            )
            problems.append(Problem(path, message, where))
    return problems


def _reported_names(version: StudyVersion) -> list[tuple[str, str]]:
    """Where in the file each metric a trial must report is named: the metric, each objective, each constraint."""
    goals = (
        [(f"objectives[{i}].name", m.name) for i, m in enumerate(version.objectives)]
        if version.objectives
        else [("metric.name", version.metric.name)]
    )
    return goals + [(f"constraints.{c.name}", c.name) for c in version.constraints]


def _where(version: StudyVersion) -> str | None:
    return str(version.source) if version.source else None


def _key_path(version: StudyVersion, key: str) -> str:
    """Where a trainable's config key (``data`` or a nested ``data.idx``) is set in the space file."""
    return f"fixed.{key}" if key.split(".")[0] in version.fixed else f"params.{key}"


def preflight_config(version: StudyVersion) -> Config:
    """The config a trial's data comes from, without a trial: the space's fixed values, the declared defaults
    of the parameters it searches, the trainable's defaults for the rest (``trainables.config.resolve``)."""
    return resolve(version.trainable, version.trial_config(version.params.defaults()))


def preflight_problem(version: StudyVersion, spec: trainables.TrainableSpec) -> Problem | None:
    """What the trainable's ``preflight`` hook finds wrong with what a trial would read (data paths, file
    headers), located in the space file; ``None`` when it has no hook or finds nothing. It may open data
    files, so ``space validate`` does not call it; ``run`` and ``resume`` do (``check_version``)."""
    if not spec.preflight:
        return None
    check: Callable[[Config], None] = load_object(spec.preflight)
    try:
        check(preflight_config(version))
    except trainables.TrainableConfigError as e:
        return Problem(_key_path(version, e.key), str(e), _where(version))
    return None


def check_version(version: StudyVersion) -> trainables.TrainableSpec:
    """Raise ``OrchestratorError`` on the first problem (for ``orchestrator run``, before any run is created):
    a trainable problem, an unknown ``search.algorithm``, a searcher library that is not installed, or data
    the trainable's preflight hook cannot read. Return the trainable's spec."""
    problems = version_problems(version)
    if problems:
        raise OrchestratorError(str(problems[0]))
    check_available(version.search.algorithm)
    spec = trainables.get(version.trainable)
    problem = preflight_problem(version, spec)
    if problem is not None:
        raise OrchestratorError(str(problem))
    return spec


def validate_with_trainables(paths: Iterable[str | Path]) -> ValidationReport:
    """What ``space validate`` checks: the files and their lineage, then each valid version against the
    registries (``version_problems``); a version with problems moves from ``valid`` to the problems."""
    report = validate_paths(paths)
    for version in list(report.valid):
        problems = version_problems(version)
        if problems:
            report.valid.remove(version)
            report.problems.extend(problems)
            report.invalid_files += 1
    return report
