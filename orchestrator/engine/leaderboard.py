"""The leaderboard of one search: one rule for its rows, printed, as Markdown and as a Parquet table.

A trial's value is its best epoch's value of the search's metric (what ``best_<metric>`` records);
trials that never reported the metric have no row. Rows are ranked best first. Configurations are
the searched values only, and every rendering shows them through ``redact_config``: a value under a
secret-looking key never reaches the console or an artifact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from orchestrator.redaction import redact_config
from orchestrator.spaces import Metric, StudyVersion
from orchestrator.tracking.study import ranking

from .results import trial_identity

if TYPE_CHECKING:
    from orchestrator.tracking.mlflow_store import TrialRow

CONSOLE_TOP = 5  # rows the console shows at the end of a search

PARQUET_SCHEMA = pa.schema(
    [
        ("rank", pa.int64()),
        ("trial_id", pa.string()),
        ("run_id", pa.string()),
        ("value", pa.float64()),
        ("epoch", pa.int64()),
        ("status", pa.string()),
        ("config", pa.string()),  # the searched values as JSON (redacted): nested values keep their types
    ]
)


@dataclass(frozen=True)
class TrialOutcome:
    """One trial of a search as the leaderboard ranks it.

    ``config`` holds the searched values as the trial ran them (not redacted: renderings redact);
    ``ended_ms`` orders trials by completion (the tracking store's end time when known).
    """

    trial_id: str
    value: float
    epoch: int | None
    status: str
    config: dict[str, Any]
    run_id: str = ""
    ended_ms: int | None = None


def best_value(values: Iterable[float], metric: Metric) -> float:
    """The best of ``values`` for ``metric`` (its mode)."""
    values = list(values)
    return max(values) if metric.mode == "max" else min(values)


def outcomes_from_grid(grid: Iterable[Any], version: StudyVersion) -> list[TrialOutcome]:
    """The trials of a Ray Tune ``ResultGrid`` that reported ``version``'s metric, in the grid's order."""
    name, out = version.metric.name, []
    for result in grid:
        df = result.metrics_dataframe
        if df is None or name not in df:
            continue
        values = [float(v) for v in df[name].dropna()]
        if not values:
            continue
        metrics = result.metrics or {}
        epoch = metrics.get("epoch", metrics.get("training_iteration"))
        stamp = metrics.get("timestamp")  # seconds of the last report (Ray Tune's)
        out.append(
            TrialOutcome(
                trial_id=trial_identity(str(metrics.get("trial_id", "?")), result.config or {}),
                value=best_value(values, version.metric),
                epoch=int(epoch) if epoch is not None else None,
                status="FAILED" if result.error else "FINISHED",
                config={k: result.config[k] for k in version.params.params if k in result.config},
                ended_ms=int(stamp * 1000) if isinstance(stamp, int | float) else None,
            )
        )
    return out


@dataclass(frozen=True)
class Leaderboard:
    """Ranked trials of one search, best first."""

    metric: Metric
    rows: tuple[TrialOutcome, ...]

    @classmethod
    def rank(cls, metric: Metric, outcomes: Iterable[TrialOutcome]) -> Leaderboard:
        """The leaderboard of ``outcomes`` by ``tracking.study.ranking`` (equal values: the first to end first)."""
        finite = [o for o in outcomes if math.isfinite(o.value)]
        return cls(metric, tuple(sorted(finite, key=lambda o: ranking(metric, o.value, o.ended_ms))))

    @classmethod
    def from_grid(cls, grid: Iterable[Any], version: StudyVersion) -> Leaderboard:
        return cls.rank(version.metric, outcomes_from_grid(grid, version))

    @property
    def best(self) -> TrialOutcome | None:
        return self.rows[0] if self.rows else None

    def with_runs(self, runs: Iterable[TrialRow]) -> Leaderboard:
        """The same rows with each trial's MLflow run id and end time, from the store's rows (by trial id)."""
        by_trial: Mapping[str, TrialRow] = {r.trial_id: r for r in runs if r.trial_id}
        rows = []
        for row in self.rows:
            run = by_trial.get(row.trial_id)
            if run is not None:
                row = replace(row, run_id=run.run_id, ended_ms=run.end_time or row.ended_ms)
            rows.append(row)
        return Leaderboard.rank(self.metric, rows)  # the store's end times may order equal values anew

    def completion_order(self) -> list[TrialOutcome]:
        """The rows in the order the trials ended (unknown end times last, in rank order)."""
        indexed = list(enumerate(self.rows))
        indexed.sort(key=lambda item: (item[1].ended_ms is None, item[1].ended_ms or 0, item[0]))
        return [row for _, row in indexed]

    def text(self, top: int = CONSOLE_TOP) -> str:
        """What the console prints when a search ends: the ``top`` rows."""
        lines = [f"top {min(top, len(self.rows))} by {self.metric.name}:"]
        lines += [f"  {r.value:.5g}  {r.trial_id}  {_config_json(r.config)}" for r in self.rows[:top]]
        return "\n".join(lines)

    def markdown(self, title: str) -> str:
        """Every row as a Markdown table under the heading ``title``."""
        lines = [
            f"# {title}",
            "",
            f"{len(self.rows)} trials by {self.metric.name} ({self.metric.mode}), best first.",
            "",
            f"| rank | trial | run | {self.metric.name} | epoch | status | config |",
            "|---:|---|---|---:|---:|---|---|",
        ]
        for rank, r in enumerate(self.rows, start=1):
            epoch = "" if r.epoch is None else str(r.epoch)
            config = _config_json(r.config).replace("|", "\\|")
            lines.append(
                f"| {rank} | `{r.trial_id}` | `{r.run_id}` | {r.value:.6g} | {epoch} | {r.status} | `{config}` |"
            )
        return "\n".join(lines) + "\n"

    def table(self) -> pa.Table:
        """Every row as an Arrow table (``PARQUET_SCHEMA``)."""
        columns: dict[str, list[Any]] = {
            "rank": list(range(1, len(self.rows) + 1)),
            "trial_id": [r.trial_id for r in self.rows],
            "run_id": [r.run_id for r in self.rows],
            "value": [r.value for r in self.rows],
            "epoch": [r.epoch for r in self.rows],
            "status": [r.status for r in self.rows],
            "config": [_config_json(r.config) for r in self.rows],
        }
        return pa.table(columns, schema=PARQUET_SCHEMA)


def _config_json(config: Mapping[str, Any]) -> str:
    return json.dumps(redact_config(config), sort_keys=True, default=str)
