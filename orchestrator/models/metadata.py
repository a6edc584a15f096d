"""What a logged model carries for prediction: its MLflow model metadata, written and read in one place.

``register.log_best_model`` stores :func:`prediction_metadata` as the
``metadata=`` of ``mlflow.pytorch.log_model``; :func:`read_model_metadata` reads it back from any model
URI (``models:/<name>/<version>``, ``runs:/<run>/<path>``, ``models:/<model id>`` or a local folder)
through ``mlflow.models.get_model_info``. The layout, JSON types only::

    {"format": 1,
     "trainable": "unet",
     "config": {...},              # the trial's resolved config: its values plus the defaults it ran with
     "task": {"channels": [...], "classes": [...], "mean": [...], "std": [...], "patch": 64, ...}}

``task`` is the trainable's ``Task.meta``. For the ``unet`` family the input of the model is the
scene's channels of ``config["bands"]`` and ``config["indices"]`` (``trainables.unet.dstl.channel_names``,
checked against ``task["channels"]``), standardized with ``task["mean"]`` / ``task["std"]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import OrchestratorError, first_line

METADATA_FORMAT = 1  # version of the layout above
FORMAT_KEY = "format"
TRAINABLE_KEY = "trainable"
CONFIG_KEY = "config"
TASK_KEY = "task"


class ModelMetadataError(OrchestratorError):
    """A model whose metadata cannot drive a prediction; the message names the model URI."""


def _json_types(value: Any) -> Any:
    """``value`` as plain JSON types (numpy scalars and arrays, tuples and paths become numbers, lists, text)."""

    def default(x: Any) -> Any:
        if hasattr(x, "tolist"):  # numpy scalars and arrays
            return x.tolist()
        return str(x)

    return json.loads(json.dumps(value, default=default))


def prediction_metadata(trainable: str, config: Mapping[str, Any], task_meta: Mapping[str, Any]) -> dict[str, Any]:
    """The ``metadata=`` of a logged model: the trainable, the trial's resolved config and its ``Task.meta``."""
    return {
        FORMAT_KEY: METADATA_FORMAT,
        TRAINABLE_KEY: trainable,
        CONFIG_KEY: _json_types(dict(config)),
        TASK_KEY: _json_types(dict(task_meta)),
    }


@dataclass(frozen=True)
class ModelInput:
    """The input a segmentation model expects: scene channels and how they are standardized.

    Two models with equal ``ModelInput``s read the same standardized strip."""

    bands: tuple[str, ...]
    indices: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return len(self.mean)


@dataclass(frozen=True)
class ModelMetadata:
    """A logged segmentation model's metadata, checked: what :mod:`orchestrator.production.predict` needs."""

    uri: str
    trainable: str
    config: Mapping[str, Any]
    task: Mapping[str, Any]
    input: ModelInput
    classes: tuple[str, ...]
    patch: int

    @classmethod
    def from_dict(cls, uri: str, metadata: Mapping[str, Any] | None) -> ModelMetadata:
        """Check the layout of the module docstring; ``ModelMetadataError`` names ``uri`` and what is wrong."""
        from trainables.unet.dstl import DSTLError, channel_names, check_names

        def fail(what: str) -> ModelMetadataError:
            return ModelMetadataError(f"{uri}: {what}")

        if not metadata or TASK_KEY not in metadata or CONFIG_KEY not in metadata:
            raise fail("the model has no prediction metadata (log it with orchestrator: run or train)")
        if metadata.get(FORMAT_KEY) != METADATA_FORMAT:
            raise fail(f"metadata format {metadata.get(FORMAT_KEY)!r}, expected {METADATA_FORMAT}")
        config, task = metadata[CONFIG_KEY], metadata[TASK_KEY]
        try:
            bands, indices = _names(config, "bands"), _names(config, "indices")
            classes, channels = _names(task, "classes"), _names(task, "channels")
            mean, std = _numbers(task, "mean"), _numbers(task, "std")
            patch = task["patch"]
        except (KeyError, TypeError, ValueError) as error:
            raise fail(f"metadata without a usable {error} (a segmentation model of the unet family?)") from None
        try:
            check_names(bands, indices, classes)
        except DSTLError as error:
            raise fail(str(error)) from None
        if channel_names(bands, indices) != channels or len(mean) != len(channels) or len(std) != len(channels):
            raise fail(
                f"metadata channels {list(channels)} do not match bands {list(bands)}, indices "
                f"{list(indices)} and {len(mean)} means / {len(std)} stds"
            )
        if not classes or len(set(classes)) != len(classes):
            raise fail(f"metadata classes {list(classes)}: expected distinct class names")
        if not isinstance(patch, int) or patch < 1:
            raise fail(f"metadata patch {patch!r}: expected a positive integer")
        if min(std) <= 0:
            raise fail("metadata std: every channel's standard deviation must be positive")
        return cls(
            uri,
            str(metadata.get(TRAINABLE_KEY, "")),
            config,
            task,
            ModelInput(bands, indices, mean, std),
            classes,
            patch,
        )


def _names(mapping: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = mapping[key]
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key!r} (expected a list of names)")
    return tuple(value)


def _numbers(mapping: Mapping[str, Any], key: str) -> tuple[float, ...]:
    value = mapping[key]
    if not isinstance(value, Sequence) or not all(isinstance(v, int | float) and math.isfinite(v) for v in value):
        raise ValueError(f"{key!r} (expected a list of numbers)")
    return tuple(float(v) for v in value)


def read_model_metadata(uri: str, tracking_uri: str | None = None) -> ModelMetadata:
    """The checked prediction metadata of the model at ``uri`` (a registry or run URI resolves through
    ``tracking_uri``, default: MLflow's own); ``ModelMetadataError`` in one line when it cannot be used."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from orchestrator.tracking.mlflow_store import fluent_tracking_uri

    try:
        if tracking_uri is None:
            info = mlflow.models.get_model_info(uri)
        else:
            with fluent_tracking_uri(tracking_uri):
                info = mlflow.models.get_model_info(uri)
    except (MlflowException, OSError) as error:
        raise ModelMetadataError(f"{uri}: cannot read the model ({first_line(error)})") from None
    return ModelMetadata.from_dict(uri, info.metadata)
