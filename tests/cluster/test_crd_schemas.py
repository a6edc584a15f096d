"""Every RayJob and RayCluster the project builds or ships validates against KubeRay's v1 CRDs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cluster.bundle import SpaceBundle
from orchestrator.cluster.rayjob import (
    API_VERSION,
    JobOptions,
    build_ray_cluster_spec,
    build_submission,
    worker_shape,
)

from .helpers import OVERLAYS, REPO_ROOT, by_kind, render_overlay, schema_errors, write_study

IMAGE = "registry.example.com/orchestrator:0.1.0"

# (per-trial cpu, gpu, placement)
VARIANTS = {
    "existing-cluster": (2, 0.5, "existing"),
    "new-cluster-gpu": (4, 1, "new"),
    "new-cluster-cpu": (2, 0, "new"),
    "new-cluster-fractional-gpu": (1, 0.25, "new"),
    "new-cluster-multi-gpu": (8, 2, "new"),
}


def _job(tmp_path: Path, variant: str) -> dict[str, Any]:
    cpu, gpu, placement = VARIANTS[variant]
    space = write_study(tmp_path, study="unet_dstl", versions=2, cpu=cpu, gpu=gpu, concurrency=4)
    bundle = SpaceBundle.from_path(space)
    if placement == "existing":
        opts = JobOptions(namespace="team", cluster="search-cluster", trials=12)
    else:
        opts = JobOptions(namespace="team", image=IMAGE, trials=12, max_workers=3)
    return build_submission(bundle, opts, suffix="abcde").rayjob


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rayjob_bodies_validate(tmp_path: Path, variant: str) -> None:
    assert schema_errors(_job(tmp_path, variant)) == []


@pytest.mark.usefixtures("crds")
def test_rayjob_for_a_repository_space_validates() -> None:
    bundle = SpaceBundle.from_path(REPO_ROOT / "search_spaces" / "unet_dstl" / "v2.yaml")
    sub = build_submission(bundle, JobOptions(namespace="team", image=IMAGE))
    assert schema_errors(sub.rayjob) == []


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize(("cpu", "gpu"), [(2, 0.5), (4, 1), (8, 2), (2, 0)])
def test_raycluster_bodies_validate(cpu: float, gpu: float) -> None:
    spec = build_ray_cluster_spec(IMAGE, worker_shape(cpu, gpu), max_workers=4, min_workers=1)
    # a standalone RayCluster around the spec a RayJob embeds: the CRD checks the spec the same way
    metadata = {"name": "search", "namespace": "team", "labels": {"app.kubernetes.io/part-of": "orchestrator"}}
    cluster = {"apiVersion": API_VERSION, "kind": "RayCluster", "metadata": metadata, "spec": spec}
    assert schema_errors(cluster) == []
    (group,) = cluster["spec"]["workerGroupSpecs"]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert ("nvidia.com/gpu" in limits) == bool(gpu)


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployed_rayclusters_validate(tmp_path: Path, overlay: str) -> None:
    clusters = by_kind(render_overlay(tmp_path, overlay), "RayCluster")
    assert list(clusters) == ["search-cluster"]
    for cluster in clusters.values():
        assert schema_errors(cluster) == []


@pytest.mark.usefixtures("crds")
@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(minReplica=1), "minReplica"),
        (lambda j: j["spec"].update(shutdownAfterJobFinishes="yes"), "shutdownAfterJobFinishes"),
        (lambda j: j["spec"]["rayClusterSpec"].pop("headGroupSpec"), "headGroupSpec"),
        (lambda j: j["spec"].update(ttlSecondsAfterFinished=1.5), "ttlSecondsAfterFinished"),
        (
            lambda j: j["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(
                resources={"limits": {"cpu": [2]}}
            ),
            "cpu",
        ),
    ],
)
def test_the_schema_check_catches_mistakes(tmp_path: Path, mutate: Any, where: str) -> None:
    """The converted schemas are strict enough to be worth passing."""
    job = copy.deepcopy(_job(tmp_path, "new-cluster-gpu"))
    mutate(job)
    errors = schema_errors(job)
    assert errors and any(where in e for e in errors), errors
