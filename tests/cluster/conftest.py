"""Fixtures of the cluster tests: the KubeRay CRDs, and kmock's Kubernetes emulator set up like a cluster with
KubeRay (``tests/cluster/kube.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kmock import KubernetesEmulator, ResourceInfo

from .helpers import CRD_DIR
from .kube import NAMESPACE, RAYJOBS, Kube, created


@pytest.fixture
def crds() -> Path:
    if not CRD_DIR.is_dir():
        pytest.skip(f"KubeRay CRDs not found at {CRD_DIR} (../shared/k8s/crds from the repo root)")
    return CRD_DIR


@pytest.fixture
def kube(kmock: KubernetesEmulator, tmp_path: Path) -> Kube:
    """A cluster with the KubeRay CRDs installed and namespace ``team`` as the context's default."""
    kmock.resources[RAYJOBS] = ResourceInfo(kind="RayJob", namespaced=True, subresources={"status"})
    kmock.resources["v1/pods"] = ResourceInfo(kind="Pod", namespaced=True, subresources={"log"})
    kmock.resources["v1/configmaps"] = ResourceInfo(kind="ConfigMap", namespaced=True)
    kmock.resources["batch/v1/jobs"] = ResourceInfo(kind="Job", namespaced=True)
    # A real API server answers 201 with a uid (the emulator alone answers 200 without one).
    kmock["post", kmock.resource(RAYJOBS)] << 201 << created
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
