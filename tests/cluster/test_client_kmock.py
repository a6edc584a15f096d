"""The Kubernetes client wrapper against kmock's emulator: happy paths and translated errors."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from orchestrator.cluster.bundle import SpaceBundle
from orchestrator.cluster.client import KubeClient
from orchestrator.cluster.errors import ClusterError
from orchestrator.cluster.rayjob import JobOptions, Submission, build_submission

from .helpers import by_kind, rbac_permission, render_overlay, role_permissions, write_study
from .kube import IMAGE_PULL, NAMESPACE, RAYJOBS, UNSCHEDULABLE, Kube, pod, rayjob, status_error

IMAGE = "registry.example.com/orchestrator:0.1.0"
PODS = "v1/pods"


def submission(tmp_path: Path, cluster: str | None = None, namespace: str = NAMESPACE) -> Submission:
    bundle = SpaceBundle.from_path(write_study(tmp_path / "spaces", versions=2, gpu=0.5))
    opts = JobOptions(namespace=namespace, cluster=cluster, image=None if cluster else IMAGE)
    return build_submission(bundle, opts, suffix="abcde")


# --------------------------------------------------------------------------- happy paths


@pytest.mark.asyncio
async def test_connect_reads_namespace_and_context_from_kubeconfig(kube: Kube) -> None:
    assert kube.client().namespace == NAMESPACE
    assert kube.client("elsewhere").namespace == "elsewhere"
    other = KubeClient.connect(kubeconfig=str(kube.kubeconfig), context="other")
    assert other.namespace == "other"
    assert not other.api.configuration.host.endswith("/")


@pytest.mark.asyncio
async def test_submit_new_cluster_creates_rayjob_then_owned_configmap(kube: Kube, tmp_path: Path) -> None:
    sub = submission(tmp_path)
    created = await kube.run(kube.client().submit, sub)
    uid = created["metadata"]["uid"]
    stored = kube.mock.objects[RAYJOBS, NAMESPACE, sub.name]
    assert stored["spec"]["entrypoint"] == sub.rayjob["spec"]["entrypoint"]
    cm = kube.mock.objects["v1/configmaps", NAMESPACE, f"{sub.name}-space"]
    assert cm["data"] == sub.configmap["data"]  # type: ignore[index]
    (owner,) = cm["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("RayJob", sub.name, uid)
    methods = [(r.method.value, r.url.path) for r in kube.mock]
    assert methods == [
        ("POST", f"/apis/ray.io/v1/namespaces/{NAMESPACE}/rayjobs"),
        ("POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps"),
    ]


@pytest.mark.asyncio
async def test_submit_to_existing_cluster_creates_only_the_rayjob(kube: Kube, tmp_path: Path) -> None:
    sub = submission(tmp_path, cluster="search-cluster")
    await kube.run(kube.client().submit, sub)
    assert kube.mock.objects[RAYJOBS, NAMESPACE, sub.name]["spec"]["clusterSelector"] == {
        "ray.io/cluster": "search-cluster"
    }
    assert len(list(kube.mock)) == 1


@pytest.mark.asyncio
async def test_list_jobs_shows_ours_or_all(kube: Kube) -> None:
    kube.add(RAYJOBS, rayjob("b-v1-aaaaa"))
    kube.add(RAYJOBS, rayjob("a-v1-aaaaa"))
    kube.add(RAYJOBS, rayjob("someone-else", managed=False))
    client = kube.client()
    ours = await kube.run(client.list_jobs)
    assert [j["metadata"]["name"] for j in ours] == ["a-v1-aaaaa", "b-v1-aaaaa"]
    assert kube.mock[-1].params["labelSelector"] == "app.kubernetes.io/managed-by=orchestrator"
    everything = await kube.run(client.list_jobs, all_jobs=True)
    assert len(everything) == 3


@pytest.mark.asyncio
async def test_inspect_reports_image_pull_and_scheduling_problems(kube: Kube) -> None:
    name = "demo-v2-abcde"
    kube.add(RAYJOBS, rayjob(name, status={"jobDeploymentStatus": "Initializing", "rayClusterName": "demo-c"}))
    kube.add(PODS, pod("demo-c-head", {"ray.io/cluster": "demo-c", "ray.io/node-type": "head"}, IMAGE_PULL))
    kube.add(PODS, pod("demo-c-worker", {"ray.io/cluster": "demo-c", "ray.io/node-type": "worker"}, UNSCHEDULABLE))
    kube.add(PODS, pod("unrelated", {"app": "x"}, IMAGE_PULL))
    report = await kube.run(kube.client().inspect, name)
    assert report.summary.deployment_status == "Initializing"
    assert report.summary.cluster == "demo-c"
    (fatal,) = report.fatal
    assert fatal.role == "head" and fatal.reason == "ImagePullBackOff"
    assert "registry.example.com/orchestrator:typo" in fatal.message and "imagePullSecrets" in fatal.message
    (warning,) = [p for p in report.problems if not p.fatal]
    assert warning.role == "worker" and "nvidia.com/gpu" in warning.message
    assert report.notes == []
    paths = [r.url.path for r in kube.mock]
    assert f"/apis/ray.io/v1/namespaces/{NAMESPACE}/rayjobs/{name}/status" in paths
    assert f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{name}" in paths


@pytest.mark.asyncio
async def test_inspect_reports_a_failed_submitter_job(kube: Kube) -> None:
    name = "demo-v2-abcde"
    kube.add(RAYJOBS, rayjob(name, status={"jobDeploymentStatus": "Failed", "jobStatus": "FAILED"}))
    kube.add(PODS, pod(name + "-q8z", {"job-name": name}, {"phase": "Failed", "reason": "Error"}))
    kube.add(
        "batch/v1/jobs",
        {
            "metadata": {"name": name, "namespace": NAMESPACE},
            "status": {
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit",
                    }
                ]
            },
        },
    )
    report = await kube.run(kube.client().inspect, name)
    assert report.summary.finished
    assert [p.role for p in report.problems] == ["submitter"]
    assert report.notes == ["submitter Job failed: BackoffLimitExceeded Job has reached the specified backoff limit"]


@pytest.mark.asyncio
async def test_inspect_hints_at_a_missing_existing_cluster(kube: Kube) -> None:
    kube.add(RAYJOBS, rayjob("j", selector="serch-cluster", status={"jobDeploymentStatus": "Initializing"}))
    report = await kube.run(kube.client().inspect, "j")
    assert report.notes == [
        "no pods of RayCluster 'serch-cluster' in namespace 'team': does it exist? "
        "(kubectl get raycluster serch-cluster -n team)"
    ]


@pytest.mark.asyncio
async def test_logs_of_the_newest_submitter_pod(kube: Kube) -> None:
    name = "demo-v2-abcde"
    kube.add(RAYJOBS, rayjob(name))
    kube.add(PODS, pod(f"{name}-old", {"job-name": name}, created="2026-11-26T10:00:00Z"))
    kube.add(PODS, pod(f"{name}-new", {"job-name": name}, created="2026-11-26T11:00:00Z"))
    (
        kube.mock["get", kube.mock.resource(PODS), kube.mock.name(f"{name}-new"), kube.mock.subresource("log")]
        << (kube.mock.headers({"Content-Type": "text/plain"}))
        << (b"trial 1: loss=0.5\n", "é".encode()[:1], "é".encode()[1:] + b" done\n")
    )
    text = await kube.run(lambda: "".join(kube.client().logs(name, follow=True)))
    assert text == "trial 1: loss=0.5\né done\n"
    assert kube.mock[-1].params.get("follow") == "true"


@pytest.mark.asyncio
async def test_logs_before_the_submitter_exists(kube: Kube) -> None:
    kube.add(RAYJOBS, rayjob("demo-v2-abcde", status={"jobDeploymentStatus": "Initializing"}))
    with pytest.raises(ClusterError, match=r"no submitter pod yet .*Initializing"):
        await kube.run(kube.client().logs, "demo-v2-abcde")


@pytest.mark.asyncio
async def test_logs_of_a_pod_that_cannot_pull_its_image(kube: Kube) -> None:
    name = "demo-v2-abcde"
    kube.add(RAYJOBS, rayjob(name))
    kube.add(PODS, pod(f"{name}-q8z", {"job-name": name}, IMAGE_PULL))
    waiting = f'container "ray-job-submitter" in pod "{name}-q8z" is waiting to start: trying and failing to pull image'
    kube.mock["get", kube.mock.resource(PODS), kube.mock.subresource("log")] << status_error(400, "BadRequest", waiting)
    with pytest.raises(ClusterError) as exc:
        await kube.run(kube.client().logs, name)
    assert "waiting to start" in str(exc.value) and "ImagePullBackOff" in str(exc.value)


@pytest.mark.asyncio
async def test_cancel_suspends_a_job_with_its_own_cluster(kube: Kube) -> None:
    kube.add(RAYJOBS, rayjob("demo-v2-abcde"))
    client = kube.client()
    assert await kube.run(client.cancel, "demo-v2-abcde") == "suspended"
    assert kube.mock.objects[RAYJOBS, NAMESPACE, "demo-v2-abcde"]["spec"]["suspend"] is True
    patch = kube.mock[-1]
    assert patch.method.value == "PATCH" and patch.data == {"spec": {"suspend": True}}
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert await kube.run(client.cancel, "demo-v2-abcde") == "already-suspended"


@pytest.mark.asyncio
async def test_cancel_finished_and_delete(kube: Kube) -> None:
    kube.add(RAYJOBS, rayjob("done", status={"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}))
    client = kube.client()
    assert await kube.run(client.cancel, "done") == "finished"
    assert await kube.run(client.cancel, "done", delete=True) == "deleted"
    assert kube.mock.objects[RAYJOBS, NAMESPACE, "done"].deleted


@pytest.mark.asyncio
async def test_cancel_on_an_existing_cluster_needs_delete(kube: Kube) -> None:
    kube.add(RAYJOBS, rayjob("shared", selector="search-cluster"))
    with pytest.raises(ClusterError, match=r"cannot suspend .*--delete"):
        await kube.run(kube.client().cancel, "shared")
    assert all(r.method.value == "GET" for r in kube.mock)


# --------------------------------------------------------------------------- errors


@pytest.mark.asyncio
async def test_kuberay_crds_not_installed(kube: Kube, tmp_path: Path) -> None:
    kube.mock.resources.clear()
    kube.mock[re.compile(r"^/apis/ray\.io(/.*)?$")] ** 1 << status_error(
        404, "NotFound", "the server could not find the requested resource"
    )
    client = kube.client()
    for call in (lambda: client.submit(submission(tmp_path)), client.list_jobs, lambda: client.get_job("x")):
        with pytest.raises(ClusterError) as exc:
            await kube.run(call)
        message = str(exc.value)
        assert "KubeRay CRDs are not installed" in message
        assert "helm install kuberay-operator kuberay/kuberay-operator" in message


@pytest.mark.asyncio
async def test_forbidden_names_verb_resource_and_namespace(kube: Kube, tmp_path: Path) -> None:
    kube.mock["post", kube.mock.resource(RAYJOBS)] ** 1 << status_error(
        403,
        "Forbidden",
        'rayjobs.ray.io is forbidden: User "alice" cannot create resource "rayjobs" in API group "ray.io" '
        'in the namespace "team"',
        {"group": "ray.io", "kind": "rayjobs"},
    )
    with pytest.raises(ClusterError) as exc:
        await kube.run(kube.client().submit, submission(tmp_path))
    message = str(exc.value)
    assert "forbidden by RBAC: cannot create rayjobs.ray.io in namespace 'team'" in message
    assert 'User "alice"' in message
    assert "kubectl auth can-i create rayjobs.ray.io -n team" in message


@pytest.mark.asyncio
async def test_forbidden_log_reading_names_the_subresource(kube: Kube) -> None:
    kube.add(RAYJOBS, rayjob("j"))
    kube.add(PODS, pod("j-q8z", {"job-name": "j"}))
    kube.mock["get", kube.mock.resource(PODS), kube.mock.subresource("log")] << status_error(403, "Forbidden", "no")
    with pytest.raises(ClusterError, match=r"(?s)cannot get pods/log in namespace 'team'.*--subresource=log"):
        await kube.run(kube.client().logs, "j")


@pytest.mark.asyncio
async def test_missing_namespace(kube: Kube, tmp_path: Path) -> None:
    kube.mock["post", kube.mock.resource(RAYJOBS), kube.mock.namespace("nope")] ** 1 << status_error(
        404, "NotFound", 'namespaces "nope" not found', {"name": "nope", "kind": "namespaces"}
    )
    with pytest.raises(ClusterError, match=r"namespace 'nope' does not exist.*kubectl create namespace nope"):
        await kube.run(kube.client("nope").submit, submission(tmp_path, namespace="nope"))


@pytest.mark.asyncio
async def test_missing_rayjob(kube: Kube) -> None:
    with pytest.raises(ClusterError, match="RayJob 'ghost' not found in namespace 'team'"):
        await kube.run(kube.client().inspect, "ghost")


@pytest.mark.asyncio
async def test_configmap_failure_rolls_the_rayjob_back(kube: Kube, tmp_path: Path) -> None:
    kube.mock["post", kube.mock.resource("v1/configmaps")] << status_error(403, "Forbidden", "no configmaps for you")
    sub = submission(tmp_path)
    with pytest.raises(ClusterError) as exc:
        await kube.run(kube.client().submit, sub)
    assert "cannot create configmaps in namespace 'team'" in str(exc.value)
    assert f"RayJob {sub.name} was deleted again" in str(exc.value)
    assert kube.mock.objects[RAYJOBS, NAMESPACE, sub.name].deleted


@pytest.mark.asyncio
async def test_conflict_and_rejection(kube: Kube, tmp_path: Path) -> None:
    kube.mock["post", kube.mock.resource(RAYJOBS)] ** 1 << status_error(
        422, "Invalid", 'RayJob.ray.io "x" is invalid: spec.entrypoint: Invalid value'
    )
    with pytest.raises(ClusterError, match=r"rejected the RayJob: .*spec.entrypoint"):
        await kube.run(kube.client().submit, submission(tmp_path))


def test_unreachable_api_server(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    client = KubeClient.connect(kubeconfig=str(config))
    with pytest.raises(ClusterError, match=f"cannot reach the Kubernetes API server at http://127.0.0.1:{port}"):
        client.list_jobs()


def test_no_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    import kubernetes.config.kube_config as kc

    monkeypatch.setattr(kc, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "absent"))
    with pytest.raises(ClusterError, match="no Kubernetes configuration"):
        KubeClient.connect()
    with pytest.raises(ClusterError, match=r"kubeconfig .*absent does not exist"):
        KubeClient.connect(kubeconfig=str(tmp_path / "absent"))
    (tmp_path / "empty").write_text("")
    with pytest.raises(ClusterError, match=r"cannot use kubeconfig .*empty"):
        KubeClient.connect(kubeconfig=str(tmp_path / "empty"))


@pytest.mark.asyncio
async def test_unknown_context(kube: Kube) -> None:
    with pytest.raises(ClusterError, match=r"context 'prod' is not in the kubeconfig \(contexts: emulator, other\)"):
        KubeClient.connect(kubeconfig=str(kube.kubeconfig), context="prod")


# --------------------------------------------------------------------------- least privilege


@pytest.mark.asyncio
async def test_the_role_grants_exactly_what_the_client_uses(kube: Kube, tmp_path: Path) -> None:
    """Run every operation, map each request to its RBAC check, compare with deploy/'s Role."""
    client = kube.client()
    new = submission(tmp_path / "a")
    existing = submission(tmp_path / "b", cluster="search-cluster")
    await kube.run(client.submit, new)
    existing.rayjob["metadata"]["name"] = "other-v2-abcde"
    await kube.run(client.submit, existing)
    kube.add(PODS, pod(f"{new.name}-q8z", {"job-name": new.name}))
    (
        kube.mock["get", kube.mock.resource(PODS), kube.mock.subresource("log")]
        << (kube.mock.headers({"Content-Type": "text/plain"}))
        << b"hello\n"
    )
    await kube.run(client.list_jobs)
    await kube.run(client.inspect, new.name)
    await kube.run(lambda: list(client.logs(new.name)))
    await kube.run(client.cancel, new.name)
    await kube.run(client.cancel, "other-v2-abcde", delete=True)

    used = {rbac_permission(r.method.value, r.url.path, r.params) for r in kube.mock} - {None}
    role = by_kind(render_overlay(tmp_path / "render", "small"), "Role")["orchestrator"]
    assert used == role_permissions(role)
