"""Shared helpers of the cluster tests: CRD schemas, space files, rendered overlays, RBAC."""

from __future__ import annotations

import base64
import copy
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.spacefiles import write_space

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT.parent / "shared" / "k8s" / "crds"
DEPLOY_K8S = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ("small", "gpu")
CRD_FILES = {"RayJob": "ray.io_rayjobs.yaml", "RayCluster": "ray.io_rayclusters.yaml"}

# Secrets kept out of git; their committed examples stand in for them while rendering.
EXAMPLE_FILES = {
    "base/secrets.env": "base/secrets.example.env",
    "components/mlflow-basic-auth/auth.env": "components/mlflow-basic-auth/auth.example.env",
    "components/mlflow-basic-auth/basic_auth.ini": "components/mlflow-basic-auth/basic_auth.example.ini",
}


# --------------------------------------------------------------------------- CRD schemas


def _to_json_schema(node: Any, strict: bool) -> Any:
    """An OpenAPI v3 (structural) CRD schema as JSON Schema.

    ``x-kubernetes-*`` keys go (CEL rules cannot be checked here), int-or-string becomes
    ``anyOf: [integer, string]``, ``nullable`` allows null, and with ``strict`` an object
    with declared properties rejects unknown ones (the API server would silently prune them,
    hiding a misspelt field).
    """
    if isinstance(node, list):
        return [_to_json_schema(x, strict) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {name: _to_json_schema(sub, strict) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = _to_json_schema(value, strict)
        elif key == "nullable":
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if strict and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(kind: str, version: str = "v1") -> jsonschema.Draft7Validator:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 5x faster on 25k lines
    crd = yaml.load((CRD_DIR / CRD_FILES[kind]).read_text(), Loader=loader)
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _to_json_schema(copy.deepcopy(served["schema"]["openAPIV3Schema"]), strict=True)
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(obj: Mapping[str, Any]) -> list[str]:
    """Where ``obj`` breaks its CRD's v1 schema (empty when it is valid)."""
    validator = crd_validator(obj["kind"], obj["apiVersion"].split("/")[1])
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
    ]


# --------------------------------------------------------------------------- space files


def write_study(
    root: Path,
    study: str = "demo",
    versions: int = 1,
    *,
    cpu: float = 1,
    gpu: float = 0,
    trials: int = 8,
    concurrency: int | None = None,
) -> Path:
    """``root/<study>/v1.yaml ... vN.yaml`` (each searching x in [-1, 1] with these resources); returns the last."""
    search: dict[str, Any] = {"trials": trials}
    if concurrency:
        search["concurrency"] = concurrency
    sections = {"fixed": None, "resources": {"cpu": cpu, "gpu": gpu}, "search": search}
    paths = [write_space(root, study=study, version=v, **sections) for v in range(1, versions + 1)]
    return paths[-1]


# --------------------------------------------------------------------------- overlays


def deploy_copy(tmp: Path) -> Path:
    """``deploy/k8s`` copied to ``tmp`` with the example credentials in place of real ones."""
    target = tmp / "k8s"
    shutil.copytree(DEPLOY_K8S, target)
    for real, example in EXAMPLE_FILES.items():
        if not (target / real).exists():
            shutil.copyfile(target / example, target / real)
    return target


def kustomize(folder: Path, scratch: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize folder`` prints; the test is skipped where kubectl is missing.

    kubectl gets an empty kubeconfig (written in ``scratch``), so it can never contact a cluster."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the overlays are rendered with `kubectl kustomize`")
    kubeconfig = scratch / "empty-kubeconfig"
    kubeconfig.touch()
    done = subprocess.run(
        [kubectl, "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )
    assert done.returncode == 0, f"kubectl kustomize {folder} failed:\n{done.stderr}"
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


def render_overlay(tmp: Path, overlay: str) -> list[dict[str, Any]]:
    """``deploy/k8s/overlays/<overlay>`` rendered from a copy in ``tmp`` (example credentials in place)."""
    return kustomize(deploy_copy(tmp) / "overlays" / overlay, tmp)


def split_image(image: str) -> tuple[str, str, str]:
    """``registry:5000/org/name:tag@sha256:...`` -> (name with registry, tag, digest)."""
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest
    return rest, "", digest


def by_kind(objects: Iterable[Mapping[str, Any]], kind: str) -> dict[str, Any]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def normalized(objects: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], Any]:
    """Objects keyed by (kind, namespace, name), Secret data decoded (kustomize wraps base64)."""
    out = {}
    for obj in objects:
        obj = copy.deepcopy(dict(obj))
        if obj["kind"] == "Secret":
            obj["data"] = {k: base64.b64decode("".join(v.split())).decode() for k, v in obj.get("data", {}).items()}
        meta = obj["metadata"]
        out[obj["kind"], meta.get("namespace", ""), meta["name"]] = obj
    return out


# --------------------------------------------------------------------------- RBAC


def role_permissions(role: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) for every combination a Role grants."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/namespaces/(?P<ns>[^/]+)/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


def rbac_permission(method: str, path: str, params: Mapping[str, str]) -> tuple[str, str, str] | None:
    """What RBAC checks for a namespaced API request; None for discovery (allowed to all)."""
    m = _PATH.match(path)
    if m is None:
        return None
    group = "" if m["core"] else m["group"]
    resource = m["resource"] + (f"/{m['sub']}" if m["sub"] else "")
    method = method.upper()
    if method == "GET":
        verb = "watch" if params.get("watch") in ("true", "1") else ("get" if m["name"] else "list")
    elif method == "DELETE":
        verb = "delete" if m["name"] else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]
    return group, resource, verb
