"""A small kustomize renderer for the features ``deploy/k8s`` uses, so tests need no kubectl.

Supported: ``resources`` (files and folders), ``components``, ``namespace``, ``labels``
(``pairs`` on ``metadata.labels`` only), ``images``, ``patches`` holding RFC 6902 JSON patches
(inline or from a file, with a ``target``), and ``secretGenerator``/``configMapGenerator``
with ``envs``/``files``/``literals`` and ``disableNameSuffixHash: true``. Anything else raises
``NotImplementedError`` so the renderer never silently differs from kustomize; where kubectl
is installed, a test compares the two outputs.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KNOWN_FIELDS = {
    "apiVersion", "kind", "resources", "components", "namespace", "labels", "images",
    "patches", "secretGenerator", "configMapGenerator",
}  # fmt: skip
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
}  # fmt: skip

Object = dict[str, Any]


def render(folder: str | Path) -> list[Object]:
    """The objects ``kustomize build folder`` would print (order aside)."""
    return _build(Path(folder), allow_component=False)


def _load_kustomization(folder: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        path = folder / name
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            unknown = set(data) - KNOWN_FIELDS
            if unknown:
                raise NotImplementedError(f"{path}: unsupported fields {sorted(unknown)}")
            return data
    raise FileNotFoundError(f"no kustomization file in {folder}")


def _build(folder: Path, allow_component: bool) -> list[Object]:
    k = _load_kustomization(folder)
    if k.get("kind") == "Component" and not allow_component:
        raise ValueError(f"{folder} is a Component; list it under components:")
    objects: list[Object] = []
    for entry in k.get("resources", []):
        path = folder / entry
        if path.is_dir():
            objects += _build(path, allow_component=False)
        else:
            objects += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for entry in k.get("components", []):
        objects = _apply_component(folder / entry, objects)
    return _transform(folder, k, objects)


def _apply_component(folder: Path, objects: list[Object]) -> list[Object]:
    k = _load_kustomization(folder)
    if k.get("kind") != "Component":
        raise ValueError(f"{folder} is not a Component")
    own = _build_resources_only(folder, k)
    return _transform(folder, k, objects + own)


def _build_resources_only(folder: Path, k: dict[str, Any]) -> list[Object]:
    out: list[Object] = []
    for entry in k.get("resources", []):
        out += [d for d in yaml.safe_load_all((folder / entry).read_text()) if d]
    return out


def _transform(folder: Path, k: dict[str, Any], objects: list[Object]) -> list[Object]:
    objects = [copy.deepcopy(o) for o in objects] + _generate(folder, k)
    for patch in k.get("patches", []):
        _apply_patch(folder, patch, objects)
    if "namespace" in k:
        _set_namespace(objects, k["namespace"])
    for group in k.get("labels", []):
        if group.get("includeSelectors") or group.get("includeTemplates"):
            raise NotImplementedError("labels with includeSelectors/includeTemplates")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(group["pairs"])
    for image in k.get("images", []):
        for obj in objects:
            _set_image(obj, image)
    return objects


# --------------------------------------------------------------------------- generators


def _parse_env_file(path: Path) -> dict[str, str]:
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not KEY=VALUE: {raw!r}")
        out[key.strip()] = value
    return out


def _generate(folder: Path, k: dict[str, Any]) -> list[Object]:
    out = []
    for kind, field in (("Secret", "secretGenerator"), ("ConfigMap", "configMapGenerator")):
        for gen in k.get(field, []):
            if not (gen.get("options") or {}).get("disableNameSuffixHash"):
                raise NotImplementedError("generators without disableNameSuffixHash: true")
            data: dict[str, str] = {}
            for env in gen.get("envs", []):
                data.update(_parse_env_file(folder / env))
            for entry in gen.get("files", []):
                key, _, rel = entry.rpartition("=") if "=" in entry else ("", "", entry)
                data[key or Path(rel).name] = (folder / rel).read_text()
            for literal in gen.get("literals", []):
                key, _, value = literal.partition("=")
                data[key] = value
            obj: Object = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}}
            if kind == "Secret":
                obj["type"] = gen.get("type", "Opaque")
                obj["data"] = {key: base64.b64encode(v.encode()).decode() for key, v in data.items()}
            else:
                obj["data"] = data
            out.append(obj)
    return out


# --------------------------------------------------------------------------- patches


def _matches(obj: Object, target: dict[str, Any]) -> bool:
    group, _, version = obj.get("apiVersion", "").rpartition("/")
    checks = {
        "group": group,
        "version": version,
        "kind": obj.get("kind"),
        "name": obj.get("metadata", {}).get("name"),
        "namespace": obj.get("metadata", {}).get("namespace"),
    }
    unknown = set(target) - set(checks)
    if unknown:
        raise NotImplementedError(f"patch target fields {sorted(unknown)}")
    return all(checks[key] == value for key, value in target.items())


def _apply_patch(folder: Path, patch: dict[str, Any], objects: list[Object]) -> None:
    text = patch["patch"] if "patch" in patch else (folder / patch["path"]).read_text()
    ops = yaml.safe_load(text)
    if not isinstance(ops, list):
        raise NotImplementedError("strategic-merge patches (only JSON 6902 lists are supported)")
    hits = [o for o in objects if _matches(o, patch.get("target") or {})]
    if not hits:
        raise ValueError(f"patch target {patch.get('target')} matches no object")
    for obj in hits:
        for op in ops:
            json_patch(obj, op)


def _tokens(pointer: str) -> list[str]:
    if not pointer.startswith("/"):
        raise ValueError(f"bad JSON pointer {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def json_patch(doc: Object, op: dict[str, Any]) -> None:
    """Apply one RFC 6902 operation (add, replace, remove) to ``doc`` in place."""
    *parents, last = _tokens(op["path"])
    node: Any = doc
    for token in parents:
        node = node[int(token)] if isinstance(node, list) else node[token]
    kind = op["op"]
    value = copy.deepcopy(op.get("value"))
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if kind == "add":
            node.insert(index, value)
        elif kind == "replace":
            node[index] = value
        elif kind == "remove":
            del node[index]
        else:
            raise NotImplementedError(f"JSON patch op {kind!r}")
        return
    if kind == "add":
        node[last] = value
    elif kind == "replace":
        if last not in node:
            raise KeyError(f"replace: {op['path']} does not exist")
        node[last] = value
    elif kind == "remove":
        del node[last]
    else:
        raise NotImplementedError(f"JSON patch op {kind!r}")


# --------------------------------------------------------------------------- namespace, images


def _set_namespace(objects: list[Object], namespace: str) -> None:
    accounts = {o["metadata"]["name"] for o in objects if o.get("kind") == "ServiceAccount"}
    for obj in objects:
        kind = obj.get("kind")
        if kind == "Namespace":
            obj["metadata"]["name"] = namespace
        elif kind not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace
        if kind in ("RoleBinding", "ClusterRoleBinding"):
            for subject in obj.get("subjects", []):
                if (
                    subject.get("kind") == "ServiceAccount"
                    and subject.get("name") in accounts
                    and subject.get("namespace") in (None, "default")
                ):
                    subject["namespace"] = namespace


def split_image(image: str) -> tuple[str, str, str]:
    """``registry:5000/org/name:tag@sha256:...`` -> (name with registry, tag, digest)."""
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest
    return rest, "", digest


def _set_image(node: Any, rule: dict[str, Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _set_image(item, rule)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("containers", "initContainers") and isinstance(value, list):
            for container in value:
                name, tag, digest = split_image(container.get("image", ""))
                if name != rule["name"]:
                    continue
                name = rule.get("newName", name)
                tag = rule.get("newTag", tag)
                digest = rule.get("digest", digest)
                image = f"{name}:{tag}" if tag else name
                container["image"] = f"{image}@{digest}" if digest else image
        _set_image(value, rule)
