"""Run searches on any Ray cluster through its Jobs API: ``submit --ray-address`` and ``jobs ... --ray-address``.

For a cluster without Kubernetes (``ray up``, or ``ray start`` on machines of one's own), through Ray's
Job Submission SDK (``ray.job_submission.JobSubmissionClient``) and the job server on the head's
dashboard port (8265; ``ray start --head`` serves it when Ray's dashboard is installed, ``ray[default]``).

* **What travels**: the space file and every ``vN.yaml`` beside it (``bundle.SpaceBundle``, as for a
  RayJob), as the job's ``working_dir`` (``<study>/vN.yaml``, nothing else), the entrypoint
  ``orchestrator run <study>/<file> --address auto --trials N --tracking-uri URI`` (``rayjob.run_arguments``:
  the same command a RayJob runs), ``RAY_JOB_STOP_WAIT_TIME_S`` (how long a stopped search has to close
  its run), and metadata naming the study, version, space and tracking URI. No credential: the tracking
  URI loses any ``user:password@`` (``rayjob.pod_tracking_uri``; a database store's login is refused), and
  nothing is read from the submitting shell's environment. The job reads its MLflow login from the
  cluster's own environment (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` where
  ``ray start`` ran on the head), and runs the ``orchestrator`` on the head's ``PATH``.
* **Job and run point at each other**: the job's id is chosen here (``<study>-v<N>-<random>``); the
  search reads it from the environment Ray sets for a job's driver and tags its parent run with it
  (``orchestrator.ray_job_id``); its log names the parent run; ``jobs status`` shows the run found by the tag.
* **Token authentication**: the SDK sends the token of Ray's own variables (``RAY_AUTH_MODE=token`` and
  ``RAY_AUTH_TOKEN_PATH`` or ``RAY_AUTH_TOKEN``) as a header; a refusal is one line naming what to set
  (``engine.ray_auth``), before anything is submitted. The token is never printed or submitted.
* **Cancel**: ``stop_job`` sends the driver SIGTERM; the search ends its run KILLED with the reason
  (``engine.ray_job``); once the job has stopped, a run still RUNNING (a driver killed before it could)
  is ended KILLED here, with the command to resume it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.cluster import names
from orchestrator.cluster.backend import JobReport, JobTable, Problem, SearchRun, end_search_run, search_run
from orchestrator.cluster.bundle import SpaceBundle
from orchestrator.cluster.errors import ClusterError
from orchestrator.cluster.rayjob import pod_tracking_uri, run_arguments, shell_command
from orchestrator.errors import first_line
from orchestrator.redaction import redact_text, redact_uri

T = TypeVar("T")

STOP_WAIT_S = 60  # RAY_JOB_STOP_WAIT_TIME_S: SIGTERM, then SIGKILL this many seconds later
CANCEL_WAIT_S = STOP_WAIT_S + 30  # how long `jobs cancel` waits for the job to stop
POLL_S = 0.5
MARK_KEY, MARK_VALUE = "orchestrator", "search"  # metadata of the jobs `submit` makes
HEAD_HINT = (
    "the Jobs API is the head's dashboard port, e.g. http://HEAD:8265; Ray serves it when the head runs "
    "`ray start --head --dashboard-host=<its address>` with Ray's dashboard installed "
    "(pip install 'orchestrator[ray-head]')"
)
_URL = re.compile(r"^https?://[^/?#\s]+/?$")
_QUIET_LOGGERS = (  # "Uploading package ...", "WebSocket closed ...": not our output
    "ray.dashboard.modules.dashboard_sdk",
    "ray.dashboard.modules.job.sdk",
    "ray._private.runtime_env.packaging",
)


def check_address(address: str) -> str:
    """``--ray-address``: the head's Jobs API URL (``http(s)://host:port``), without a login; returns it."""
    if redact_uri(address) != address:
        raise ClusterError(
            f"--ray-address {redact_uri(address)}: a login in the address is never sent; Ray authenticates with "
            "its token (RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN)"
        )
    if not _URL.match(address):
        raise ClusterError(f"--ray-address {address!r} is not a URL; {HEAD_HINT}")
    return address.rstrip("/")


# --------------------------------------------------------------------------- the submission (pure)


@dataclass(frozen=True)
class RayJobOptions:
    """Everything about a Ray Jobs submission that is not in the space file."""

    address: str
    tracking_uri: str
    trials: int | None = None
    concurrency: int | None = None
    storage: str | None = None


@dataclass(frozen=True)
class RaySubmission:
    """What ``submit --ray-address`` sends: the job's id, entrypoint, environment, metadata and files."""

    submission_id: str
    entrypoint: str
    env_vars: dict[str, str]
    metadata: dict[str, str]
    files: Mapping[str, str] = field(repr=False)  # path inside the working_dir -> text

    def runtime_env(self, working_dir: Path) -> dict[str, Any]:
        return {"working_dir": str(working_dir), "env_vars": dict(self.env_vars)}

    def describe(self, address: str) -> dict[str, Any]:
        """Everything sent, for ``--dry-run`` (the files under ``working_dir``)."""
        return {
            "address": redact_uri(address),
            "submission_id": self.submission_id,
            "entrypoint": self.entrypoint,
            "runtime_env": {"working_dir": dict(sorted(self.files.items())), "env_vars": dict(self.env_vars)},
            "metadata": dict(self.metadata),
        }


def build_ray_submission(bundle: SpaceBundle, opts: RayJobOptions, suffix: str | None = None) -> RaySubmission:
    """The Ray job that runs ``bundle``'s search on the cluster as ``opts`` say."""
    if opts.trials is not None and opts.trials < 1:
        raise ClusterError(f"--trials must be >= 1, got {opts.trials}")
    tracking_uri = pod_tracking_uri(opts.tracking_uri)
    job_id = names.rayjob_name(bundle.study, bundle.version, suffix or names.random_suffix())
    trials = opts.trials or bundle.trials
    concurrency = opts.concurrency or bundle.concurrency
    args = run_arguments(f"{bundle.study}/{bundle.file_name}", trials, tracking_uri, concurrency, opts.storage)
    metadata = {
        MARK_KEY: MARK_VALUE,
        "study": bundle.study,
        "version": str(bundle.version),
        "space_hash": bundle.short_hash,
        "space_file": bundle.source or bundle.file_name,
        "trials": str(trials),
        "tracking_uri": tracking_uri,
    }
    return RaySubmission(
        submission_id=job_id,
        entrypoint=shell_command(args),
        env_vars={"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S)},
        metadata=metadata,
        files={f"{bundle.study}/{name}": text for name, text in bundle.files.items()},
    )


def credentials_note(opts: RayJobOptions) -> str | None:
    """What happened to a login in ``opts.tracking_uri``, for the user; None if it had none."""
    if pod_tracking_uri(opts.tracking_uri) == opts.tracking_uri:
        return None
    return (
        "the credentials in --tracking-uri are not submitted: the job uses the MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD of the Ray head's own environment (see docs/team-setup.md)"
    )


# --------------------------------------------------------------------------- the client


def _age(ms: int | None) -> str:
    from orchestrator.cluster.status import age

    if not ms:
        return "-"
    return age(dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat())


def _when(ms: int | None) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ms else ""


class RayJobs:
    """:class:`backend.JobBackend` over a Ray cluster's Jobs API; every failure is one ``ClusterError`` line."""

    kind = "Ray job"

    def __init__(self, address: str, client: Any) -> None:
        self.address = address
        self.client = client
        self.where = f"Ray cluster at {redact_uri(address)}"

    @classmethod
    def connect(cls, address: str) -> RayJobs:
        """A client of the Jobs API at ``address``; checks that it answers and accepts this process's token."""
        address = check_address(address)
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError as e:  # pragma: no cover - ray is a core dependency
            raise ClusterError(f"the Ray Jobs client cannot be imported ({e}); pip install 'ray[default]'") from None
        where = f"Ray cluster at {redact_uri(address)}"
        return cls(address, _translate(where, lambda: JobSubmissionClient(address)))

    def _call(self, fn: Callable[[], T], job: str | None = None) -> T:
        return _translate(self.where, fn, job)

    # ------------------------------------------------------------------ submit

    def submit(self, submission: RaySubmission) -> str:
        """Upload the space files and submit the job; returns its id."""
        with tempfile.TemporaryDirectory(prefix="orchestrator-job-") as folder:
            root = Path(folder)
            for relative, text in submission.files.items():
                target = root / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            return self._call(
                lambda: self.client.submit_job(
                    entrypoint=submission.entrypoint,
                    submission_id=submission.submission_id,
                    runtime_env=submission.runtime_env(root),
                    metadata=dict(submission.metadata),
                )
            )

    # ------------------------------------------------------------------ JobBackend

    def _info(self, name: str) -> Any:
        return self._call(lambda: self.client.get_job_info(name), job=name)

    def list_jobs(self, all_jobs: bool = False) -> JobTable:
        found = self._call(self.client.list_jobs)
        ours = [j for j in found if all_jobs or (j.metadata or {}).get(MARK_KEY) == MARK_VALUE]
        ours.sort(key=lambda j: (j.start_time or 0, j.submission_id or ""))
        rows = [
            [
                j.submission_id or j.job_id or "-",
                (j.metadata or {}).get("study", "-"),
                (j.metadata or {}).get("version", "-"),
                (j.metadata or {}).get("space_hash", "-"),
                str(j.status),
                _age(j.start_time),
            ]
            for j in ours
        ]
        headers = ["SUBMISSION ID", "STUDY", "VERSION", "SPACE", "STATUS", "AGE"]
        return JobTable(headers, rows, f"no Ray jobs of orchestrator on the {self.where}")

    def status(self, name: str) -> JobReport:
        info = self._info(name)
        meta = info.metadata or {}
        study = meta.get("study")
        fields = [
            ("ray job", f"{name} ({self.where})"),
            ("study", f"{study} v{meta.get('version')} (space {meta.get('space_hash')})" if study else "-"),
            ("status", str(info.status)),
            ("message", redact_text(info.message or "")),
            ("entrypoint", info.entrypoint or ""),
            ("started", _when(info.start_time)),
            ("ended", _when(info.end_time)),
            ("tracking", meta.get("tracking_uri", "")),
        ]
        report = JobReport(self.kind, name, fields)
        if str(info.status) == "FAILED":
            report.problems += _failure(info)
        if study and meta.get("tracking_uri"):
            try:
                run = search_run(meta["tracking_uri"], study, name)
            except Exception as e:
                report.notes.append(f"could not read the search's run from {meta['tracking_uri']}: {first_line(e)}")
            else:
                if run is None:
                    report.fields.append(("search run", "(none yet)"))
                else:
                    report.fields.append(("search run", f"{run.run_id} ({run.status})"))
                    report.fields.append(("end reason", run.end_reason))
        return report

    def logs(self, name: str, follow: bool = False) -> Iterator[str]:
        self._info(name)  # a job that does not exist is one line, before any stream opens
        if not follow:
            return iter([self._call(lambda: self.client.get_job_logs(name), job=name)])
        return self._follow(name)

    def _follow(self, name: str) -> Iterator[str]:
        """``tail_job_logs`` (a websocket, async) as a plain iterator: chunks as the driver writes them."""
        loop = asyncio.new_event_loop()
        stream = self.client.tail_job_logs(name)
        try:
            while True:
                try:
                    chunk = self._call(lambda: loop.run_until_complete(stream.__anext__()), job=name)
                except StopAsyncIteration:
                    return
                yield chunk
        finally:
            try:
                loop.run_until_complete(stream.aclose())
            finally:
                loop.close()

    def cancel(self, name: str, delete: bool = False) -> str:
        info = self._info(name)
        lines = []
        if info.status.is_terminal():
            lines.append(f"Ray job {name} has already ended ({info.status}), nothing to stop")
        else:
            self._call(lambda: self.client.stop_job(name), job=name)
            status = self._wait_stopped(name)
            if not status.is_terminal():
                return (
                    f"asked Ray to stop job {name}; it is still {status} after {CANCEL_WAIT_S}s "
                    f"(its search has {STOP_WAIT_S}s to end its run, then Ray kills it). "
                    f"See: orchestrator jobs status {name} --ray-address {redact_uri(self.address)}"
                )
            lines.append(f"stopped Ray job {name} ({status})")
        lines += self._settle_run(name, info.metadata or {})
        if delete:
            self._call(lambda: self.client.delete_job(name), job=name)
            lines.append(f"deleted Ray job {name} (its record on the cluster; the MLflow runs stay)")
        return "\n".join(lines)

    def _wait_stopped(self, name: str) -> Any:
        deadline = time.monotonic() + CANCEL_WAIT_S
        while True:
            status = self._info(name).status
            if status.is_terminal() or time.monotonic() > deadline:
                return status
            time.sleep(POLL_S)

    def _settle_run(self, name: str, meta: Mapping[str, str]) -> list[str]:
        """The search's run once its job has ended: reported, and ended KILLED if the driver left it RUNNING."""
        uri, study = meta.get("tracking_uri"), meta.get("study")
        if not uri or not study:
            return []
        try:
            run = search_run(uri, study, name)
            if run is None:
                return [f"  no MLflow run of job {name} in {uri}: the search had not started one"]
            if run.status == "RUNNING":
                reason = _cancelled_reason(name, run)
                end_search_run(uri, run, reason)
                return [f"  search run {run.run_id}: ended KILLED here ({reason})"]
            return [f"  search run {run.run_id}: {run.status}" + (f" ({run.end_reason})" if run.end_reason else "")]
        except Exception as e:
            return [f"  note: could not check the search's run in {uri} ({first_line(e)})"]


def _cancelled_reason(name: str, run: SearchRun) -> str:
    resume = f"; continue with: orchestrator resume {run.experiment_path}" if run.experiment_path else ""
    return f"cancelled: Ray job {name} was stopped before its search ended this run{resume}"


def _failure(info: Any) -> list[Problem]:
    """Why a job failed, as problems; fatal when the search never started."""
    error = str(info.error_type or "")
    if info.driver_exit_code == 127:
        return [
            Problem(
                "the head has no `orchestrator` command (exit status 127): install this project in the "
                "environment `ray start --head` runs from (the job's entrypoint runs with the head's PATH)",
                fatal=True,
            )
        ]
    fatal = error not in ("", "JOB_ENTRYPOINT_COMMAND_ERROR")
    text = redact_text(info.message or "the job failed").strip().splitlines()[0]
    return [Problem(f"{error or 'FAILED'}: {text}", fatal=fatal)]


def _translate(where: str, fn: Callable[[], T], job: str | None = None) -> T:
    """Run one call of the Jobs SDK; its failures become one ``ClusterError`` line (never with a token in it)."""
    import requests
    from ray.exceptions import AuthenticationError

    from orchestrator.engine.ray_auth import missing_token, refused_token

    try:
        return fn()
    except AuthenticationError as e:
        refused = str(e).startswith("Authentication failed")  # HTTP 403: a token was sent and is wrong
        error = refused_token(where) if refused else missing_token(where)
        raise ClusterError(str(error)) from None
    except (ConnectionError, requests.exceptions.ConnectionError) as e:
        raise ClusterError(f"no Ray job server answers at the {where} ({first_line(e)}); {HEAD_HINT}") from None
    except requests.exceptions.RequestException as e:
        raise ClusterError(f"the {where} did not answer: {first_line(e)}") from None
    except RuntimeError as e:
        text = redact_text(str(e).strip())
        if job and "status code 404" in text:
            raise ClusterError(
                f"Ray job {job!r} not found on the {where}; see: orchestrator jobs list --ray-address "
                f"{where.removeprefix('Ray cluster at ')}"
            ) from None
        raise ClusterError(f"the {where} refused the request: {first_line(e)}") from None
    except Exception as e:  # aiohttp while following logs, and the like
        if type(e).__module__.startswith("aiohttp"):
            raise ClusterError(f"the log stream from the {where} broke off: {first_line(e)}") from None
        raise
