"""``orchestrator submit`` and ``orchestrator jobs ...`` end to end against kmock's emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.cluster.cli import jobs, submit
from tests.probes import modules_after

from .helpers import write_study
from .kube import IMAGE_PULL, NAMESPACE, RAYJOBS, Kube, ainvoke, assert_clean_error, invoke, pod, rayjob, status_error

IMAGE = "registry.example.com/orchestrator:0.1.0"


# --------------------------------------------------------------------------- submit


@pytest.mark.asyncio
async def test_dry_run_prints_every_object_and_contacts_no_cluster(kube: Kube, tmp_path: Path) -> None:
    space = write_study(tmp_path, versions=2, gpu=1)
    result = await ainvoke(kube, submit, str(space), "--new-cluster", "--image", IMAGE, "-n", "team", "--dry-run")
    assert result.exit_code == 0, result.output
    job, cm = yaml.safe_load_all(result.stdout)
    assert (job["kind"], cm["kind"]) == ("RayJob", "ConfigMap")
    assert job["metadata"]["namespace"] == cm["metadata"]["namespace"] == "team"
    assert sorted(cm["data"]) == ["v1.yaml", "v2.yaml"]
    assert list(kube.mock) == []


def test_dry_run_for_an_existing_cluster_prints_only_the_rayjob(tmp_path: Path) -> None:
    result = invoke(submit, str(write_study(tmp_path)), "--cluster", "search-cluster", "--dry-run")
    assert result.exit_code == 0, result.output
    (job,) = yaml.safe_load_all(result.stdout)
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": "search-cluster"}
    assert job["metadata"]["namespace"] == "default"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--cluster NAME, --new-cluster or --ray-address URL"),
        (["--cluster", "c", "--new-cluster"], "--cluster NAME, --new-cluster or --ray-address URL"),
        (["--cluster", "c", "--image", "x:1"], "--image applies to --new-cluster"),
        (["--new-cluster", "--image", "x:1", "--trials", "0"], "--trials"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke(submit, str(write_study(tmp_path)), "--dry-run", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_invalid_space_file_is_one_clean_error(tmp_path: Path) -> None:
    space = write_study(tmp_path)
    space.write_text(space.read_text().replace("mode: min", "mode: sideways"))
    result = invoke(submit, str(space), "--new-cluster", "--image", IMAGE, "--dry-run")
    assert_clean_error(result, str(space), "metric.mode")
    result = invoke(submit, str(tmp_path / "nope.yaml"), "--new-cluster", "--image", IMAGE, "--dry-run")
    assert_clean_error(result, "no such file")


def test_new_cluster_without_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCHESTRATOR_IMAGE", raising=False)
    result = invoke(submit, str(write_study(tmp_path)), "--new-cluster", "--dry-run")
    assert_clean_error(result, "--image")
    monkeypatch.setenv("ORCHESTRATOR_IMAGE", IMAGE)
    assert invoke(submit, str(write_study(tmp_path)), "--new-cluster", "--dry-run").exit_code == 0


@pytest.mark.asyncio
async def test_submit(kube: Kube, tmp_path: Path) -> None:
    space = write_study(tmp_path, versions=2, gpu=0.5)
    result = await ainvoke(kube, submit, str(space), "--new-cluster", "--image", IMAGE, "--trials", "12")
    assert result.exit_code == 0, result.output
    (name,) = [key[2] for key in kube.mock.objects if key[0] == kube.mock.resource(RAYJOBS)]
    assert name.startswith("demo-v2-")
    assert f"submitted RayJob {name} in namespace {NAMESPACE}: demo v2" in result.stdout
    assert "12 trials on a new cluster" in result.stdout
    assert f"orchestrator jobs logs {name} -n {NAMESPACE} --follow" in result.stdout
    assert "--trials 12" in kube.mock.objects[RAYJOBS, NAMESPACE, name]["spec"]["entrypoint"]


@pytest.mark.asyncio
async def test_submit_errors_are_clean(kube: Kube, tmp_path: Path) -> None:
    kube.mock["post", kube.mock.resource(RAYJOBS)] ** 1 << status_error(403, "Forbidden", "denied")
    space = write_study(tmp_path)
    result = await ainvoke(kube, submit, str(space), "--cluster", "search-cluster")
    assert_clean_error(result, "forbidden by RBAC: cannot create rayjobs.ray.io in namespace 'team'")


# --------------------------------------------------------------------------- jobs


@pytest.mark.asyncio
async def test_jobs_list(kube: Kube) -> None:
    empty = await ainvoke(kube, jobs, "list")
    assert empty.exit_code == 0 and empty.stdout.strip() == "no RayJobs in namespace team"
    kube.add(RAYJOBS, rayjob("demo-v2-abcde"))
    kube.add(
        RAYJOBS, rayjob("demo-v3-fghij", selector="search-cluster", status={"jobDeploymentStatus": "Initializing"})
    )
    result = await ainvoke(kube, jobs, "list")
    assert result.exit_code == 0, result.output
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["NAME", "STUDY", "VERSION", "SPACE", "CLUSTER", "DEPLOYMENT", "JOB", "AGE"]
    assert first.split()[:7] == ["demo-v2-abcde", "demo", "2", "-", "demo-v2-abcde-x7k2p", "Running", "RUNNING"]
    assert second.split()[:7] == ["demo-v3-fghij", "demo", "2", "-", "search-cluster", "Initializing", "-"]


@pytest.mark.asyncio
async def test_jobs_status_healthy(kube: Kube) -> None:
    kube.add(RAYJOBS, rayjob("demo-v2-abcde"))
    result = await ainvoke(kube, jobs, "status", "demo-v2-abcde")
    assert result.exit_code == 0, result.output
    assert "deployment:  Running" in result.stdout and "ray job:     RUNNING" in result.stdout
    assert "problems" not in result.stdout


@pytest.mark.asyncio
async def test_jobs_status_exits_1_when_an_image_cannot_be_pulled(kube: Kube) -> None:
    kube.add(RAYJOBS, rayjob("demo-v2-abcde", status={"jobDeploymentStatus": "Initializing", "rayClusterName": "c"}))
    kube.add("v1/pods", pod("c-head", {"ray.io/cluster": "c", "ray.io/node-type": "head"}, IMAGE_PULL))
    result = await ainvoke(kube, jobs, "status", "demo-v2-abcde")
    assert "x head pod c-head: ImagePullBackOff" in result.stdout
    assert_clean_error(result, "RayJob demo-v2-abcde cannot start", "registry.example.com/orchestrator:typo")


@pytest.mark.asyncio
async def test_jobs_logs(kube: Kube) -> None:
    kube.add(RAYJOBS, rayjob("demo-v2-abcde"))
    kube.add("v1/pods", pod("demo-v2-abcde-q8z", {"job-name": "demo-v2-abcde"}))
    (
        kube.mock["get", kube.mock.resource("v1/pods"), kube.mock.subresource("log")]
        << (kube.mock.headers({"Content-Type": "text/plain"}))
        << (b"best so far: 0.91\n", b"done\n")
    )
    result = await ainvoke(kube, jobs, "logs", "demo-v2-abcde", "--follow")
    assert result.exit_code == 0, result.output
    assert result.stdout == "best so far: 0.91\ndone\n"


@pytest.mark.asyncio
async def test_jobs_cancel(kube: Kube) -> None:
    kube.add(RAYJOBS, rayjob("demo-v2-abcde"))
    result = await ainvoke(kube, jobs, "cancel", "demo-v2-abcde")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("suspended RayJob demo-v2-abcde")
    assert '--type merge -p \'{"spec":{"suspend":false}}\'' in result.stdout
    result = await ainvoke(kube, jobs, "cancel", "demo-v2-abcde", "--delete")
    assert result.stdout.startswith("deleted RayJob demo-v2-abcde")


@pytest.mark.asyncio
async def test_jobs_errors_are_clean(kube: Kube) -> None:
    result = await ainvoke(kube, jobs, "status", "ghost")
    assert_clean_error(result, "RayJob 'ghost' not found in namespace 'team'")
    result = await ainvoke(kube, jobs, "logs", "ghost", "--context", "prod")
    assert_clean_error(result, "context 'prod' is not in the kubeconfig")


# --------------------------------------------------------------------------- imports


def test_importing_the_cli_is_light() -> None:
    loaded = modules_after("import orchestrator.cluster.cli")
    assert not loaded & {"torch", "ray", "mlflow", "kubernetes"}, loaded & {"torch", "ray", "mlflow", "kubernetes"}


def test_dry_run_imports_neither_kubernetes_nor_heavy_modules(tmp_path: Path) -> None:
    space = write_study(tmp_path)
    code = (
        "from orchestrator.cluster.cli import submit\n"
        f"submit.main([{str(space)!r}, '--new-cluster', '--image', 'x:1', '--dry-run'], standalone_mode=False)"
    )
    loaded = modules_after(code)
    assert not loaded & {"torch", "ray", "mlflow", "kubernetes"}


def test_the_client_imports_neither_torch_nor_ray() -> None:
    loaded = modules_after("import orchestrator.cluster.client")
    assert "kubernetes" in loaded
    assert not loaded & {"torch", "ray", "mlflow"}
