"""A thin wrapper over the official ``kubernetes`` client for RayJobs, their pods and logs.

Every API call goes through :meth:`KubeClient._call` with the RBAC :class:`Action` it needs,
so a failure becomes a ``ClusterError`` that names the verb, resource and namespace. The
calls made here are exactly what the Role in ``deploy/k8s/base/rbac.yaml`` grants:

=========================  ======================  =================================
resource                   verbs                   used by
=========================  ======================  =================================
rayjobs (ray.io)           create get list patch   submit, jobs list/logs/cancel
                           delete
rayjobs/status (ray.io)    get                     jobs status
configmaps                 create                  submit --new-cluster (space files)
pods                       list                    jobs status, jobs logs
pods/log                   get                     jobs logs
jobs (batch)               get                     jobs status (submitter failures)
=========================  ======================  =================================

Imports neither torch, ray nor mlflow.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from orchestrator.cluster import errors, names
from orchestrator.cluster.errors import Action, ClusterError
from orchestrator.cluster.rayjob import Submission, with_owner
from orchestrator.cluster.status import (
    JobSummary,
    PodProblem,
    newest,
    pod_problems,
    submitter_job_problems,
    summarize,
)

GROUP, VERSION, RAYJOBS = "ray.io", "v1", "rayjobs"
TIMEOUT = (10, 60)  # connect, read (seconds)
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_KINDS = {"rayjobs": "RayJob", "configmaps": "ConfigMap", "pods": "Pod", "jobs": "Job"}

CancelOutcome = Literal["deleted", "suspended", "already-suspended", "finished"]


@dataclass
class JobReport:
    """A RayJob's summary plus what its pods and submitter Job say is wrong."""

    job: dict[str, Any]
    summary: JobSummary
    problems: list[PodProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def fatal(self) -> list[PodProblem]:
        return [p for p in self.problems if p.fatal]


def _matches(labels: Mapping[str, str] | None, selector: Mapping[str, str]) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def _status_body(e: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(e.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _context_namespace(kubeconfig: str | None, context: str | None) -> str | None:
    contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
    by_name = {c["name"]: c for c in contexts}
    if context is not None and context not in by_name:
        have = ", ".join(sorted(by_name)) or "none"
        raise ClusterError(f"context {context!r} is not in the kubeconfig (contexts: {have})")
    chosen = by_name.get(context) if context else active
    return ((chosen or {}).get("context") or {}).get("namespace")


class KubeClient:
    """RayJob operations in one namespace, errors translated into ``ClusterError``."""

    def __init__(self, api: k8s.ApiClient, namespace: str):
        self.api = api
        self.namespace = namespace
        self.custom = k8s.CustomObjectsApi(api)
        self.core = k8s.CoreV1Api(api)
        self.batch = k8s.BatchV1Api(api)

    @classmethod
    def connect(
        cls, kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None
    ) -> KubeClient:
        """From a kubeconfig (``--kubeconfig``/``$KUBECONFIG``/``~/.kube/config``), else in-cluster.

        The namespace defaults to the context's namespace (in a pod: the pod's), else ``default``.
        """
        if kubeconfig and not Path(kubeconfig).is_file():
            raise ClusterError(f"kubeconfig {kubeconfig} does not exist")
        cfg = k8s.Configuration()
        try:
            ns = _context_namespace(kubeconfig, context)  # also checks that the context exists
            k8s_config.load_kube_config(
                config_file=kubeconfig,
                context=context,
                client_configuration=cfg,
                persist_config=False,
            )
        except ConfigException as e:
            if kubeconfig or context:
                raise ClusterError(f"cannot use kubeconfig {kubeconfig or '(default)'}: {e}") from None
            try:
                k8s_config.load_incluster_config(client_configuration=cfg)
            except ConfigException:
                raise errors.no_kubeconfig(str(e)) from None
            ns = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() if SERVICE_ACCOUNT_NAMESPACE.exists() else None
        cfg.host = cfg.host.rstrip("/")  # with a trailing slash some calls silently return None
        return cls(k8s.ApiClient(cfg), namespace or ns or "default")

    # ------------------------------------------------------------------ plumbing

    def _action(self, verb: str, resource: str, name: str | None = None, subresource: str | None = None) -> Action:
        group = {"rayjobs": GROUP, "jobs": "batch"}.get(resource, "")
        return Action(verb, resource, self.namespace, group, name, subresource)

    def _call(
        self,
        action: Action,
        fn: Callable[..., Any],
        *args: Any,
        missing_ok: bool = False,
        timeout: tuple[float, float] | None = TIMEOUT,
        **kwargs: Any,
    ) -> Any:
        """Run one API call; ``None`` for a 404 when ``missing_ok``; ``timeout=None`` waits."""
        if timeout is not None:
            kwargs["_request_timeout"] = timeout
        try:
            return fn(*args, **kwargs)
        except ApiException as e:
            if missing_ok and e.status == 404 and (_status_body(e).get("details") or {}).get("kind") != "namespaces":
                return None
            raise self._translate(e, action) from None
        except urllib3.exceptions.HTTPError as e:
            reason = getattr(e, "reason", None) or e
            raise errors.unreachable(self.api.configuration.host, str(reason)) from None

    def _translate(self, e: ApiException, action: Action) -> ClusterError:
        body = _status_body(e)
        message = body.get("message") or e.reason or ""
        kind = _KINDS.get(action.resource, action.resource)
        if e.status == 401:
            return ClusterError(
                "the API server rejected the credentials (401 Unauthorized): log in again or refresh the kubeconfig"
            )
        if e.status == 403:
            return errors.forbidden(action, message)
        if e.status == 404:
            if (body.get("details") or {}).get("kind") == "namespaces":
                return errors.namespace_missing(action.namespace)
            if action.group == GROUP and not self._serves(action.resource):
                return errors.crds_missing(action.resource)
            if action.name:
                return errors.not_found(kind, action.name, action.namespace)
            return ClusterError(f"not found: {action.describe()}: {message}")
        if e.status == 409:
            return ClusterError(f"{kind} {action.name!r} already exists in namespace {action.namespace!r}")
        if e.status == 422:
            return ClusterError(f"the API server rejected the {kind}: {message}")
        return ClusterError(f"Kubernetes API error {e.status} ({e.reason}) on {action.describe()}: {message}")

    def _serves(self, plural: str) -> bool:
        """Whether the API server serves ``<plural>.ray.io/v1`` (the KubeRay CRDs are installed)."""
        try:
            found = self.custom.get_api_resources(GROUP, VERSION, _request_timeout=TIMEOUT)
        except ApiException as e:
            return e.status != 404
        except urllib3.exceptions.HTTPError:
            return True  # cannot tell; report the original error
        return any(r.name == plural for r in (found.resources or []))

    # ------------------------------------------------------------------ RayJobs

    def submit(self, submission: Submission) -> dict[str, Any]:
        """Create the RayJob, then its ConfigMap owned by it (so deleting the job deletes both)."""
        rayjob = submission.rayjob
        if rayjob["metadata"]["namespace"] != self.namespace:
            wanted = rayjob["metadata"]["namespace"]
            raise ClusterError(f"the RayJob is for namespace {wanted!r}, not {self.namespace!r}")
        action = self._action("create", RAYJOBS, submission.name)
        created = self._call(
            action,
            self.custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            RAYJOBS,
            rayjob,
        )
        # The client returns None when a server answers 200 instead of 201; keep what we sent.
        created = created or rayjob
        if submission.configmap is not None:
            configmap = with_owner(submission.configmap, created)
            action = self._action("create", "configmaps", configmap["metadata"]["name"])
            try:
                self._call(action, self.core.create_namespaced_config_map, self.namespace, configmap)
            except ClusterError as e:
                undo = self._delete_quietly(submission.name)
                raise ClusterError(
                    f"{e}\n(RayJob {submission.name} {undo}: its head pod cannot start without the space files)"
                ) from None
        return created

    def _delete_quietly(self, name: str) -> str:
        try:
            self.delete_job(name)
        except ClusterError as e:
            return f"was created but could not be deleted again; delete it by hand ({e})"
        return "was deleted again"

    def list_jobs(self, all_jobs: bool = False) -> list[dict[str, Any]]:
        """RayJobs in the namespace: those this tool submitted, or every one with ``all_jobs``."""
        selector = {} if all_jobs else {names.MANAGED_BY: names.MANAGED_BY_VALUE}
        found = self._call(
            self._action("list", RAYJOBS),
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            RAYJOBS,
            label_selector=_selector(selector) or None,
        )
        items = [
            j for j in (found or {}).get("items", []) if _matches((j.get("metadata") or {}).get("labels"), selector)
        ]
        return sorted(
            items,
            key=lambda j: (
                (j.get("metadata") or {}).get("creationTimestamp") or "",
                j["metadata"]["name"],
            ),
        )

    def get_job(self, name: str) -> dict[str, Any]:
        return self._call(
            self._action("get", RAYJOBS, name),
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            RAYJOBS,
            name,
        )

    def get_job_status(self, name: str) -> dict[str, Any]:
        """The RayJob read through its ``status`` subresource (spec and status)."""
        return self._call(
            self._action("get", RAYJOBS, name, "status"),
            self.custom.get_namespaced_custom_object_status,
            GROUP,
            VERSION,
            self.namespace,
            RAYJOBS,
            name,
        )

    def delete_job(self, name: str) -> None:
        """Delete the RayJob; KubeRay's finalizer stops the Ray job, owned objects go with it."""
        self._call(
            self._action("delete", RAYJOBS, name),
            self.custom.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            RAYJOBS,
            name,
        )

    def cancel(self, name: str, delete: bool = False) -> CancelOutcome:
        """Suspend the job (its cluster is torn down, the RayJob stays), or delete it."""
        summary = summarize(self.get_job(name))
        if delete:
            self.delete_job(name)
            return "deleted"
        if not summary.new_cluster:
            raise ClusterError(
                f"RayJob {name} runs on the existing cluster {summary.cluster!r}, and KubeRay "
                "cannot suspend such jobs; use --delete (KubeRay then stops the Ray job; the "
                "cluster stays)"
            )
        if summary.finished:
            return "finished"
        if summary.suspended:
            return "already-suspended"
        self._call(
            self._action("patch", RAYJOBS, name),
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            RAYJOBS,
            name,
            {"spec": {"suspend": True}},
        )
        return "suspended"

    # ------------------------------------------------------------------ pods

    def list_pods(self, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        """Pods with all of ``selector``'s labels, as plain API dicts."""
        response = self._call(
            self._action("list", "pods"),
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=_selector(selector),
            _preload_content=False,
        )
        items = json.loads(response.data or b"{}").get("items") or []
        return [p for p in items if _matches((p.get("metadata") or {}).get("labels"), selector)]

    def submitter_pods(self, name: str) -> list[dict[str, Any]]:
        """Pods of KubeRay's submitter Job, which is named after the RayJob."""
        return self.list_pods({"job-name": name})

    def inspect(self, name: str) -> JobReport:
        """Status plus pod problems; trouble reading pods or Jobs becomes a note, not an error."""
        job = self.get_job_status(name)
        report = JobReport(job, summarize(job))
        try:
            submitter = newest(self.submitter_pods(name))
            if submitter is not None:
                report.problems += pod_problems(submitter, "submitter")
            cluster = report.summary.cluster
            if cluster:
                cluster_pods = self.list_pods({"ray.io/cluster": cluster})
                for pod in cluster_pods:
                    role = (pod["metadata"].get("labels") or {}).get("ray.io/node-type", "ray")
                    report.problems += pod_problems(pod, role)
                if not cluster_pods and not report.summary.new_cluster:
                    report.notes.append(
                        f"no pods of RayCluster {cluster!r} in namespace {self.namespace!r}: does it exist? "
                        f"(kubectl get raycluster {cluster} -n {self.namespace})"
                    )
        except ClusterError as e:
            report.notes.append(f"could not inspect pods: {e}")
        try:
            batch_job = self._call(
                self._action("get", "jobs", name),
                self.batch.read_namespaced_job,
                name,
                self.namespace,
                missing_ok=True,
                _preload_content=False,
            )
            if batch_job is not None:
                report.notes += submitter_job_problems(json.loads(batch_job.data or b"{}"))
        except ClusterError as e:
            report.notes.append(f"could not read the submitter Job: {e}")
        return report

    def logs(self, name: str, follow: bool = False) -> Iterator[str]:
        """Text of the newest submitter pod's log (the search's driver output), as it comes."""
        summary = summarize(self.get_job(name))
        pod = newest(self.submitter_pods(name))
        if pod is None:
            raise ClusterError(
                f"RayJob {name} has no submitter pod yet (deployment status: "
                f"{summary.deployment_status}); KubeRay starts it once the Ray cluster is up. "
                f"See: orchestrator jobs status {name} --namespace {self.namespace}"
            )
        pod_name = pod["metadata"]["name"]
        action = self._action("get", "pods", pod_name, "log")
        try:
            response = self._call(
                action,
                self.core.read_namespaced_pod_log,
                pod_name,
                self.namespace,
                follow=follow,
                _preload_content=False,
                timeout=None if follow else TIMEOUT,  # a quiet search must not end --follow
            )
        except ClusterError as e:
            problems = "; ".join(str(p) for p in pod_problems(pod, "submitter"))
            raise ClusterError(f"{e}{chr(10) + problems if problems else ''}") from None
        return self._decode(response)

    @staticmethod
    def _decode(response: Any) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            for chunk in response.stream(4096, decode_content=True):
                text = decoder.decode(chunk)
                if text:
                    yield text
            tail = decoder.decode(b"", final=True)
            if tail:
                yield tail
        except urllib3.exceptions.HTTPError as e:
            raise ClusterError(f"the log stream broke off: {getattr(e, 'reason', None) or e}") from None
        finally:
            response.release_conn()
