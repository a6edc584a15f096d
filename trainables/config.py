"""Resolve and check a trainable's config (no torch): defaults from the spec, typed reads.

Every training function starts with ``cfg = resolve("name", config)``: unknown keys and
missing required keys are rejected by the registry, the spec's defaults fill what the
space left out, and the typed readers below turn bad values into ``TrainableConfigError``
naming the key and the trainable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .api import TrainableConfigError
from .registry import get, validate_config

DEFAULT_MAX_EPOCHS = 10
DEFAULT_SEED = 0

# Keys every trainable on the shared loop accepts: how it computes, not what it learns. ``cpus``:
# torch threads (else OMP_NUM_THREADS, which Ray sets per trial, else the CPU affinity); ``device``:
# auto|cpu|cuda; ``precision``: auto (bf16 or fp16 autocast on CUDA, fp32 on CPU)|fp32|bf16|fp16.
RUNTIME_DEFAULTS: Mapping[str, Any] = {"cpus": None, "device": "auto", "precision": "auto"}


class Config(dict):
    """A resolved config that knows its trainable's name, for error messages."""

    def __init__(self, trainable: str, values: Mapping[str, Any]):
        super().__init__(values)
        self.trainable = trainable

    def error(self, key: str, message: str) -> TrainableConfigError:
        return TrainableConfigError(self.trainable, key, message)

    def integer(self, key: str, low: int | None = None, high: int | None = None) -> int:
        """An integer (floats like ``128.0`` from quantized distributions are accepted)."""
        value = self[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected an integer, got {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise self.error(key, f"expected an integer, got {value!r}")
        value = int(value)
        _check_range(self, key, value, low, high)
        return value

    def number(self, key: str, low: float | None = None, high: float | None = None) -> float:
        value = self[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {value!r}")
        _check_range(self, key, float(value), low, high)
        return float(value)

    def flag(self, key: str) -> bool:
        value = self[key]
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def choice(self, key: str, options: Iterable[str]) -> str:
        options = tuple(options)
        value = self[key]
        if value not in options:
            raise self.error(key, f"expected one of {', '.join(map(repr, options))}, got {value!r}")
        return value

    def string_list(self, key: str, options: Iterable[str] | None = None) -> list[str]:
        value = self[key]
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise self.error(key, f"expected a list, got {value!r}")
        allowed = tuple(options) if options is not None else None
        for item in value:
            if allowed is not None and item not in allowed:
                raise self.error(key, f"unknown entry {item!r}; expected some of {', '.join(allowed)}")
        if len(set(value)) != len(value):
            raise self.error(key, f"entries repeat in {list(value)!r}")
        return list(value)

    @property
    def max_epochs(self) -> int:
        return self.integer("max_epochs", low=1)

    @property
    def seed(self) -> int:
        return self.integer("seed")


def _check_range(cfg: Config, key: str, value: float, low: float | None, high: float | None):
    if low is not None and value < low:
        raise cfg.error(key, f"must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise cfg.error(key, f"must be <= {high}, got {value!r}")


def resolve(trainable: str, config: Mapping[str, Any]) -> Config:
    """Validate ``config`` against the registered spec and fill in its defaults."""
    validate_config(trainable, config)
    spec = get(trainable)
    values: dict[str, Any] = {"max_epochs": DEFAULT_MAX_EPOCHS, "seed": DEFAULT_SEED}
    values.update(spec.optional)
    values.update(config)
    return Config(trainable, values)


def optimizer_settings(cfg: Config, key: str = "optimizer") -> dict[str, Any]:
    """Check an optimizer dict ``{name: adam|sgd, lr?, momentum?, nesterov?}``."""
    value = cfg[key]
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping) or "name" not in value:
        raise cfg.error(key, f"expected a mapping like {{name: adam, lr: 0.001}}, got {value!r}")
    allowed = {"adam": {"name", "lr"}, "adamw": {"name", "lr"}, "sgd": {"name", "lr", "momentum", "nesterov"}}
    name = value["name"]
    if name not in allowed:
        raise cfg.error(f"{key}.name", f"expected one of {', '.join(allowed)}, got {name!r}")
    for sub in value:
        if sub not in allowed[name]:
            raise cfg.error(f"{key}.{sub}", f"not a setting of optimizer {name!r}")
    return dict(value)
