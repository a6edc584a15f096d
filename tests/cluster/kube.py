"""The cluster tests' Kubernetes: kmock's emulator as a cluster with KubeRay (``Kube``, set up by the ``kube``
fixture in ``conftest.py``), the objects the tests put in it, and the cluster commands run against it.

The emulator serves the official (synchronous) ``kubernetes`` client on loopback; tests run the client in an
executor so the emulator's event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from click.testing import CliRunner, Result
from kmock import KubernetesEmulator, KubernetesError, Request

from orchestrator.cluster.client import KubeClient

T = TypeVar("T")
NAMESPACE = "team"
RAYJOBS = "ray.io/v1/rayjobs"


def created(request: Request) -> dict[str, Any]:
    """What the API server answers to a create: the object plus a uid."""
    body = dict(request.data)
    body["metadata"] = {**body.get("metadata", {}), "uid": str(uuid.uuid4())}
    return body


@dataclass
class Kube:
    """The emulator, a kubeconfig pointing at it, and a way to call the sync client."""

    mock: KubernetesEmulator
    kubeconfig: Path

    def client(self, namespace: str | None = None) -> KubeClient:
        return KubeClient.connect(kubeconfig=str(self.kubeconfig), namespace=namespace)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    def add(self, resource: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.mock.objects[resource, meta.get("namespace", NAMESPACE), meta["name"]] = obj


# --------------------------------------------------------------------------- objects as the API server holds them


def rayjob(
    name: str, *, status: dict[str, Any] | None = None, selector: str | None = None, managed: bool = True
) -> dict[str, Any]:
    labels = {"orchestrator.dev/study": "demo", "orchestrator.dev/version": "2"}
    if managed:
        labels["app.kubernetes.io/managed-by"] = "orchestrator"
    spec: dict[str, Any] = {"entrypoint": "orchestrator run x"}
    if selector:
        spec["clusterSelector"] = {"ray.io/cluster": selector}
    else:
        spec["shutdownAfterJobFinishes"] = True
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": labels,
            "creationTimestamp": "2026-11-26T10:00:00Z",
        },
        "spec": spec,
        "status": status
        or {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "rayClusterName": f"{name}-x7k2p"},
    }


def pod(name: str, labels: dict[str, str], status: dict[str, Any] | None = None, created: str = "") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels, "creationTimestamp": created},
        "spec": {"containers": [{"name": "main", "image": "registry.example.com/orchestrator:0.1.0"}]},
        "status": status or {"phase": "Running"},
    }


IMAGE_PULL = {
    "phase": "Pending",
    "containerStatuses": [
        {
            "name": "ray-head",
            "image": "registry.example.com/orchestrator:typo",
            "restartCount": 0,
            "state": {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": 'Back-off pulling image "registry.example.com/orchestrator:typo"',
                }
            },
        }
    ],
}
UNSCHEDULABLE = {
    "phase": "Pending",
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        }
    ],
}


def status_error(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> KubernetesError:
    """What a real API server sends back: a v1 Status object."""
    return KubernetesError(status=code, reason=reason, message=message, details=details or {"causes": []})


# --------------------------------------------------------------------------- the cluster commands


def invoke(command: click.Command, *args: str) -> Result:
    return CliRunner().invoke(command, list(args), catch_exceptions=False)


async def ainvoke(kube: Kube, command: click.Command, *args: str) -> Result:
    return await kube.run(invoke, command, *args, "--kubeconfig", str(kube.kubeconfig))


def assert_clean_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
