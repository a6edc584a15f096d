"""The one error type of the cluster package, and the messages that explain common failures.

Every failure a user can meet on the way to a cluster (no kubeconfig, a missing namespace,
KubeRay not installed, RBAC, an image that cannot be pulled) becomes a ``ClusterError``
whose message says what happened and what to do. Nothing here talks to a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.errors import OrchestratorError

KUBERAY_VERSION = "1.7.0"
KUBERAY_INSTALL = (
    "helm repo add kuberay https://ray-project.github.io/kuberay-helm/ && helm repo update\n"
    f"  helm install kuberay-operator kuberay/kuberay-operator --version {KUBERAY_VERSION} "
    "--namespace kuberay-system --create-namespace"
)
RBAC_MANIFEST = "deploy/k8s/base/rbac.yaml"


class ClusterError(OrchestratorError):
    """A cluster operation failed; the message says why and what to do about it."""


@dataclass(frozen=True)
class Action:
    """One API call as RBAC sees it: a verb on a resource (and subresource) in a namespace."""

    verb: str
    resource: str
    namespace: str
    group: str = ""
    name: str | None = None
    subresource: str | None = None

    @property
    def resource_ref(self) -> str:
        """``rayjobs.ray.io``, ``pods/log``, ``jobs.batch``: how kubectl names the resource."""
        base = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{base}/{self.subresource}" if self.subresource else base

    @property
    def can_i(self) -> str:
        """The ``kubectl auth can-i`` command that checks this permission."""
        base = f"{self.resource}.{self.group}" if self.group else self.resource
        sub = f" --subresource={self.subresource}" if self.subresource else ""
        return f"kubectl auth can-i {self.verb} {base}{sub} -n {self.namespace}"

    def describe(self) -> str:
        target = f" {self.name!r}" if self.name else ""
        return f"{self.verb} {self.resource_ref}{target} in namespace {self.namespace!r}"


def crds_missing(plural: str = "rayjobs") -> ClusterError:
    return ClusterError(
        f"KubeRay CRDs are not installed: the API server does not serve {plural}.ray.io/v1.\n"
        f"Install the KubeRay operator (it installs the CRDs):\n  {KUBERAY_INSTALL}"
    )


def namespace_missing(namespace: str) -> ClusterError:
    return ClusterError(
        f"namespace {namespace!r} does not exist; create it (kubectl create namespace {namespace}) "
        "or pick another with --namespace"
    )


def forbidden(action: Action, server_message: str = "") -> ClusterError:
    said = f"\n  API server: {server_message}" if server_message else ""
    return ClusterError(
        f"forbidden by RBAC: cannot {action.verb} {action.resource_ref} in namespace "
        f"{action.namespace!r}.{said}\n  Bind the orchestrator Role ({RBAC_MANIFEST}) to your user "
        f"or service account; check with: {action.can_i}"
    )


def not_found(kind: str, name: str, namespace: str) -> ClusterError:
    hint = f"; see: orchestrator jobs list --namespace {namespace}" if kind == "RayJob" else ""
    return ClusterError(f"{kind} {name!r} not found in namespace {namespace!r}{hint}")


def no_kubeconfig(detail: str) -> ClusterError:
    return ClusterError(
        "no Kubernetes configuration: no kubeconfig found (~/.kube/config or $KUBECONFIG) and "
        "not running inside a pod. Pass --kubeconfig FILE, set KUBECONFIG, or run "
        f"`kubectl config view` to check. ({detail})"
    )


def unreachable(host: str, reason: str) -> ClusterError:
    return ClusterError(
        f"cannot reach the Kubernetes API server at {host}: {reason}. "
        "Check the kubeconfig context (--context) and your network or VPN."
    )
