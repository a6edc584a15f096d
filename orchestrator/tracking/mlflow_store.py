"""MLflow as the trial store: one experiment per study, a parent run per search, a child run per trial.

Layout (what the MLflow UI shows):

* experiment ``<study>``;
* parent run ``<study> v<N> <time>`` with tag ``orchestrator.kind=search``, the space file
  as params, the carry-over report (``orchestrator.carry``), the leaderboard at the end;
* child run per trial (tag ``mlflow.parentRunId``) with params as real values under
  flattened paths (``optimizer.momentum``), per-epoch metrics with ``step``, tags
  ``orchestrator.{study,version,space_hash,trial_id,config}`` and the final status
  (FINISHED, FAILED with ``orchestrator.failure``, KILLED).

Credentials for a team server come from MLflow's own environment variables
(``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` / ``MLFLOW_TRACKING_TOKEN``);
they are never logged or printed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from orchestrator.errors import OrchestratorError
from orchestrator.spaces.carry import PriorTrial

TAG = "orchestrator."
KIND, STUDY, VERSION, HASH = TAG + "kind", TAG + "study", TAG + "version", TAG + "space_hash"
TRIAL_ID, CONFIG, FAILURE, SEARCH_NAME = TAG + "trial_id", TAG + "config", TAG + "failure", TAG + "search"
PARENT = "mlflow.parentRunId"
MAX_PARAM_LENGTH = 6000


class TrackingError(OrchestratorError):
    """The tracking server cannot be used (unreachable, refused, misconfigured)."""


def _quiet_http_retries() -> None:
    """Fail fast inside one call: the async logger does its own buffering and retries."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    # MLflow prints "View run ..." links on every set_terminated; the live view is ours.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def describe_uri(uri: str) -> str:
    """The URI without credentials, for messages."""
    parsed = urlparse(uri)
    if parsed.password or parsed.username:
        host = parsed.hostname or ""
        port = f":{parsed.port}" if parsed.port else ""
        return parsed._replace(netloc=f"{host}{port}").geturl()
    return uri


@dataclass(frozen=True)
class TrialRow:
    """One trial as stored: what the ledger exports and what warm start reads."""

    run_id: str
    study: str
    version: int | None
    space_hash: str
    trial_id: str
    status: str
    config: dict[str, Any]
    metrics: dict[str, float]
    start_time: int | None
    end_time: int | None
    parent_run_id: str

    def prior(self, metric: str) -> PriorTrial:
        return PriorTrial(self.config, self.metrics.get(metric), self.status, self.version, self.run_id)


class MlflowStore:
    """Thin, synchronous adapter over ``MlflowClient``; the async logger calls it off the driver."""

    def __init__(self, tracking_uri: str):
        _quiet_http_retries()
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)

    # ------------------------------------------------------------------ checks

    def check_reachable(self) -> None:
        """Raise ``TrackingError`` naming the URI when the store cannot be used."""
        try:
            self.client.search_experiments(max_results=1)
        except Exception as e:  # connection refused, DNS, 401, 500 ...
            raise TrackingError(
                f"tracking server {describe_uri(self.uri)} is not reachable: {_short(e)}. "
                "Start it, fix --tracking-uri, or set MLFLOW_TRACKING_USERNAME/PASSWORD for a protected server."
            ) from None

    # ------------------------------------------------------------------ experiments and runs

    def experiment_id(self, study: str, create: bool = True) -> str | None:
        exp = self.client.get_experiment_by_name(study)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        if not create:
            return None
        try:
            return self.client.create_experiment(study, tags={TAG + "study": study})
        except Exception:  # created concurrently by another driver
            exp = self.client.get_experiment_by_name(study)
            if exp is None:
                raise
            return exp.experiment_id

    def create_run(self, experiment_id: str, name: str, tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
        run = self.client.create_run(experiment_id, run_name=name, tags=dict(tags))
        if params:
            self.log_batch(run.info.run_id, params=params)
        return run.info.run_id

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[tuple[str, float, int, int]] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Metrics are ``(key, value, timestamp_ms, step)``; split to MLflow's per-call limits."""
        from mlflow.entities import Metric, Param, RunTag

        ms = [Metric(k, float(v), int(t), int(s)) for k, v, t, s in metrics]
        ps = [Param(k, _param_text(v)) for k, v in (params or {}).items()]
        ts = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        while ms or ps or ts:
            self.client.log_batch(run_id, metrics=ms[:1000], params=ps[:100], tags=ts[:100])
            ms, ps, ts = ms[1000:], ps[100:], ts[100:]

    def end_run(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status=status, end_time=int(time.time() * 1000))

    def reopen_run(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    def metric_steps(self, run_id: str, key: str) -> int:
        """The highest step logged for ``key`` (-1 when none)."""
        history = self.client.get_metric_history(run_id, key)
        return max((m.step for m in history), default=-1)

    # ------------------------------------------------------------------ reading trials

    def _search(self, experiment_id: str, filter_string: str) -> Iterator[Any]:
        from mlflow.entities import ViewType

        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id], filter_string, ViewType.ACTIVE_ONLY, max_results=1000, page_token=token
            )
            yield from page
            token = page.token
            if not token:
                return

    def trials(
        self, study: str, *, parent_run_id: str | None = None, ended_after_ms: int | None = None
    ) -> list[TrialRow]:
        """Every trial run of a study (optionally of one search, or ended after a time)."""
        exp = self.experiment_id(study, create=False)
        if exp is None:
            return []
        filters = [f"tags.`{KIND}` = 'trial'"]
        if parent_run_id:
            filters.append(f"tags.`{PARENT}` = '{parent_run_id}'")
        if ended_after_ms is not None:
            filters.append(f"attributes.end_time > {int(ended_after_ms)}")
        return [_row(run) for run in self._search(exp, " and ".join(filters))]

    def searches(self, study: str) -> list[Any]:
        exp = self.experiment_id(study, create=False)
        return [] if exp is None else list(self._search(exp, f"tags.`{KIND}` = 'search'"))


def _row(run: Any) -> TrialRow:
    tags = run.data.tags
    try:
        config = json.loads(tags.get(CONFIG, "{}"))
    except json.JSONDecodeError:
        config = {}
    version = tags.get(VERSION)
    return TrialRow(
        run_id=run.info.run_id,
        study=tags.get(STUDY, ""),
        version=int(version) if version and version.isdigit() else None,
        space_hash=tags.get(HASH, ""),
        trial_id=tags.get(TRIAL_ID, ""),
        status=run.info.status,
        config=config,
        metrics=dict(run.data.metrics),
        start_time=run.info.start_time,
        end_time=run.info.end_time,
        parent_run_id=tags.get(PARENT, ""),
    )


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, list | dict) else str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) < 300 else text[:297] + "..."
