"""Read a RayJob's state and its pods' troubles from plain API dicts (pure, no cluster contact).

KubeRay reports two levels: ``status.jobDeploymentStatus`` (the Kubernetes side: Initializing,
Running, Complete, Failed, Suspending, Suspended, Retrying, ...) and ``status.jobStatus`` (the
Ray job: PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED). Neither says *why* a job is stuck in
Initializing; the pods do (an image that cannot be pulled, a pod that cannot be scheduled).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.cluster import names
from orchestrator.cluster.rayjob import CLUSTER_SELECTOR_KEY

IMAGE_PULL_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "RegistryUnavailable",
    }
)
FINISHED = frozenset({"Complete", "Failed", "ValidationFailed"})


@dataclass(frozen=True)
class PodProblem:
    """Something wrong with one pod of a job; ``fatal`` when it will not fix itself."""

    pod: str
    role: str  # submitter, head or worker
    reason: str
    message: str
    fatal: bool

    def __str__(self) -> str:
        return f"{self.role} pod {self.pod}: {self.reason}: {self.message}"


@dataclass(frozen=True)
class JobSummary:
    """What ``jobs list`` and ``jobs status`` show about one RayJob."""

    name: str
    namespace: str
    study: str
    version: str
    space_hash: str
    cluster: str
    new_cluster: bool
    deployment_status: str
    job_status: str
    message: str
    dashboard: str
    started: str
    ended: str
    created: str
    suspended: bool

    @property
    def finished(self) -> bool:
        return self.deployment_status in FINISHED


def summarize(job: Mapping[str, Any]) -> JobSummary:
    meta = job.get("metadata") or {}
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    labels = meta.get("labels") or {}
    notes = meta.get("annotations") or {}
    selector = (spec.get("clusterSelector") or {}).get(CLUSTER_SELECTOR_KEY)
    message = " ".join(str(x) for x in (status.get("reason"), status.get("message")) if x)
    return JobSummary(
        name=meta.get("name", "?"),
        namespace=meta.get("namespace", ""),
        study=notes.get(names.STUDY_ANNOTATION) or labels.get(names.STUDY_LABEL, ""),
        version=labels.get(names.VERSION_LABEL, ""),
        space_hash=labels.get(names.HASH_LABEL, ""),
        cluster=selector or status.get("rayClusterName") or "",
        new_cluster=not selector,
        deployment_status=status.get("jobDeploymentStatus") or "New",
        job_status=status.get("jobStatus") or "-",
        message=message,
        dashboard=status.get("dashboardURL") or "",
        started=status.get("startTime") or "",
        ended=status.get("endTime") or "",
        created=meta.get("creationTimestamp") or "",
        suspended=bool(spec.get("suspend")),
    )


def _container_image(pod: Mapping[str, Any], container: str) -> str:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == container:
            return c.get("image", "?")
    return "?"


def pod_problems(pod: Mapping[str, Any], role: str) -> list[PodProblem]:
    """Image pulls, bad container config, crash loops, OOM kills, scheduling, failure."""
    name = (pod.get("metadata") or {}).get("name", "?")
    status = pod.get("status") or {}
    out: list[PodProblem] = []

    def add(reason: str, message: str, fatal: bool) -> None:
        out.append(PodProblem(name, role, reason, message, fatal))

    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    for cs in statuses:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        reason = waiting.get("reason") or ""
        detail = waiting.get("message") or ""
        if reason in IMAGE_PULL_REASONS:
            image = cs.get("image") or _container_image(pod, cs.get("name", ""))
            said = f": {detail}" if detail else ""
            hint = (
                "Check the image name and tag (--image), that the image was pushed, "
                "and imagePullSecrets for a private registry"
            )
            add(reason, f"cannot pull image {image!r}{said}. {hint}", fatal=True)
        elif reason in ("CreateContainerConfigError", "CreateContainerError"):
            add(
                reason,
                detail or "the container cannot be created (a missing Secret or ConfigMap?)",
                fatal=True,
            )
        elif reason == "CrashLoopBackOff":
            add(
                reason,
                f"container {cs.get('name')} keeps crashing ({cs.get('restartCount', 0)} restarts)",
                fatal=False,
            )
        last = (cs.get("lastState") or {}).get("terminated") or {}
        if last.get("reason") == "OOMKilled" or (state.get("terminated") or {}).get("reason") == "OOMKilled":
            add("OOMKilled", f"container {cs.get('name')} ran out of memory", fatal=False)
    phase = status.get("phase")
    if phase == "Pending":
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                add(
                    cond.get("reason") or "Unschedulable",
                    cond.get("message") or "waiting for a node",
                    fatal=False,
                )
    elif phase == "Failed":
        add(status.get("reason") or "Failed", status.get("message") or "the pod failed", fatal=False)
    return out


def submitter_job_problems(job: Mapping[str, Any]) -> list[str]:
    """Why KubeRay's submitter Job gave up, from its ``Failed`` condition."""
    out = []
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            out.append(f"submitter Job failed: {cond.get('reason', '')} {cond.get('message', '')}".rstrip())
    return out


def newest(pods: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The most recently created pod (KubeRay may retry the submitter)."""
    if not pods:
        return None
    return max(
        pods,
        key=lambda p: (
            (p.get("metadata") or {}).get("creationTimestamp") or "",
            (p.get("metadata") or {}).get("name", ""),
        ),
    )


def age(timestamp: str, now: dt.datetime | None = None) -> str:
    """``2026-11-26T10:00:00Z`` -> ``3h``; ``-`` when unknown."""
    if not timestamp:
        return "-"
    try:
        then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    seconds = int(((now or dt.datetime.now(dt.UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"
