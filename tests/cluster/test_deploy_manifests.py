"""deploy/: every overlay renders to valid, consistent manifests with least-privilege RBAC."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import yaml

from .helpers import (
    DEPLOY_K8S,
    OVERLAYS,
    REPO_ROOT,
    by_kind,
    render_overlay,
    role_permissions,
    split_image,
)

NAMESPACE = "orchestrator"
EXPECTED_KINDS = {
    "Namespace",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "Secret",
    "ConfigMap",
    "Deployment",
    "StatefulSet",
    "Service",
    "Job",
    "RayCluster",
}
LEAST_PRIVILEGE = {
    ("ray.io", "rayjobs", "create"),
    ("ray.io", "rayjobs", "get"),
    ("ray.io", "rayjobs", "list"),
    ("ray.io", "rayjobs", "patch"),
    ("ray.io", "rayjobs", "delete"),
    ("ray.io", "rayjobs/status", "get"),
    ("", "pods", "list"),
    ("", "pods/log", "get"),
    ("batch", "jobs", "get"),
    ("", "configmaps", "create"),
}
WORKLOADS = ("Deployment", "StatefulSet", "Job")


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[dict[str, Any]]]:
    overlay = request.param
    return overlay, render_overlay(tmp_path_factory.mktemp(overlay), overlay)


def _pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            out.append((f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]))
        elif obj["kind"] == "RayCluster":
            spec = obj["spec"]
            out.append(("RayCluster head", spec["headGroupSpec"]["template"]["spec"]))
            for group in spec.get("workerGroupSpecs", []):
                out.append((f"RayCluster {group['groupName']}", group["template"]["spec"]))
    return out


def _containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{where}/{c['name']}", c)
        for where, pod in _pod_specs(objects)
        for c in [*pod.get("initContainers", []), *pod["containers"]]
    ]


# --------------------------------------------------------------------------- rendering


def test_overlays_render_to_yaml_that_round_trips(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    text = yaml.safe_dump_all(objects)
    assert [o for o in yaml.safe_load_all(text) if o] == objects
    assert {o["kind"] for o in objects} == EXPECTED_KINDS
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "duplicate objects"


def test_every_object_is_well_formed_and_in_the_namespace(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, objects = rendered
    for obj in objects:
        assert obj.get("apiVersion") and obj.get("kind") and obj["metadata"].get("name"), obj
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", obj["metadata"]["name"])
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "orchestrator"
        assert labels["orchestrator.dev/overlay"] == overlay
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]


def test_images_are_set_by_the_overlay_and_pinned(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    images = {where: c["image"] for where, c in _containers(objects)}
    for where, image in images.items():
        name, tag, digest = split_image(image)
        assert "/" in name, f"{where}: {image} is not from a registry"
        assert (tag and tag != "latest") or digest, f"{where}: {image} is not pinned"
    ours = {i for i in images.values() if "/orchestrator" in i}
    assert ours == {"ghcr.io/your-org/orchestrator:0.1.0", "ghcr.io/your-org/orchestrator-mlflow:0.1.0"}
    assert images["Deployment/mlflow/mlflow"] == "ghcr.io/your-org/orchestrator-mlflow:0.1.0"
    assert images["RayCluster head/ray-head"] == "ghcr.io/your-org/orchestrator:0.1.0"


# --------------------------------------------------------------------------- RBAC


def test_role_grants_exactly_least_privilege(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    roles = by_kind(objects, "Role")
    assert list(roles) == ["orchestrator"]
    assert role_permissions(roles["orchestrator"]) == LEAST_PRIVILEGE
    for rule in roles["orchestrator"]["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert "resourceNames" not in rule
    assert not by_kind(objects, "ClusterRole") and not by_kind(objects, "ClusterRoleBinding")


def test_role_binding_binds_the_service_account_in_the_namespace(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    binding = by_kind(objects, "RoleBinding")["orchestrator"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "orchestrator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "orchestrator", "namespace": NAMESPACE}]
    assert "orchestrator" in by_kind(objects, "ServiceAccount")


# --------------------------------------------------------------------------- secrets


def test_secrets_are_referenced_never_inlined(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    secrets = {
        name: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
        for name, s in by_kind(objects, "Secret").items()
    }
    sensitive = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|STORE_URI")
    for where, container in _containers(objects):
        for env in container.get("env", []):
            if sensitive.search(env["name"]):
                assert "valueFrom" in env, f"{where}: {env['name']} is inlined"
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                assert ref["name"] in secrets, f"{where}: no Secret {ref['name']}"
                assert ref["key"] in secrets[ref["name"]], f"{where}: no key {ref['key']} in {ref['name']}"
        joined = " ".join(container.get("command", []) + container.get("args", []))
        for secret in secrets.values():
            for value in secret.values():
                assert len(value) < 8 or value not in joined, f"{where}: a secret value is in its command line"


def test_secret_files_are_ignored_by_git_and_examples_are_committed() -> None:
    ignore = (DEPLOY_K8S / ".gitignore").read_text().split()
    assert {"base/secrets.env", "components/mlflow-basic-auth/auth.env"} <= set(ignore)
    assert "components/mlflow-basic-auth/basic_auth.ini" in ignore
    assert (DEPLOY_K8S / "base" / "secrets.example.env").is_file()
    kustomization = yaml.safe_load((DEPLOY_K8S / "base" / "kustomization.yaml").read_text())
    (generator,) = kustomization["secretGenerator"]
    assert generator["envs"] == ["secrets.env"]


# --------------------------------------------------------------------------- workloads


def test_workloads_and_services_fit_together(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    pods = {}
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            template_labels = obj["spec"]["template"]["metadata"]["labels"]
            for key, value in obj["spec"]["selector"]["matchLabels"].items():
                assert template_labels[key] == value
            pods[obj["metadata"]["name"]] = obj["spec"]["template"]
            if obj["kind"] == "StatefulSet":
                assert obj["spec"]["serviceName"] in by_kind(objects, "Service")
    for name, service in by_kind(objects, "Service").items():
        matched = [
            t
            for t in pods.values()
            if all(t["metadata"]["labels"].get(k) == v for k, v in service["spec"]["selector"].items())
        ]
        assert len(matched) == 1, f"Service {name} selects {len(matched)} workloads"
        port_names = {p["name"] for c in matched[0]["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"Service {name}: no port {port['targetPort']}"
    for where, pod in _pod_specs(objects):
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            for mount in c.get("volumeMounts", []):
                templates = {"data"}  # volumeClaimTemplates of the StatefulSets
                assert mount["name"] in volumes | templates, f"{where}: volume {mount['name']}"


def test_pods_run_as_non_root(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    for where, pod in _pod_specs(objects):
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        for c in pod["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where


def test_mlflow_server_arguments(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, objects = rendered
    (container,) = by_kind(objects, "Deployment")["mlflow"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["mlflow", "server"]
    args = container["args"]
    assert "--serve-artifacts" in args
    assert "--artifacts-destination=s3://mlflow/artifacts" in args
    (hosts,) = [a.split("=", 1)[1].split(",") for a in args if a.startswith("--allowed-hosts=")]
    assert {"mlflow", "mlflow:5000", "mlflow.*.svc.cluster.local:5000"} <= set(hosts)
    assert "*" not in hosts
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["key"] == "MLFLOW_BACKEND_STORE_URI"
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio:9000"
    uri = base64.b64decode(by_kind(objects, "Secret")["orchestrator-secrets"]["data"]["MLFLOW_BACKEND_STORE_URI"])
    assert uri.decode().startswith("postgresql+psycopg://")  # psycopg 3: the image installs it
    if overlay == "gpu":
        assert "--app-name=basic-auth" in args
        assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == "/etc/mlflow-auth/basic_auth.ini"
        assert "mlflow-auth" in by_kind(objects, "Secret")
    else:
        assert not any("basic-auth" in a for a in args)
        assert "mlflow-auth" not in by_kind(objects, "Secret")


def test_raycluster_shape_per_overlay(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, objects = rendered
    spec = by_kind(objects, "RayCluster")["search-cluster"]["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    gpu = groups["gpu-workers"]
    assert gpu["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for group in groups.values():
        assert 0 <= group["minReplicas"] <= group["maxReplicas"]
    if overlay == "small":
        assert (gpu["maxReplicas"], groups["cpu-workers"]["maxReplicas"]) == (1, 2)
    else:
        assert set(groups) == {"gpu-workers"} and gpu["maxReplicas"] == 8
        assert gpu["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}


# --------------------------------------------------------------------------- files around


def test_dockerfile_builds_from_the_pinned_ray_image_as_non_root() -> None:
    text = (REPO_ROOT / "deploy" / "Dockerfile").read_text()
    assert "rayproject/ray:2.60.0-py311-gpu" in text
    assert re.search(r"^USER ray\s*$", text, re.M) and "AS mlflow-server" in text
    last_user = re.findall(r"^USER (\S+)", text, re.M)[-1]
    assert last_user not in ("root", "0")
    assert "ci-constraints.txt" in text and '"mlflow[auth]"' in text


def test_readme_covers_the_way_from_empty_cluster_to_running_search() -> None:
    text = (REPO_ROOT / "deploy" / "README.md").read_text()
    for step in (
        "helm install kuberay-operator",
        "docker build",
        "secrets.example.env",
        "kubectl apply -k deploy/k8s/overlays/",
        "orchestrator submit",
        "orchestrator jobs logs",
    ):
        assert step in text, step


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("orchestrator", ("orchestrator", "", "")),
        ("ghcr.io/a/b:1.2", ("ghcr.io/a/b", "1.2", "")),
        ("localhost:5000/b", ("localhost:5000/b", "", "")),
        ("b@sha256:00", ("b", "", "sha256:00")),
    ],
)
def test_split_image(image: str, parts: tuple[str, str, str]) -> None:
    assert split_image(image) == parts
