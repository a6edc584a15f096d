"""MLflow as the trial store: one experiment per study, a parent run per search, a child run per trial.

Layout (what the MLflow UI shows): experiment ``<study>``; a parent run ``<study> v<N> <time>``
per search; a nested child run per trial. Every tag, param and metric name is in ``schema``.

Credentials for a team server come from MLflow's own environment variables
(``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` / ``MLFLOW_TRACKING_TOKEN``) or from
the URI; they are never logged or printed, and objects keep the URI without them (``keep_login``).

A tracking URI is checked before MLflow sees it (``check_tracking_uri``): a scheme MLflow has no
store for, or a database store whose driver package is missing, is one line naming the fix.
A local SQLite store is created under an inter-process lock (``<db>.lock``): two drivers opening
a fresh store at once would otherwise both run MLflow's schema migration and one would crash.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from orchestrator.errors import OrchestratorError
from orchestrator.redaction import redact_text, redact_uri
from orchestrator.spaces.carry import PriorTrial

from .schema import (
    CONFIG,
    HASH,
    KIND,
    LEDGER_AS_OF,
    METRIC_HISTORY,
    PARENT,
    SEARCH_RUN,
    STUDY,
    TRIAL_ID,
    TRIAL_RUN,
    VERSION,
)

MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000  # MLflow's limit on a tag's value (``mlflow.utils.validation.MAX_TAG_VAL_LENGTH``)
# A history too long for a tag at full precision is written with this many significant digits (float32's).
HISTORY_DIGITS = 7

T = TypeVar("T")
History = dict[int, float]  # epoch (the step a metric is logged at) -> the metric's value then

# Tracking-URI schemes MLflow has a store for. Database stores are SQLAlchemy URIs, ``dialect[+driver]://``:
# each maps to the module SQLAlchemy imports for it and the package that provides the module.
SERVER_SCHEMES = ("http", "https", "databricks")
FILE_SCHEMES = ("", "file")  # MLflow's file store: a folder


def _sqlalchemy_default_postgresql() -> tuple[str, str]:
    """The driver SQLAlchemy uses for a plain ``postgresql://``: psycopg (3) from SQLAlchemy 2.1 on, psycopg2 before."""
    try:
        major, minor = (int(part) for part in importlib.metadata.version("sqlalchemy").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        major, minor = 2, 1
    return ("psycopg", "psycopg[binary]") if (major, minor) >= (2, 1) else ("psycopg2", "psycopg2-binary")


DATABASE_DRIVERS: dict[str, tuple[str, str]] = {
    "sqlite": ("", ""),  # built into Python
    "postgresql": _sqlalchemy_default_postgresql(),
    "postgresql+psycopg2": ("psycopg2", "psycopg2-binary"),
    "postgresql+psycopg": ("psycopg", "psycopg[binary]"),
    "postgresql+pg8000": ("pg8000", "pg8000"),
    "mysql": ("MySQLdb", "mysqlclient"),
    "mysql+mysqldb": ("MySQLdb", "mysqlclient"),
    "mysql+pymysql": ("pymysql", "pymysql"),
    "mssql": ("pyodbc", "pyodbc"),
    "mssql+pyodbc": ("pyodbc", "pyodbc"),
}
SQLITE_PREFIX = "sqlite:///"
SQLITE_LOCK_SUFFIX = ".lock"  # the lock file next to a SQLite store


class TrackingError(OrchestratorError):
    """The tracking server cannot be used (unreachable, refused, misconfigured)."""


class LoginRefused(TrackingError):
    """The tracking server answered 401: no login, or a wrong user or password."""


def _quiet_http_retries() -> None:
    """Fail fast inside one call: the async logger does its own buffering and retries."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    # MLflow prints "View run ..." links on every set_terminated; the live view is ours.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # the ledger artifact's download


def check_tracking_uri(uri: str) -> None:
    """Raise ``TrackingError`` in one line for a scheme MLflow has no store for or a missing database driver."""
    scheme = urlparse(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter: a folder
        scheme = ""
    if scheme in SERVER_SCHEMES or scheme in FILE_SCHEMES:
        return
    dialect = scheme.partition("+")[0]
    if dialect not in DATABASE_DRIVERS:
        raise TrackingError(
            f"tracking URI {describe_uri(uri)}: unknown scheme {scheme!r}; use http(s)://host:port (an MLflow "
            "server), sqlite:///path.db, postgresql://, mysql://, mssql:// (a database) or a folder"
        )
    module, package = DATABASE_DRIVERS.get(scheme, ("", ""))
    if module and importlib.util.find_spec(module) is None:
        raise TrackingError(
            f"tracking URI {describe_uri(uri)}: a {dialect} store needs the Python package {package!r} "
            f"(module {module}), which is not installed: pip install {package}"
        )


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` store; None for other stores and an in-memory database."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    path = uri.removeprefix(SQLITE_PREFIX).partition("?")[0]
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def sqlite_store_lock(path: Path | None) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``<path>.lock`` (nothing for None); makes the store's folder."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}{SQLITE_LOCK_SUFFIX}", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def describe_uri(uri: str) -> str:
    """The URI without credentials, for messages (the one rule: ``orchestrator.redaction``)."""
    return redact_uri(uri)


_LOGINS: dict[str, str] = {}  # a URI without credentials -> the URI it came from: this process's memory only


def keep_login(uri: str) -> str:
    """``uri`` without credentials, whose login this process keeps for :func:`with_login`.

    What is pickled or written (the tracking callback in Ray Tune's state, ``orchestrator.json``) holds
    only the returned URI; a new driver gets the login again from the URI it is given, or MLflow's
    ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` / ``MLFLOW_TRACKING_TOKEN``.
    """
    clean = redact_uri(uri)
    if clean != uri:
        _LOGINS[clean] = uri
    return clean


def with_login(uri: str) -> str:
    """The URI to connect with: ``uri`` with the login :func:`keep_login` kept for it in this process, if any."""
    return _LOGINS.get(uri, uri)


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
    # metric -> its value per epoch, as far as the run recorded it (``METRIC_HISTORY``); empty when unknown
    history: Mapping[str, History] = field(default_factory=dict)

    def prior(self, metric: str) -> PriorTrial:
        """The trial as warm start carries it: ``metric``'s final value and its per-epoch history, if known."""
        return PriorTrial(
            self.config, self.metrics.get(metric), self.status, self.version, self.run_id, self.history.get(metric)
        )


class MlflowStore:
    """Thin, synchronous adapter over ``MlflowClient``; the async logger calls it off the driver."""

    def __init__(self, tracking_uri: str):
        """Raises ``TrackingError`` for a URI MLflow cannot use (``check_tracking_uri``).

        ``tracking_uri`` may hold credentials, or be a URI :func:`keep_login` returned in this process.
        """
        check_tracking_uri(tracking_uri)
        _quiet_http_retries()
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri
        keep_login(tracking_uri)  # a callback pickled with the URI without credentials connects with them
        # MlflowClient opens the store at once; a fresh SQLite store is created (migrated) there.
        with sqlite_store_lock(sqlite_path(tracking_uri)):
            self.client = MlflowClient(tracking_uri=with_login(tracking_uri))

    # ------------------------------------------------------------------ checks

    def check_reachable(self) -> None:
        """Raise ``TrackingError`` naming the URI when the store cannot be used; a refused login is its own line."""
        try:
            self.client.search_experiments(max_results=1)
        except Exception as e:  # connection refused, DNS, 401, 500 ...
            if http_status(e) == UNAUTHORIZED:
                raise LoginRefused(
                    f"tracking server {describe_uri(self.uri)} refused the login{_of(login_user(self.uri))} "
                    "(401 Unauthorized): check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                ) from None
            raise TrackingError(
                f"tracking server {describe_uri(self.uri)} is not reachable: {short_error(e)}. "
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
            return self.client.create_experiment(
                study, artifact_location=self._artifact_location(study), tags={STUDY: study}
            )
        except Exception:  # created concurrently by another driver
            exp = self.client.get_experiment_by_name(study)
            if exp is None:
                raise
            return exp.experiment_id

    def _artifact_location(self, study: str) -> str | None:
        """Beside a ``sqlite:///`` store (``<db folder>/artifacts/<study>``), not in ``./mlruns`` of whatever
        folder the process runs in (MLflow's default there); a server or other store decides for itself."""
        db = sqlite_path(self.uri)
        return (db.resolve().parent / "artifacts" / study).as_uri() if db is not None else None

    def create_run(self, experiment_id: str, name: str, tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
        """A new RUNNING run; if its params cannot be logged, the run is ended FAILED (never left RUNNING)."""
        run_id = self.client.create_run(experiment_id, run_name=name, tags=dict(tags)).info.run_id
        if params:
            try:
                self.log_batch(run_id, params=params)
            except Exception:
                with suppress(Exception):  # the store is failing already; the caller gets the first error
                    self.end_run(run_id, "FAILED")
                raise
        return run_id

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
            batch = {"metrics": ms[:1000], "params": ps[:100], "tags": ts[:100]}
            resend_on_dropped_connection(lambda b=batch: self.client.log_batch(run_id, **b))
            ms, ps, ts = ms[1000:], ps[100:], ts[100:]

    def end_run(self, run_id: str, status: str) -> None:
        end = int(time.time() * 1000)
        resend_on_dropped_connection(lambda: self.client.set_terminated(run_id, status=status, end_time=end))

    def reopen_run(self, run_id: str) -> None:
        self.client.update_run(run_id, status="RUNNING")

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove the tag ``key`` from the run if it has it."""
        if key in self.client.get_run(run_id).data.tags:
            self.client.delete_tag(run_id, key)

    def metric_steps(self, run_id: str, key: str) -> int:
        """The highest step logged for ``key`` (-1 when none)."""
        history = self.client.get_metric_history(run_id, key)
        return max((m.step for m in history), default=-1)

    def metric_history(self, run_id: str, key: str) -> History:
        """``{step: value}`` of ``key`` on the run (one request); see :func:`per_step`."""
        return per_step(self.client.get_metric_history(run_id, key))

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
        self,
        study: str,
        *,
        parent_run_id: str | None = None,
        ended_after_ms: int | None = None,
        kind: str = TRIAL_RUN,
    ) -> list[TrialRow]:
        """Every trial run of a study (optionally of one search, or ended after a time).

        ``kind``: the runs' ``KIND``; ``TRAINING_RUN`` reads the nested runs of trains instead, which a search's
        warm start never sees."""
        exp = self.experiment_id(study, create=False)
        if exp is None:
            return []
        filters = [f"tags.`{KIND}` = '{kind}'"]
        if parent_run_id:
            filters.append(f"tags.`{PARENT}` = '{parent_run_id}'")
        if ended_after_ms is not None:
            filters.append(f"attributes.end_time > {int(ended_after_ms)}")
        return [_row(run) for run in self._search(exp, " and ".join(filters))]

    def searches(self, study: str) -> list[Any]:
        exp = self.experiment_id(study, create=False)
        return [] if exp is None else list(self._search(exp, f"tags.`{KIND}` = '{SEARCH_RUN}'"))

    # ------------------------------------------------------------------ the ledger artifact

    def newest_ledger(self, study: str) -> tuple[str, int] | None:
        """The search run of ``study`` whose ledger artifact is the newest, and its as-of time (ms); one request.

        The tag is ordered as text, which is the order of time for every 13-digit millisecond count (2001-2286).
        """
        from mlflow.entities import ViewType

        exp = self.experiment_id(study, create=False)
        if exp is None:
            return None
        runs = self.client.search_runs(
            [exp],
            f"tags.`{KIND}` = '{SEARCH_RUN}' and tags.`{LEDGER_AS_OF}` IS NOT NULL",
            ViewType.ACTIVE_ONLY,
            max_results=1,
            order_by=[f"tags.`{LEDGER_AS_OF}` DESC"],
        )
        if not runs:
            return None
        as_of = runs[0].data.tags[LEDGER_AS_OF]
        return (runs[0].info.run_id, int(as_of)) if as_of.isdigit() else None

    def log_artifact(self, run_id: str, local_path: Path, artifact_path: str) -> None:
        """Upload the file ``local_path`` as ``<artifact_path>/<its name>`` of the run."""
        resend_on_dropped_connection(lambda: self.client.log_artifact(run_id, str(local_path), artifact_path))

    def download_artifact(self, run_id: str, path: str, dst: Path) -> Path:
        """The run's artifact ``path``, downloaded under the folder ``dst``."""
        return Path(self.client.download_artifacts(run_id, path, str(dst)))


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
        history=read_history_tag(tags.get(METRIC_HISTORY)),
    )


def resend_on_dropped_connection(call: Callable[[], T]) -> T:
    """``call()``, made once more when it failed on a connection the server had dropped (reset or aborted before an
    answer): a server that failed a request mid-upload (an artifact store down behind it) or closed an idle kept-alive
    connection leaves one in the client's pool, and MLflow's client, told not to retry, fails the next request on it.
    Any other failure, and a second one, is raised."""
    try:
        return call()
    except Exception as e:
        if not _DROPPED.search(str(e)):
            raise
    return call()


def per_step(points: Iterable[Any]) -> History:
    """MLflow metric points (``step``, ``timestamp``, ``value``) as ``{step: value}``; the newest value of a step wins
    (a retried or resumed trial may log a step again)."""
    return {int(m.step): float(m.value) for m in sorted(points, key=lambda m: (m.step, m.timestamp))}


def history_tag(metric: str, history: Mapping[int, float]) -> str | None:
    """The value of a trial's ``METRIC_HISTORY`` tag: ``metric``'s finite values by epoch as compact JSON.

    Full precision when it fits MLflow's tag limit, else ``HISTORY_DIGITS`` significant digits (about 500 epochs
    fit); None when there is no finite value or it does not fit even so (warm start then counts the trial final).
    """
    points = sorted((int(epoch), float(value)) for epoch, value in history.items() if math.isfinite(value))
    if not points:
        return None
    epochs = [epoch for epoch, _ in points]
    exact = [value for _, value in points]
    for values in (exact, [float(f"{v:.{HISTORY_DIGITS}g}") for v in exact]):
        text = json.dumps({"metric": metric, "epochs": epochs, "values": values}, separators=(",", ":"))
        if len(text) <= MAX_TAG_LENGTH:
            return text
    return None


def read_history_tag(text: str | None) -> dict[str, History]:
    """``{metric: {epoch: value}}`` from a ``METRIC_HISTORY`` tag's value; empty for none or one that is not one."""
    if not text:
        return {}
    try:
        record = json.loads(text)
        history = {int(e): float(v) for e, v in zip(record["epochs"], record["values"], strict=True)}
        return {str(record["metric"]): history}
    except (ValueError, TypeError, KeyError):
        return {}


def login_user(uri: str) -> str | None:
    """Who a client of ``uri`` logs in as: the user in the URI (or the one :func:`keep_login` kept for it), else
    ``MLFLOW_TRACKING_USERNAME``; None without a login."""
    return urlparse(with_login(uri)).username or os.environ.get("MLFLOW_TRACKING_USERNAME") or None


def _of(user: str | None) -> str:
    return f" of user {user!r}" if user else " (no user given)"


def http_status(error: BaseException) -> int | None:
    """The HTTP status an MLflow request failed with (its error code, or ``... failed with error code 401 != 200``)."""
    status = _STATUS_OF_CODE.get(str(getattr(error, "error_code", "")))
    if status is not None:
        return status
    match = _STATUS.search(str(error))
    return int(match["code"]) if match else None


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, list | dict) else str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


# MLflow's REST client wraps a connection error in one long line; its cause is what to show.
_DROPPED = re.compile(r"Connection aborted|Connection reset by peer|RemoteDisconnected")
_STATUS = re.compile(r"failed with error code (?P<code>\d{3}) != 200")
UNAUTHORIZED = 401
FORBIDDEN = 403
_STATUS_OF_CODE = {"UNAUTHENTICATED": UNAUTHORIZED, "PERMISSION_DENIED": FORBIDDEN}  # MLflow's error codes
_MLFLOW_REQUEST = re.compile(r"^API request to (?P<url>\S+) failed with exception (?P<cause>.*)$")
_CONNECTION_CAUSE = re.compile(
    r"\[Errno -?\d+\] [^\"')]+|Read timed out|Connection aborted|Connection reset by peer"
    r"|too many \d{3} error responses"
)


def short_error(e: BaseException) -> str:
    """One short line for an error, without credentials: its first line, or what an MLflow request failed on."""
    text = redact_text(str(e).strip().splitlines()[0]) if str(e).strip() else type(e).__name__
    request = _MLFLOW_REQUEST.match(text)
    if request is not None:
        cause = _CONNECTION_CAUSE.search(request["cause"])
        text = f"request to {describe_uri(request['url'])} failed: {cause.group(0) if cause else request['cause']}"
    return text if len(text) < 300 else text[:297] + "..."
