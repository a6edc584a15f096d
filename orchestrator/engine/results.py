"""What a trial reports, told apart from Ray Tune's bookkeeping; light (no searcher library, no ray)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from trainables.api import RESERVED_KEYS as RESERVED  # keys the engine adds to every trial's config

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
    if metric in result:
        return
    reported = sorted(k for k, v in result.items() if k not in _RAY_KEYS and _is_number(v))
    raise MetricNotReported(
        f"the trainable {trainable!r} did not report the metric {metric!r} "
        f"named in the space file; it reported: {', '.join(reported) or 'nothing'}"
    )


__all__ = ["RESERVED", "MetricNotReported", "check_metric_reported", "metric_value", "user_metrics"]
