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
import logging
import math
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from orchestrator.errors import OrchestratorError, first_line
from orchestrator.redaction import redact_uri
from orchestrator.settings import TRACKING_URI_ENV, state_dir
from orchestrator.spaces.trials import RecordedTrial

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
    best_metric,
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


# How MLflow's REST client words a dropped connection and a refused request.
_DROPPED = re.compile(r"Connection aborted|Connection reset by peer|RemoteDisconnected")
_STATUS = re.compile(r"failed with error code (?P<code>\d{3}) != 200")
UNAUTHORIZED = 401
FORBIDDEN = 403
_STATUS_OF_CODE = {"UNAUTHENTICATED": UNAUTHORIZED, "PERMISSION_DENIED": FORBIDDEN}  # MLflow's error codes


class LoginRefused(TrackingError):
    """The tracking server answered 401: no login, or a wrong user or password."""


# MLflow's informational lines on opening a store ("Creating initial MLflow database tables...") and its schema
# migrations: not for the console of an ordinary command.
CHATTY_LOGGERS = ("alembic", "mlflow.store.db.utils", "mlflow.store.db", "mlflow.tracking")


def _quiet_mlflow() -> None:
    """Fail fast inside one call (the async logger does its own buffering and retries); no informational lines."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
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

    def score(self, metric: str) -> float | None:
        """The trial's value of ``metric``, the one rule for it: its best epoch's (``best_<metric>``, which the run
        logs when it ends), else the last value logged (a run that ended before it could log its best); None when it
        has neither or the value is not finite."""
        value = self.metrics.get(best_metric(metric), self.metrics.get(metric))
        return value if value is not None and math.isfinite(value) else None

    def prior(self, metric: str, others: Sequence[str] = ()) -> RecordedTrial:
        """The trial as warm start carries it: ``metric``'s final value and its per-epoch history, if known; with
        ``others`` (the other objectives and the constrained metrics of a version) their final values (None when
        not reported) and histories too."""
        names = [name for name in others if name != metric]
        return RecordedTrial(
            self.config,
            self.metrics.get(metric),
            self.history.get(metric, {}),
            self.status,
            self.version,
            self.run_id,
            values={name: self.metrics.get(name) for name in names},
            histories={name: self.history[name] for name in names if name in self.history},
        )


# Another process (an `mlflow ui` a teammate opened, a script) that creates the same fresh SQLite store at the same
# moment runs MLflow's schema migration beside ours, outside our lock, and one of the two fails in the middle of it
# ("no such column", "duplicate column", "table _alembic_tmp_... already exists"), leaving the file broken. So a new
# store is migrated in a private file and linked into place only if no file is there yet (``os.link`` never
# replaces one); a store some other process is still creating is waited for while it keeps changing.
MIGRATION_WAIT_S = 120.0  # the longest wait for a store another process is creating
MIGRATION_QUIET_S = 5.0  # a store unchanged this long is not being migrated: MLflow opens it as it is
MIGRATION_POLL_S = 0.5


def _ready_sqlite_store(db: Path) -> None:
    """Make sure the SQLite file ``db`` is a whole MLflow store before MLflow opens it (under our lock): created
    complete (a private migration, then an atomic link), or waited for while another process migrates it."""
    try:
        import sqlalchemy
        from mlflow.store.db import utils as db_utils

        head = db_utils._get_latest_schema_revision()
    except Exception:  # MLflow's private helpers moved: MLflow opens (and migrates) the store itself, as before
        return
    if not db.exists():
        private = db.with_name(f".{db.name}.{os.getpid()}-{secrets.token_hex(4)}.creating")
        engine = sqlalchemy.create_engine(f"sqlite:///{private}")
        try:
            db_utils._initialize_tables(engine)
            engine.dispose()
            with suppress(FileExistsError):  # created meanwhile by another process: it is waited for below
                os.link(private, db)
        finally:
            engine.dispose()
            private.unlink(missing_ok=True)
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    deadline = time.monotonic() + MIGRATION_WAIT_S
    try:
        while time.monotonic() < deadline:
            changed = db.stat().st_mtime
            with suppress(Exception):  # half-migrated: tables or the revision missing
                if db_utils._all_tables_exist(engine) and db_utils._get_schema_version(engine) == head:
                    return
            if time.time() - changed > MIGRATION_QUIET_S:
                return  # not being migrated by anyone: an older store, or a broken one; MLflow says which
            time.sleep(MIGRATION_POLL_S)
        raise TrackingError(
            f"the tracking store {db} was still being created by another process after "
            f"{MIGRATION_WAIT_S:.0f}s; try again once it has finished"
        )
    finally:
        engine.dispose()


def open_store(uri: str, *, create: bool = False) -> MlflowStore:
    """The tracking store at ``uri``, checked to answer. A local store (a SQLite file, a folder) must exist unless
    ``create`` (a command that writes runs): then its folder must, except orchestrator's own state folder
    (``settings.state_dir``), which is created. Nothing is created by a command that only reads."""
    check_store_location(uri, create)
    store = MlflowStore(uri)
    store.check_reachable()
    return store


def check_store_location(uri: str, create: bool) -> None:
    """Raise ``TrackingError`` in one line, before MLflow creates anything, for a local store that is missing
    (when not ``create``), whose folder is missing (not the state folder), or that lies under a file."""
    path = sqlite_path(uri)
    if path is None and urlparse(uri).scheme.lower() in FILE_SCHEMES and uri:
        path = Path(uri.removeprefix("file://"))  # MLflow's file store: a folder
    if path is None:
        return
    shown = describe_uri(uri)
    blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None and blocking != path:
        raise TrackingError(f"tracking store {shown}: {blocking} is a file, so {path} cannot be a store under it")
    if path.exists():
        return
    if not create:
        raise TrackingError(
            f"no tracking store at {path} ({shown}); check --tracking-uri or $MLFLOW_TRACKING_URI "
            "(a search creates the default store, .orchestrator/mlflow.db)"
        )
    folder = path.parent if sqlite_path(uri) is not None else path
    own = folder.resolve() == state_dir().resolve()
    if not folder.exists() and not own:
        raise TrackingError(
            f"tracking store {shown}: the folder {folder} does not exist; create it first "
            f"(orchestrator creates only its own {state_dir()})"
        )


@contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API (which ``mlflow.pytorch.log_model`` and ``mlflow.models`` use) pointed at ``uri`` for the
    block. Afterwards the global tracking URI and ``MLFLOW_TRACKING_URI`` are as before (``set_tracking_uri`` sets
    both; ``None`` unsets both)."""
    import mlflow

    environment = os.environ.get(TRACKING_URI_ENV)
    before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)
        if environment is None:
            os.environ.pop(TRACKING_URI_ENV, None)
        else:
            os.environ[TRACKING_URI_ENV] = environment


class MlflowStore:
    """Thin, synchronous adapter over ``MlflowClient``; the async logger calls it off the driver."""

    def __init__(self, tracking_uri: str):
        """Raises ``TrackingError`` for a URI MLflow cannot use (``check_tracking_uri``).

        ``tracking_uri`` may hold credentials, or be a URI :func:`keep_login` returned in this process.
        """
        check_tracking_uri(tracking_uri)
        _quiet_mlflow()
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri
        keep_login(tracking_uri)  # a callback pickled with the URI without credentials connects with them
        # MlflowClient opens the store at once; a fresh SQLite store is created (migrated) there.
        db = sqlite_path(tracking_uri)
        with sqlite_store_lock(db):
            if db is not None:
                _ready_sqlite_store(db)
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
                f"tracking server {describe_uri(self.uri)} is not reachable: {first_line(e)}. "
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
        running: bool = False,
    ) -> list[TrialRow]:
        """Every trial run of a study (optionally of one search, ended after a time, or still RUNNING).

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
        if running:
            filters.append("attributes.status = 'RUNNING'")
        return [_row(run) for run in self._search(exp, " and ".join(filters))]

    def searches(self, study: str, running: bool = False) -> list[Any]:
        """The search runs of ``study`` (MLflow ``Run`` objects), or only those still RUNNING."""
        exp = self.experiment_id(study, create=False)
        if exp is None:
            return []
        still = " and attributes.status = 'RUNNING'" if running else ""
        return list(self._search(exp, f"tags.`{KIND}` = '{SEARCH_RUN}'{still}"))

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


def history_tag(
    metric: str, history: Mapping[int, float], more: Mapping[str, Mapping[int, float]] | None = None
) -> str | None:
    """The value of a trial's ``METRIC_HISTORY`` tag: ``metric``'s finite values by epoch as compact JSON; with
    ``more`` (a search of several objectives or constraints: the other names' values by epoch) also theirs at the
    same epochs (``"more": {name: [value or null, ...]}``), so warm start knows every objective at every rung.

    Full precision when it fits MLflow's tag limit, else ``HISTORY_DIGITS`` significant digits (about 500 epochs
    fit for one metric); ``more`` is left out when it does not fit even so; None when there is no finite value or it
    does not fit (warm start then counts the trial final).
    """
    points = sorted((int(epoch), float(value)) for epoch, value in history.items() if math.isfinite(value))
    if not points:
        return None
    epochs = [epoch for epoch, _ in points]
    exact = [value for _, value in points]
    others = {
        name: [values.get(e) if values.get(e) is not None and math.isfinite(values[e]) else None for e in epochs]
        for name, values in (more or {}).items()
    }
    rounded = {
        name: [None if v is None else float(f"{v:.{HISTORY_DIGITS}g}") for v in vs] for name, vs in others.items()
    }
    shortened = [float(f"{v:.{HISTORY_DIGITS}g}") for v in exact]
    for values, extra in ((exact, others), (shortened, rounded), (shortened, {})):
        record: dict[str, Any] = {"metric": metric, "epochs": epochs, "values": values}
        if extra:
            record["more"] = extra
        text = json.dumps(record, separators=(",", ":"))
        if len(text) <= MAX_TAG_LENGTH:
            return text
    return None


def read_history_tag(text: str | None) -> dict[str, History]:
    """``{metric: {epoch: value}}`` from a ``METRIC_HISTORY`` tag's value (every metric it holds); empty for none or
    one that is not one."""
    if not text:
        return {}
    try:
        record = json.loads(text)
        epochs = [int(e) for e in record["epochs"]]
        history = {e: float(v) for e, v in zip(epochs, record["values"], strict=True)}
        out = {str(record["metric"]): history}
        for name, values in (record.get("more") or {}).items():
            out[str(name)] = {e: float(v) for e, v in zip(epochs, values, strict=True) if v is not None}
        return out
    except (ValueError, TypeError, KeyError, AttributeError):
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
