"""The parent run of a search or a train: its tags and params, its metrics, and its end on every path.

From the moment the parent run exists, every failure ends it FAILED or KILLED with ``orchestrator.end_reason``
(``closes_parent_on_failure``; docs/reliability.md): a run is never left RUNNING by a driver that is still alive.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from orchestrator.console import Echo
from orchestrator.errors import OrchestratorError, failure_line, first_line
from orchestrator.spaces import StudyVersion
from orchestrator.spaces.carry import CarryReport
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import MlflowStore, TrackingError

from .ray_job import ray_job_id, with_stop_cause


class RunFailed(OrchestratorError):
    """The run failed for ``reason``, which its parent run records as it is (the message may say more)."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


class SearchEndNotRecorded(TrackingError):
    """The trials ran, but the tracking server could not be told the run ended (``resume`` does it later)."""


@contextmanager
def closes_parent_on_failure(store: MlflowStore, parent_run_id: str, echo: Echo) -> Iterator[None]:
    """Close the parent run when the block raises: KILLED for Ctrl-C, FAILED otherwise, with ``END_REASON``.

    ``SearchEndNotRecorded`` leaves the run alone: the server is gone, and ``resume`` finishes it.
    """
    try:
        yield
    except SearchEndNotRecorded:
        raise
    except KeyboardInterrupt:
        end_parent(store, parent_run_id, "KILLED", "interrupted (Ctrl-C)", echo)
        raise
    except BaseException as e:
        end_parent(store, parent_run_id, "FAILED", e.reason if isinstance(e, RunFailed) else failure_line(e), echo)
        raise


def end_parent(store: MlflowStore, parent_run_id: str, status: str, reason: str, echo: Echo) -> None:
    """End the parent run with ``status`` and ``reason``; a store that cannot be reached is told in one line."""
    reason = with_stop_cause(reason)  # a driver stopped by SIGTERM (a cancelled Ray job) says so first
    try:
        store.log_batch(parent_run_id, tags={schema.END_REASON: reason})
        store.end_run(parent_run_id, status)
    except Exception as e:  # already failing: report, never mask the error being raised
        echo(f"tracking: could not mark the search's run {parent_run_id} {status} ({first_line(e)})")


def run_tags(
    kind: str, recorded: StudyVersion, experiment_uri: str, note: str, extra: Mapping[str, str]
) -> dict[str, str]:
    """The tags of a parent run of ``kind`` for the space version ``recorded``, with the run's own ``extra`` (and the
    Ray job it runs in, when it is a job's entrypoint)."""
    job = ray_job_id()
    return ({schema.RAY_JOB_ID: job} if job else {}) | {
        schema.KIND: kind,
        schema.STUDY: recorded.study,
        schema.VERSION: str(recorded.version),
        schema.HASH: recorded.content_hash,
        schema.EXPERIMENT_PATH: experiment_uri,
        schema.NOTE: note,
        **extra,
    }


def run_params(recorded: StudyVersion, planned: int, concurrency: int, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The params of a parent run: the space version it records, the sizes, and the run's own ``extra``."""
    return {
        schema.SPACE_STUDY: recorded.study,
        schema.SPACE_VERSION: recorded.version,
        schema.SPACE_HASH: recorded.content_hash,
        schema.SPACE_PARENT: recorded.parent,
        schema.PARAM_TRAINABLE: recorded.trainable,
        schema.PARAM_METRIC: recorded.metric.name,
        schema.PARAM_MODE: recorded.metric.mode,
        schema.PARAM_TRIALS: planned,
        schema.PARAM_CONCURRENCY: concurrency,
        **goal_params(recorded),
        **extra,
    }


def goal_params(recorded: StudyVersion) -> dict[str, str]:
    """Several objectives and constraints as params (``report`` and ``train`` read a study's goals back from its
    searches); nothing for a version of one metric without constraints, whose params stay as they were."""
    params = {}
    if recorded.objectives:
        params[schema.PARAM_OBJECTIVES] = json.dumps([{"name": m.name, "mode": m.mode} for m in recorded.objectives])
    if recorded.constraints:
        params[schema.PARAM_CONSTRAINTS] = json.dumps({c.name: c.spec() for c in recorded.constraints}, sort_keys=True)
    return params


def carry_tags(report: CarryReport) -> dict[str, str]:
    return {schema.CARRY: json.dumps(report.as_dict())}


def log_carry(store: MlflowStore, parent: str, report: CarryReport, carry_s: float) -> None:
    now = int(time.time() * 1000)
    store.log_batch(
        parent,
        metrics=[
            (schema.CARRIED_TRIALS, len(report.carried), now, 0),
            (schema.DROPPED_TRIALS, sum(report.dropped.values()), now, 0),
            (schema.WARM_START_S, carry_s, now, 0),
        ],
    )


def log_counts(
    store: MlflowStore,
    parent: str,
    metric: str,
    finished: int,
    failed: int,
    wall_s: float,
    best_value: float | None,
    best_config: Mapping[str, Any],
) -> None:
    """The counts, the wall time and the best value and values on a parent run."""
    now = int(time.time() * 1000)
    metrics = [
        (schema.FINISHED_TRIALS, finished, now, 0),
        (schema.FAILED_TRIALS, failed, now, 0),
        (schema.SEARCH_WALL_S, wall_s, now, 0),
    ]
    if best_value is not None:
        metrics.append((schema.best_metric(metric), best_value, now, 0))
    store.log_batch(parent, metrics=metrics, tags={schema.BEST_CONFIG: json.dumps(best_config, sort_keys=True)})
