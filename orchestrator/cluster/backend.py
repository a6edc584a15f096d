"""One interface to searches that run as jobs, whatever runs them: ``orchestrator jobs list|status|logs|cancel``.

Two back ends implement :class:`JobBackend`:

* :class:`KubeRayJobs` (``-n NAMESPACE``): KubeRay ``RayJob`` objects on Kubernetes, through
  ``client.KubeClient`` (the objects ``submit -n`` creates);
* ``rayjobs.RayJobs`` (``--ray-address http://HEAD:8265``): any Ray cluster's Jobs API (the jobs
  ``submit --ray-address`` creates), for clusters on VMs or machines of one's own.

The commands print what a back end returns (a table, a status report, log text, what cancel did) and
know nothing else about it. Also here, for both: finding a search's MLflow parent run from its Ray job id
(:func:`search_run`, the tag ``orchestrator.ray_job_id`` that the search sets on its own run).
Imports neither kubernetes, ray nor mlflow at import time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from orchestrator.cluster.client import KubeClient

RESUME_PATCH = '\'{"spec":{"suspend":false}}\''


@dataclass(frozen=True)
class JobTable:
    """``jobs list``: a header, rows of text, and the line to print when there are none."""

    headers: list[str]
    rows: list[list[str]]
    empty: str

    def text(self) -> str:
        if not self.rows:
            return self.empty
        widths = [max(len(row[i]) for row in [self.headers, *self.rows]) for i in range(len(self.headers))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [self.headers, *self.rows]
        )


@dataclass(frozen=True)
class Problem:
    """Something wrong with a job; ``fatal`` when it cannot start and will not fix itself."""

    text: str
    fatal: bool

    def __str__(self) -> str:
        return self.text


@dataclass
class JobReport:
    """``jobs status``: labelled values (empty ones are not printed), problems and notes."""

    kind: str  # "RayJob" or "Ray job": how messages name the job
    name: str
    fields: list[tuple[str, str]]
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def fatal(self) -> list[Problem]:
        return [p for p in self.problems if p.fatal]

    def lines(self) -> list[str]:
        out = [f"{key + ':':<12} {value}" for key, value in self.fields if value]
        if self.problems:
            out.append("problems:")
            out += [f"  {'x' if p.fatal else '!'} {p}" for p in self.problems]
        out += [f"note: {note}" for note in self.notes]
        return out


class JobBackend(Protocol):
    """What ``orchestrator jobs`` needs from a place that runs searches as jobs."""

    kind: str  # "RayJob" or "Ray job"

    def list_jobs(self, all_jobs: bool = False) -> JobTable:
        """Jobs there, oldest first: those ``orchestrator submit`` made, or every one with ``all_jobs``."""
        ...

    def status(self, name: str) -> JobReport:
        """State of job ``name`` and what is wrong with it, if anything."""
        ...

    def logs(self, name: str, follow: bool = False) -> Iterator[str]:
        """The search's output (its driver's stdout and stderr) as text chunks; ``follow`` streams until it ends."""
        ...

    def cancel(self, name: str, delete: bool = False) -> str:
        """Stop job ``name`` (``delete``: remove it too); returns what happened, for the user."""
        ...


# --------------------------------------------------------------------------- KubeRay


class KubeRayJobs:
    """:class:`JobBackend` over KubeRay RayJobs in one namespace (``client.KubeClient``)."""

    kind = "RayJob"

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def list_jobs(self, all_jobs: bool = False) -> JobTable:
        from orchestrator.cluster.status import age, summarize

        found = [summarize(j) for j in self.client.list_jobs(all_jobs=all_jobs)]
        rows = [
            [
                s.name,
                s.study or "-",
                s.version or "-",
                s.space_hash or "-",
                s.cluster or "-",
                s.deployment_status,
                s.job_status,
                age(s.created),
            ]
            for s in found
        ]
        headers = ["NAME", "STUDY", "VERSION", "SPACE", "CLUSTER", "DEPLOYMENT", "JOB", "AGE"]
        return JobTable(headers, rows, f"no RayJobs in namespace {self.client.namespace}")

    def status(self, name: str) -> JobReport:
        report = self.client.inspect(name)
        s = report.summary
        owned = "own cluster, deleted after the job" if s.new_cluster else "existing cluster"
        suspended = " (suspended)" if s.suspended and s.deployment_status != "Suspended" else ""
        fields = [
            ("rayjob", f"{s.name} (namespace {s.namespace})"),
            ("study", f"{s.study} v{s.version} (space {s.space_hash})" if s.study else "-"),
            ("cluster", f"{s.cluster or '(not created yet)'} ({owned})"),
            ("deployment", s.deployment_status + suspended),
            ("ray job", s.job_status),
            ("message", s.message),
            ("dashboard", s.dashboard),
            ("started", s.started),
            ("ended", s.ended),
        ]
        problems = [Problem(str(p), p.fatal) for p in report.problems]
        return JobReport(self.kind, name, fields, problems, list(report.notes))

    def logs(self, name: str, follow: bool = False) -> Iterator[str]:
        return self.client.logs(name, follow=follow)

    def cancel(self, name: str, delete: bool = False) -> str:
        outcome = self.client.cancel(name, delete=delete)
        ns = self.client.namespace
        messages = {
            "deleted": f"deleted RayJob {name}; KubeRay stops its Ray job and removes what it created",
            "suspended": (
                f"suspended RayJob {name}: KubeRay stops the Ray job and deletes its cluster.\n"
                f"  resume: kubectl patch rayjob {name} -n {ns} --type merge -p {RESUME_PATCH}\n"
                f"  remove: orchestrator jobs cancel {name} -n {ns} --delete"
            ),
            "already-suspended": f"RayJob {name} is already suspended (remove it with --delete)",
            "finished": f"RayJob {name} has already finished, nothing to stop (remove: --delete)",
        }
        return messages[outcome]


# --------------------------------------------------------------------------- the search's MLflow run


@dataclass(frozen=True)
class SearchRun:
    """The MLflow parent run of the search a Ray job ran (found by its ``orchestrator.ray_job_id`` tag)."""

    run_id: str
    status: str
    end_reason: str
    experiment_path: str


def search_run(tracking_uri: str, study: str, job_id: str) -> SearchRun | None:
    """The parent run that the search of Ray job ``job_id`` created in ``tracking_uri``; None if it has none (yet).

    Raises ``TrackingError`` (one line) when the store cannot be read.
    """
    from orchestrator.tracking import schema
    from orchestrator.tracking.mlflow_store import MlflowStore

    store = MlflowStore(tracking_uri)
    store.check_reachable()
    experiment = store.experiment_id(study, create=False)
    if experiment is None:
        return None
    filters = f"tags.`{schema.KIND}` = '{schema.SEARCH_RUN}' and tags.`{schema.RAY_JOB_ID}` = '{job_id}'"
    runs: list[Any] = store.client.search_runs([experiment], filters, max_results=1)
    if not runs:
        return None
    run = runs[0]
    tags = run.data.tags
    return SearchRun(
        run.info.run_id, run.info.status, tags.get(schema.END_REASON, ""), tags.get(schema.EXPERIMENT_PATH, "")
    )


def end_search_run(tracking_uri: str, run: SearchRun, reason: str) -> None:
    """End ``run`` KILLED with ``reason`` (``orchestrator.end_reason``): for a search whose driver could not."""
    from orchestrator.tracking import schema
    from orchestrator.tracking.mlflow_store import MlflowStore

    store = MlflowStore(tracking_uri)
    store.log_batch(run.run_id, tags={schema.END_REASON: reason})
    store.end_run(run.run_id, "KILLED")
