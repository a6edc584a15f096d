"""``submit --ray-address`` without a cluster: what is submitted, what is refused, and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.cluster.bundle import SpaceBundle
from orchestrator.cluster.cli import jobs, submit
from orchestrator.cluster.errors import ClusterError
from orchestrator.cluster.rayjobs import (
    STOP_WAIT_S,
    RayJobOptions,
    build_ray_submission,
    check_address,
    credentials_note,
)
from orchestrator.tracking.server import free_loopback_port
from tests.probes import modules_after

from .helpers import write_study
from .kube import assert_clean_error, invoke

ADDRESS = "http://head.example:8265"
PASSWORD = "pl4nted-Pa55w0rd"


def test_the_space_and_its_lineage_travel_as_the_working_dir_and_the_entrypoint_runs_the_search(
    tmp_path: Path,
) -> None:
    bundle = SpaceBundle.from_path(write_study(tmp_path, versions=3))
    opts = RayJobOptions(ADDRESS, "http://mlflow.team:5000", trials=12, concurrency=3, storage="s3://bucket/runs")
    job = build_ray_submission(bundle, opts, suffix="x7k2p")
    assert job.submission_id == "demo-v3-x7k2p"
    assert sorted(job.files) == ["demo/v1.yaml", "demo/v2.yaml", "demo/v3.yaml"]
    assert job.files["demo/v3.yaml"] == (tmp_path / "demo" / "v3.yaml").read_text()
    assert job.entrypoint == (
        "orchestrator run demo/v3.yaml --address auto --trials 12 --tracking-uri http://mlflow.team:5000 "
        "--concurrency 3 --storage s3://bucket/runs"
    )
    assert job.env_vars == {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S)}
    assert job.metadata == {
        "orchestrator": "search",
        "study": "demo",
        "version": "3",
        "space_hash": bundle.short_hash,
        "space_file": str(tmp_path / "demo" / "v3.yaml"),
        "trials": "12",
        "tracking_uri": "http://mlflow.team:5000",
    }
    assert job.runtime_env(tmp_path) == {"working_dir": str(tmp_path), "env_vars": job.env_vars}


def test_a_login_in_the_tracking_uri_never_travels_and_a_database_login_is_refused(tmp_path: Path) -> None:
    bundle = SpaceBundle.from_path(write_study(tmp_path))
    opts = RayJobOptions(ADDRESS, f"http://alice:{PASSWORD}@mlflow.team:5000")
    job = build_ray_submission(bundle, opts)
    assert PASSWORD not in repr(job.describe(ADDRESS)) and "alice" not in job.entrypoint
    assert job.metadata["tracking_uri"] == "http://mlflow.team:5000"
    assert "MLFLOW_TRACKING_PASSWORD of the Ray head's own environment" in (credentials_note(opts) or "")
    with pytest.raises(ClusterError, match="credentials would have to be inline") as refused:
        build_ray_submission(bundle, RayJobOptions(ADDRESS, f"postgresql://u:{PASSWORD}@db/mlflow"))
    assert PASSWORD not in str(refused.value)


@pytest.mark.parametrize(
    ("address", "message"),
    [
        (f"http://ray:{PASSWORD}@head:8265", "a login in the address is never sent"),
        ("head:8265", "is not a URL"),
        ("ray://head:10001", "is not a URL"),
        ("http://head:8265/api/jobs", "is not a URL"),
    ],
)
def test_the_ray_address_is_the_heads_jobs_api_url(address: str, message: str) -> None:
    with pytest.raises(ClusterError, match=message) as refused:
        check_address(address)
    assert PASSWORD not in str(refused.value)
    assert check_address("http://127.0.0.1:8265/") == "http://127.0.0.1:8265"


def test_dry_run_prints_what_would_be_submitted_and_imports_nothing_heavy(tmp_path: Path) -> None:
    space = write_study(tmp_path, versions=2)
    uri = f"http://alice:{PASSWORD}@mlflow.team:5000"
    args = [str(space), "--ray-address", ADDRESS, "--tracking-uri", uri, "--trials", "5", "--dry-run"]
    result = invoke(submit, *args)
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output and "alice" not in result.output
    assert result.stderr.startswith("note: the credentials in --tracking-uri are not submitted")
    shown = yaml.safe_load(result.stdout)
    assert shown["address"] == ADDRESS
    assert shown["entrypoint"].startswith("orchestrator run demo/v2.yaml --address auto --trials 5 --tracking-uri ")
    assert sorted(shown["runtime_env"]["working_dir"]) == ["demo/v1.yaml", "demo/v2.yaml"]
    assert shown["metadata"]["tracking_uri"] == "http://mlflow.team:5000"
    code = f"from orchestrator.cluster.cli import submit\nsubmit.main({args!r}, standalone_mode=False)"
    assert not modules_after(code) & {"torch", "ray", "mlflow", "kubernetes"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "team"], "--namespace is for KubeRay on Kubernetes, not for --ray-address"),
        (["--cluster", "c"], "--cluster is for KubeRay"),
        (["--new-cluster", "--ttl", "5"], "--new-cluster, --ttl are for KubeRay"),
    ],
)
def test_kubernetes_options_do_not_mix_with_a_ray_address(tmp_path: Path, args: list[str], message: str) -> None:
    space = str(write_study(tmp_path))
    result = invoke(submit, space, "--ray-address", ADDRESS, "--tracking-uri", "http://m:5000", "--dry-run", *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    result = invoke(jobs, "list", "--ray-address", ADDRESS, *args[:2])
    if args[0] == "-n":
        assert result.exit_code == 2 and "--namespace is for KubeRay" in result.stderr, result.output


def test_a_ray_address_needs_a_tracking_uri(tmp_path: Path) -> None:
    result = invoke(submit, str(write_study(tmp_path)), "--ray-address", ADDRESS, "--dry-run")
    assert result.exit_code == 2 and "--ray-address needs --tracking-uri" in result.stderr


def test_nothing_answering_at_the_address_is_one_line_naming_the_job_server(tmp_path: Path) -> None:
    address = f"http://127.0.0.1:{free_loopback_port()}"
    result = invoke(submit, str(write_study(tmp_path)), "--ray-address", address, "--tracking-uri", "http://m:5000")
    assert_clean_error(result, f"no Ray job server answers at the Ray cluster at {address}", "8265")
    assert len(result.stderr.strip().splitlines()) == 1
    result = invoke(jobs, "status", "demo-v1-x7k2p", "--ray-address", address)
    assert_clean_error(result, "no Ray job server answers")
