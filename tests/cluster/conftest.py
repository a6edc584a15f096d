"""Fixtures: the KubeRay CRDs, and kmock's Kubernetes emulator set up like a cluster with KubeRay.

The emulator serves the official (synchronous) ``kubernetes`` client on loopback; tests run
the client in an executor so the emulator's event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kmock import KubernetesEmulator, Request, ResourceInfo

from orchestrator.cluster.client import KubeClient

from .helpers import CRD_DIR

T = TypeVar("T")
NAMESPACE = "team"
RAYJOBS = "ray.io/v1/rayjobs"


@pytest.fixture
def crds() -> Path:
    if not CRD_DIR.is_dir():
        pytest.skip(f"KubeRay CRDs not found at {CRD_DIR} (../shared/k8s/crds from the repo root)")
    return CRD_DIR


def _created(request: Request) -> dict[str, Any]:
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


@pytest.fixture
def kube(kmock: KubernetesEmulator, tmp_path: Path) -> Kube:
    """A cluster with the KubeRay CRDs installed and namespace ``team`` as the context's default."""
    kmock.resources[RAYJOBS] = ResourceInfo(kind="RayJob", namespaced=True, subresources={"status"})
    kmock.resources["v1/pods"] = ResourceInfo(kind="Pod", namespaced=True, subresources={"log"})
    kmock.resources["v1/configmaps"] = ResourceInfo(kind="ConfigMap", namespaced=True)
    kmock.resources["batch/v1/jobs"] = ResourceInfo(kind="Job", namespaced=True)
    # A real API server answers 201 with a uid (the emulator alone answers 200 without one).
    kmock["post", kmock.resource(RAYJOBS)] << 201 << _created
    server = str(kmock.url).rstrip("/")  # with a trailing slash the client returns None
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
        "contexts": [
            {"name": "emulator", "context": {"cluster": "emulator", "user": "tester", "namespace": NAMESPACE}},
            {"name": "other", "context": {"cluster": "emulator", "user": "tester", "namespace": "other"}},
        ],
        "current-context": "emulator",
    }
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(yaml.safe_dump(config))
    return Kube(kmock, path)
