"""Reading RayJob state and pod troubles from API dicts (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from orchestrator.cluster.errors import Action, crds_missing, forbidden
from orchestrator.cluster.status import age, newest, pod_problems, summarize


def _pod(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "img:1"}]}, "status": status}


def _waiting(reason: str, message: str = "", init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    return {
        "phase": "Pending",
        key: [{"name": "c", "restartCount": 4, "state": {"waiting": {"reason": reason, "message": message}}}],
    }


@pytest.mark.parametrize(
    ("status", "reason", "fatal"),
    [
        (_waiting("ErrImagePull", "manifest unknown"), "ErrImagePull", True),
        (_waiting("ImagePullBackOff", init=True), "ImagePullBackOff", True),
        (_waiting("InvalidImageName"), "InvalidImageName", True),
        (_waiting("CreateContainerConfigError", 'secret "mlflow-auth" not found'), "CreateContainerConfigError", True),
        (_waiting("CrashLoopBackOff"), "CrashLoopBackOff", False),
        (
            {
                "phase": "Running",
                "containerStatuses": [
                    {"name": "c", "state": {"running": {}}, "lastState": {"terminated": {"reason": "OOMKilled"}}}
                ],
            },
            "OOMKilled",
            False,
        ),
        ({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}, "Evicted", False),
    ],
)
def test_pod_problems(status: dict[str, Any], reason: str, fatal: bool) -> None:
    (problem,) = pod_problems(_pod(status), "head")
    assert (problem.reason, problem.fatal, problem.role) == (reason, fatal, "head")
    assert str(problem).startswith(f"head pod p: {reason}: ")


def test_image_pull_message_names_the_image_and_the_fix() -> None:
    (problem,) = pod_problems(_pod(_waiting("ImagePullBackOff", "Back-off pulling image")), "submitter")
    assert "cannot pull image 'img:1': Back-off pulling image" in problem.message
    assert "--image" in problem.message and "imagePullSecrets" in problem.message


def test_healthy_pod_has_no_problems() -> None:
    assert (
        pod_problems(_pod({"phase": "Running", "containerStatuses": [{"name": "c", "state": {"running": {}}}]}), "head")
        == []
    )
    assert pod_problems({"metadata": {"name": "bare"}}, "head") == []


def test_summarize_defaults_and_selector() -> None:
    s = summarize({"metadata": {"name": "j", "namespace": "ns"}, "spec": {"clusterSelector": {"ray.io/cluster": "c"}}})
    assert (s.deployment_status, s.job_status, s.cluster, s.new_cluster, s.finished) == ("New", "-", "c", False, False)
    done = summarize({"metadata": {"name": "j"}, "status": {"jobDeploymentStatus": "Complete", "reason": "x"}})
    assert done.finished and done.message == "x"


def test_newest_and_age() -> None:
    pods = [
        {"metadata": {"name": n, "creationTimestamp": t}}
        for n, t in (("a", "2026-01-02T00:00:00Z"), ("b", "2026-01-01T00:00:00Z"))
    ]
    assert newest(pods)["metadata"]["name"] == "a"  # type: ignore[index]
    assert newest([]) is None
    now = dt.datetime(2026, 1, 2, 3, 0, tzinfo=dt.UTC)
    assert age("2026-01-02T00:00:00Z", now) == "3h"
    assert age("2025-12-30T00:00:00Z", now) == "3d"
    assert age("", now) == "-" and age("garbage", now) == "-"


def test_error_messages() -> None:
    core = Action("get", "pods", "team", subresource="log")
    assert core.resource_ref == "pods/log"
    assert core.can_i == "kubectl auth can-i get pods --subresource=log -n team"
    ray = Action("create", "rayjobs", "team", "ray.io", name="j")
    assert "cannot create rayjobs.ray.io in namespace 'team'" in str(forbidden(ray))
    assert "helm install kuberay-operator" in str(crds_missing())
