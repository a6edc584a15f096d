"""Building RayJobs, RayClusters and ConfigMaps from space files (pure; no cluster)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from orchestrator.cluster import bundle as bundle_mod
from orchestrator.cluster import names
from orchestrator.cluster.bundle import SpaceBundle, pack, unpack
from orchestrator.cluster.errors import ClusterError
from orchestrator.cluster.rayjob import (
    JobOptions,
    build_submission,
    to_yaml,
    with_owner,
    worker_shape,
)
from orchestrator.spaces import SpaceError

from .helpers import REPO_ROOT, write_study

IMAGE = "registry.example.com/orchestrator:0.1.0"


LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")  # Kubernetes' rule for a label value


def is_label_value(value: str) -> bool:
    """Whether ``value`` is a valid Kubernetes label value (at most 63 characters)."""
    return len(value) <= names.MAX_LABEL_VALUE and bool(LABEL_VALUE.match(value))


def new_cluster(**kw: object) -> JobOptions:
    return JobOptions(namespace="team", image=IMAGE, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "study",
    ["unet_dstl", "9lives", "a" * 80, "Mixed.Case_name-", "x", "___"],
)
def test_rayjob_names_are_dns1035_and_short_enough_for_kuberay(study: str) -> None:
    name = names.rayjob_name(study, 123, "ab1cd")
    assert names.is_dns1035(name, names.MAX_RAYJOB_NAME), name
    assert name.endswith("-v123-ab1cd")


@pytest.mark.parametrize("text", ["unet_dstl", "a" * 100, "a.b-c_", "-x-", "weird name/with:chars"])
def test_label_values_are_valid(text: str) -> None:
    assert is_label_value(names.label_value(text))


# --------------------------------------------------------------------------- worker sizing


@pytest.mark.parametrize(
    ("cpu", "gpu", "expected"),
    [
        (2, 0.5, (4, 1, 2)),  # two trials share a card
        (1, 0.25, (4, 1, 4)),
        (2, 0.3, (6, 1, 3)),
        (4, 1, (4, 1, 1)),
        (2, 2, (2, 2, 1)),  # multi-GPU trial
        (1.5, 0, (2, 0, 1)),  # CPU only
    ],
)
def test_worker_shape(cpu: float, gpu: float, expected: tuple[int, int, int]) -> None:
    shape = worker_shape(cpu, gpu)
    assert (shape.cpus, shape.gpus, shape.trials_per_worker) == expected
    assert shape.group_name == ("gpu-workers" if gpu else "cpu-workers")


def test_worker_shape_with_more_gpus_per_worker() -> None:
    shape = worker_shape(2, 0.5, gpus_per_worker=4)
    assert (shape.gpus, shape.trials_per_worker, shape.cpus) == (4, 8, 16)
    with pytest.raises(ValueError, match="cannot hold"):
        worker_shape(1, 3, gpus_per_worker=2)


# --------------------------------------------------------------------------- bundle


def test_bundle_ships_every_version_of_the_study(tmp_path: Path) -> None:
    path = write_study(tmp_path, versions=3)
    b = SpaceBundle.from_path(path)
    assert (b.study, b.version, b.file_name) == ("demo", 3, "v3.yaml")
    assert sorted(b.files) == ["v1.yaml", "v2.yaml", "v3.yaml"]
    assert b.files["v2.yaml"] == (path.parent / "v2.yaml").read_text()


def test_bundle_of_the_repository_spaces() -> None:
    b = SpaceBundle.from_path(REPO_ROOT / "search_spaces" / "unet_dstl" / "v2.yaml")
    assert sorted(b.files) == ["v1.yaml", "v2.yaml"]
    assert b.gpu == 0.5


def test_bundle_rejects_an_invalid_space(tmp_path: Path) -> None:
    path = write_study(tmp_path)
    path.write_text(path.read_text().replace("trainable: analytic", "trainable: 3"))
    with pytest.raises(SpaceError):
        SpaceBundle.from_path(path)
    with pytest.raises(SpaceError, match="no such file"):
        SpaceBundle.from_path(tmp_path / "demo" / "v9.yaml")


def test_pack_unpack_round_trip_is_shell_safe() -> None:
    files = {"v1.yaml": "a: 1\n# ünïcode, 'quotes' \"and\" $(dollars) `ticks`\n", "v2.yaml": "b: 2\n"}
    token = pack(files)
    assert shlex.split(token) == [token]
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
    assert unpack(token) == files


def test_unpack_refuses_damaged_tokens_and_unsafe_names() -> None:
    with pytest.raises(ValueError, match="damaged"):
        unpack("not-a-bundle")
    with pytest.raises(ValueError, match="unsafe file name"):
        unpack(_raw_pack({"../evil.yaml": "x"}))


def _raw_pack(files: dict[str, str]) -> str:
    """Like ``pack`` but without its checks, to forge a hostile bundle."""
    return base64.urlsafe_b64encode(gzip.compress(json.dumps(files).encode())).decode()


def test_pack_refuses_files_too_large_for_the_entrypoint() -> None:
    big = {"v1.yaml": os.urandom(200_000).hex()}
    with pytest.raises(ClusterError, match="too large"):
        pack(big)


def test_launcher_writes_the_files_and_execs_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(bundle_mod.os, "execvp", lambda f, argv: calls.append((f, list(argv))))
    token = pack({"v1.yaml": "study: demo\n"})
    into = tmp_path / "job" / "demo"
    bundle_mod.launch(["--into", str(into), "--bundle", token, "--", "orchestrator", "run", f"{into}/v1.yaml"])
    assert (into / "v1.yaml").read_text() == "study: demo\n"
    assert calls == [("orchestrator", ["orchestrator", "run", f"{into}/v1.yaml"])]


def test_launcher_fails_cleanly_on_a_damaged_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bundle_mod.launch(["--into", str(tmp_path), "--bundle", "garbage", "--", "true"])
    assert exc.value.code == 1
    assert "damaged space bundle" in capsys.readouterr().err


# --------------------------------------------------------------------------- RayJob bodies


def test_new_cluster_job(tmp_path: Path) -> None:
    b = SpaceBundle.from_path(write_study(tmp_path, versions=2, cpu=2, gpu=0.5, concurrency=6))
    sub = build_submission(b, new_cluster(trials=30), suffix="abcde")
    job, cm = sub.rayjob, sub.configmap
    assert sub.name == "demo-v2-abcde"
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == 600
    assert "clusterSelector" not in spec
    assert shlex.split(spec["entrypoint"]) == [
        "orchestrator",
        "run",
        "/home/ray/search_spaces/demo/v2.yaml",
        "--address",
        "auto",
        "--trials",
        "30",
        "--tracking-uri",
        "http://mlflow:5000",
        "--concurrency",
        "6",
    ]
    assert yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    labels = job["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/managed-by": "orchestrator",
        "orchestrator.dev/study": "demo",
        "orchestrator.dev/version": "2",
        "orchestrator.dev/space-hash": b.short_hash,
    }
    assert job["metadata"]["annotations"]["orchestrator.dev/content-hash"] == b.content_hash

    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    head = cluster["headGroupSpec"]["template"]["spec"]
    assert head["volumes"][-1] == {"name": "search-space", "configMap": {"name": "demo-v2-abcde-space"}}
    mount = head["containers"][0]["volumeMounts"][-1]
    assert mount["mountPath"] == "/home/ray/search_spaces/demo" and mount["readOnly"]
    (group,) = cluster["workerGroupSpecs"]
    assert (group["minReplicas"], group["maxReplicas"]) == (0, 3)  # 6 trials, 2 per card
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}

    assert cm is not None and cm["metadata"]["name"] == "demo-v2-abcde-space"
    assert cm["data"] == dict(b.files)
    assert sub.objects == [job, cm]


def test_existing_cluster_job_carries_the_files_in_the_entrypoint(tmp_path: Path) -> None:
    b = SpaceBundle.from_path(write_study(tmp_path, versions=2))
    sub = build_submission(b, JobOptions(namespace="team", cluster="search-cluster"), suffix="xyz12")
    spec = sub.rayjob["spec"]
    assert sub.configmap is None
    assert spec["clusterSelector"] == {"ray.io/cluster": "search-cluster"}
    assert "rayClusterSpec" not in spec and "shutdownAfterJobFinishes" not in spec
    argv = shlex.split(spec["entrypoint"])
    folder = "/tmp/orchestrator/demo-v2-xyz12/demo"
    assert argv[:5] == ["python", "-m", "orchestrator.cluster.bundle", "--into", folder]
    assert unpack(argv[6]) == dict(b.files)
    assert argv[7:] == [
        "--",
        "orchestrator",
        "run",
        f"{folder}/v2.yaml",
        "--address",
        "auto",
        "--trials",
        "8",
        "--tracking-uri",
        "http://mlflow:5000",
    ]


def test_the_entrypoint_survives_the_shells_and_runs_the_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Round trip: split the entrypoint as a shell would, run the launcher, load what it wrote."""
    from orchestrator.spaces import load_with_lineage

    b = SpaceBundle.from_path(write_study(tmp_path / "src", versions=3))
    sub = build_submission(b, JobOptions(namespace="team", cluster="c"), suffix="aaaaa")
    # KubeRay's submitter script splits it, `ray job submit` joins the words, Ray's job
    # manager runs the result through a shell again.
    argv = shlex.split(" ".join(shlex.split(sub.rayjob["spec"]["entrypoint"])))
    folder = tmp_path / "cluster"
    argv[argv.index("--into") + 1] = str(folder / "demo")
    run_argv = argv[argv.index("--") + 1 :]
    ran: list[list[str]] = []
    monkeypatch.setattr(bundle_mod.os, "execvp", lambda f, a: ran.append(list(a)))
    bundle_mod.launch(argv[3:])
    assert ran[0][:2] == ["orchestrator", "run"] and ran[0][3:] == run_argv[3:]
    version, lineage = load_with_lineage(folder / "demo" / "v3.yaml")
    assert version.content_hash == b.content_hash
    assert [v.version for v in lineage] == [1, 2, 3]


@pytest.mark.parametrize("uri", ["http://mlflow:5000/?a=1&b=2", "http://x/$(reboot)", "http://a b"])
def test_unsafe_tracking_uris_are_refused(tmp_path: Path, uri: str) -> None:
    b = SpaceBundle.from_path(write_study(tmp_path))
    with pytest.raises(ClusterError, match="two shells"):
        build_submission(b, new_cluster(tracking_uri=uri))


def test_new_cluster_needs_an_image(tmp_path: Path) -> None:
    b = SpaceBundle.from_path(write_study(tmp_path))
    with pytest.raises(ClusterError, match="--image"):
        build_submission(b, JobOptions(namespace="team"))


def test_cpu_only_space_gets_a_cpu_worker_group(tmp_path: Path) -> None:
    b = SpaceBundle.from_path(write_study(tmp_path, cpu=3, gpu=0))
    spec = build_submission(b, new_cluster(max_workers=5)).rayjob["spec"]["rayClusterSpec"]
    (group,) = spec["workerGroupSpecs"]
    assert group["groupName"] == "cpu-workers" and group["maxReplicas"] == 5
    pod = group["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "tolerations" not in pod


def test_long_study_names_give_valid_names_and_labels(tmp_path: Path) -> None:
    study = "A_very.long-study_name_" + "x" * 70
    b = SpaceBundle.from_path(write_study(tmp_path, study=study))
    sub = build_submission(b, new_cluster())
    assert names.is_dns1035(sub.name, 47)
    assert all(is_label_value(v) for v in sub.rayjob["metadata"]["labels"].values())
    assert sub.rayjob["metadata"]["annotations"]["orchestrator.dev/study"] == study


def test_owner_reference_needs_the_created_uid(tmp_path: Path) -> None:
    sub = build_submission(SpaceBundle.from_path(write_study(tmp_path)), new_cluster())
    assert sub.configmap is not None
    assert with_owner(sub.configmap, sub.rayjob) == sub.configmap  # not created yet: no uid
    created = {**sub.rayjob, "metadata": {**sub.rayjob["metadata"], "uid": "u-1"}}
    (owner,) = with_owner(sub.configmap, created)["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "ray.io/v1", "kind": "RayJob", "name": sub.name, "uid": "u-1", "controller": False}


def test_yaml_output_is_plain_and_round_trips(tmp_path: Path) -> None:
    sub = build_submission(SpaceBundle.from_path(write_study(tmp_path, versions=2)), new_cluster())
    text = to_yaml(sub.objects)
    assert "&id" not in text and "*id" not in text
    assert list(yaml.safe_load_all(text)) == sub.objects
    assert "v1.yaml: |" in text
