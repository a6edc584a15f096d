"""What a trial reports, told apart from Ray Tune's bookkeeping, and what a trial is called and died of; light (no
searcher library, no ray)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.redaction import redact_text
from orchestrator.spaces import Metric, StudyVersion
from orchestrator.spaces.version import Constraint, total_violation
from trainables.api import RESERVED_KEYS as RESERVED  # keys the engine adds to every trial's config

RESUME_KEY = "__orchestrator_resume__"  # driver-private config key of a continued trial: never reaches a trainable
MAX_REASON = 4000  # characters of a failure's reason kept in its run's tag
_RAY_KEYS = {
    "training_iteration",
    "time_this_iter_s",
    "time_total_s",
    "timestamp",
    "trial_id",
    "date",
    "pid",
    "hostname",
    "node_ip",
    "config",
    "done",
    "iterations_since_restore",
    "time_since_restore",
    "checkpoint_dir_name",
    "should_checkpoint",
    "experiment_tag",
}


class MetricNotReported(RuntimeError):
    """The trainable's results lack the metric the space file names."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def user_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """What the trainable reported (finite numbers only), without Ray's bookkeeping."""
    return {k: float(v) for k, v in result.items() if k not in _RAY_KEYS and _is_number(v) and math.isfinite(v)}


def metric_value(result: Mapping[str, Any] | None, metric: str) -> float | None:
    """The trial's score: ``metric`` when it is a finite number, else ``None`` (a failed trial)."""
    value = None if result is None else result.get(metric)
    return float(value) if _is_number(value) and math.isfinite(value) else None


def check_metric_reported(result: Mapping[str, Any], metric: str, trainable: str) -> None:
    """Raise ``MetricNotReported`` naming what the trainable did report when ``metric`` is not among it."""
    check_reported(result, (metric,), trainable)


def check_reported(result: Mapping[str, Any], names: Sequence[str], trainable: str) -> None:
    """Raise ``MetricNotReported`` naming the first of ``names`` (a version's objectives and constrained metrics,
    ``StudyVersion.reported``) missing from ``result``, and what the trainable did report."""
    missing = [name for name in names if name not in result]
    if not missing:
        return
    reported = sorted(k for k, v in result.items() if k not in _RAY_KEYS and _is_number(v))
    raise MetricNotReported(
        f"the trainable {trainable!r} did not report the metric {missing[0]!r} "
        f"named in the space file; it reported: {', '.join(reported) or 'nothing'}"
    )


def outcome_value(result: Mapping[str, Any] | None, version: StudyVersion) -> tuple[float, ...] | None:
    """A result of a search of several objectives or with constraints as the searchers and early stopping rank it:
    one loss per objective (``Metric.loss``), then how far it breaks the constraints (``StudyVersion.violation``;
    a constrained value missing or not finite breaks its constraint). None when an objective is missing or not
    finite: the trial failed, it is no member of any front."""
    return outcome_of(result, version.goals, version.constraints)


def outcome_of(
    result: Mapping[str, Any] | None, goals: Sequence[Metric], constraints: Sequence[Constraint]
) -> tuple[float, ...] | None:
    """``outcome_value`` for ``goals`` and ``constraints`` (what early stopping keeps of a version)."""
    losses = []
    for goal in goals:
        value = metric_value(result, goal.name)
        if value is None:
            return None
        losses.append(goal.loss(value))
    assert result is not None
    return (*losses, total_violation(constraints, {c.name: metric_value(result, c.name) for c in constraints}))


def trial_identity(trial_id: str, config: Mapping[str, Any]) -> str:
    """The id a trial has in the tracking store: Ray Tune's ``trial_id``, except for a trial that ``resume``
    continues (its config names the interrupted trial under ``RESUME_KEY``), which keeps the old one."""
    continued = config.get(RESUME_KEY)
    return str(continued["trial_id"]) if isinstance(continued, Mapping) else trial_id


def failure_reason(trial: Any) -> str:
    """The last line of the trial's error (for example ``TrialFailed: loss became NaN at epoch 3``), URIs redacted:
    what its run's ``orchestrator.failure`` tag and the console say it died of."""
    try:
        text = str(trial.get_error() or "")
    except Exception:
        text = ""
    if not text and getattr(trial, "error_file", None):
        try:
            text = Path(trial.error_file).read_text()
        except OSError:
            text = ""
    return error_reason(text)


def error_reason(text: str) -> str:
    """The last unindented line of an error's text or traceback (what raised last), URIs redacted."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith((" ", "\t"))]
    reason = redact_text(lines[-1]) if lines else "failed without an error message"
    return reason[:MAX_REASON]


__all__ = [
    "RESERVED",
    "RESUME_KEY",
    "MetricNotReported",
    "check_metric_reported",
    "check_reported",
    "error_reason",
    "failure_reason",
    "metric_value",
    "outcome_of",
    "outcome_value",
    "trial_identity",
    "user_metrics",
]
