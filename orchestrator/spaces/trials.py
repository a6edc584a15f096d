"""A trial as it was recorded, the one type warm start (``carry``) and refine (``refine``) read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RecordedTrial:
    """A trial read back from the tracking store: its values, final metric value and per-epoch values.

    ``history`` maps an epoch (the step the metric is logged at, the epoch ASHA counts) to the metric's value
    there; empty when unknown (the trial then counts with ``value`` alone, as a finished one).

    With several objectives or constraints, ``values`` holds the final value of every other metric they name (the
    objectives after the first, the constrained metrics; None or absent when the trial did not report it) and
    ``histories`` their values by epoch where the run recorded them. ``value`` and ``history`` stay the first
    objective's, so single-objective readers see what they always saw.
    """

    config: Mapping[str, Any]
    value: float | None
    history: Mapping[int, float] = field(default_factory=dict)
    status: str = "FINISHED"
    version: int | None = None
    run_id: str = ""
    values: Mapping[str, float | None] = field(default_factory=dict)
    histories: Mapping[str, Mapping[int, float]] = field(default_factory=dict)
