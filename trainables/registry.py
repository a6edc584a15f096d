"""Name -> trainable spec: a leaf that imports none of the modules it loads.

Each family's torch-free spec module registers its specs when it is imported; the package's
``__init__`` imports them all, so ``import trainables`` fills the registry (the layout of
timm's ``_registry.py``). Training code is imported only by ``TrainableSpec.load``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from .api import RESERVED_KEYS, TrainableConfigError, TrainableSpec, TrainFn, UnknownTrainable

_REGISTRY: dict[str, TrainableSpec] = {}


def register(spec: TrainableSpec) -> TrainableSpec:
    """Add ``spec`` under its name (again with an equal spec is a no-op); returns it."""
    if spec.name in _REGISTRY and _REGISTRY[spec.name] != spec:
        raise ValueError(f"trainable {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> TrainableSpec:
    if name not in _REGISTRY:
        raise UnknownTrainable(name, list(_REGISTRY))
    return _REGISTRY[name]


def validate_config(name: str, config: Mapping[str, Any]) -> None:
    """Raise ``TrainableConfigError`` naming the first unknown or missing key."""
    spec = get(name)
    for key in config:
        if key not in spec.accepted:
            close = difflib.get_close_matches(key, sorted(spec.accepted), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TrainableConfigError(name, key, f"not a key this trainable accepts{hint}")
    for key in spec.required:
        if key not in config:
            raise TrainableConfigError(name, key, "required but missing from the space (params or fixed)")


def create(name: str) -> TrainFn:
    """The training function of a registered trainable (imports its module now)."""
    return get(name).load()


__all__ = ["RESERVED_KEYS", "create", "get", "names", "register", "validate_config"]
