"""The best trial's model, logged with ``mlflow.pytorch`` on the search's run and registered under the study.

The weights are the best trial's latest checkpoint (what Ray Tune keeps as its ``Result.checkpoint``),
loaded on the CPU through ``trainables.loop.restore_task`` (``weights_only=True``). The metric is then
measured again with exactly these weights on the trial's validation data (same config, same split, CPU,
fp32): the registered version carries that value, which a user who loads the model gets, rather than the
trial's best epoch, which may be an earlier one. The version is tagged with the space version and hash,
the trial and its run (names in ``tracking.schema``), and the value is logged on the search's run as
``model_<metric>``.

The model is an MLflow 3 logged model (``mlflow.pytorch``, input example and inferred signature) saved
as ``pt2``, ``torch.export``'s program of the model in eval mode with a dynamic batch size: loading it runs
no pickled code (the same stance as ``weights_only=True`` for checkpoints) and needs neither orchestrator
nor ``trainables``. ``mlflow.pytorch.load_model`` returns a ``torch.fx.GraphModule`` to call on batches;
it does not support ``.eval()``/``.train()`` (it is fixed in eval mode). Its MLflow metadata is what
prediction needs (the trainable, the resolved config, ``Task.meta``): ``orchestrator.models.metadata``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from orchestrator.engine.leaderboard import TrialOutcome
from orchestrator.spaces import StudyVersion
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import MlflowStore, fluent_tracking_uri

from .metadata import prediction_metadata

INPUT_EXAMPLE_SAMPLES = 2  # validation samples in the logged input example; more than 1 keeps the batch dynamic
SERIALIZATION_FORMAT = "pt2"  # torch.export: no pickle to run when loading (see the module docstring)
EXPERIMENT_ID_ENV = "MLFLOW_EXPERIMENT_ID"
# The review measures on the CPU in full precision: what anyone loading the model without a GPU gets.
REVIEW_RUNTIME = {"device": "cpu", "precision": "fp32"}


class ModelSkipped(Exception):
    """No model to log for this search; the message says why in one line."""


@dataclass(frozen=True)
class RegisteredModel:
    """The logged and registered best model."""

    name: str  # registered model name: the study (``orchestrator train``: ``<study>`` or ``<study>-<class>``)
    version: str  # its version in the registry
    model_uri: str  # ``models:/<name>/<version>``
    metric: str
    value: float | None  # the metric measured with these weights (None: the validation pass does not report it)
    trial_id: str
    run_id: str  # the trial's run


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``$name`` set to ``value`` for the block, then as before."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """Building a task sets torch's thread count from the trial's ``cpus``; the driver keeps its own."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def log_pytorch_model(
    tracking_uri: str, model: Any, example: Any, run_id: str, registered_model_name: str, metadata: Mapping[str, Any]
) -> Any:
    """Log ``model`` (in eval mode, on the CPU) on ``run_id`` as ``schema.LOGGED_MODEL`` in the ``pt2`` format
    with ``example`` (a numpy batch of more than one sample: the batch stays dynamic) and ``metadata``
    (``metadata.prediction_metadata``), registered as a new version of
    ``registered_model_name``; returns MLflow's ``ModelInfo``."""
    import mlflow.pytorch
    import torch
    from mlflow.tracking import MlflowClient

    # MLflow 3 files a logged model under the fluent API's experiment (the Default one unless set), not its
    # run's, and for a database store puts its files under ./mlruns: name the run's experiment for the call.
    experiment_id = MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
    with fluent_tracking_uri(tracking_uri), _environment(EXPERIMENT_ID_ENV, experiment_id):
        return mlflow.pytorch.log_model(
            model,
            name=schema.LOGGED_MODEL,
            input_example=example,
            run_id=run_id,
            registered_model_name=registered_model_name,
            serialization_format=SERIALIZATION_FORMAT,
            pip_requirements=[f"torch=={torch.__version__}"],
            metadata=dict(metadata),
        )


def rehearse_logging(trainable: str, folder: str) -> None:
    """Save the family's untrained tiny model (``TrainableSpec.tiny``) into ``folder`` the way
    :func:`log_pytorch_model` logs one, without a tracking store: the first model a process logs costs about five
    times the next (``mlflow.pytorch`` and ``torch.export`` warm up, MLflow reads the table of installed packages
    once), so a review process that will log a search's best model does this while it warms up. Nothing for a
    trainable without a PyTorch model on the shared loop."""
    import trainables

    if not trainables.get(trainable).task:
        return
    import mlflow.pytorch
    import torch

    from trainables.loop import prepare

    task, _, _ = prepare(trainable, {**trainables.get(trainable).tiny, **REVIEW_RUNTIME})
    task.model.eval()
    inputs, _ = next(iter(task.val.epoch(torch.Generator().manual_seed(0))))
    mlflow.pytorch.save_model(
        task.model.cpu(),
        f"{folder}/{schema.LOGGED_MODEL}",
        input_example=inputs[:INPUT_EXAMPLE_SAMPLES].detach().cpu().numpy(),
        serialization_format=SERIALIZATION_FORMAT,
        pip_requirements=[f"torch=={torch.__version__}"],
    )


def log_best_model(
    store: MlflowStore,
    version: StudyVersion,
    parent_run_id: str,
    best: TrialOutcome,
    result: Any,
    *,
    registered_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> RegisteredModel:
    """Log and register the model of ``best``, whose Ray Tune ``Result`` is ``result``, on ``parent_run_id``.

    ``result`` needs only ``config`` and ``checkpoint`` (a ``ray.tune.Checkpoint``): any finished trial's.
    The version is registered under ``registered_name`` (default: the study) with the space version and hash,
    ``best``'s trial and run, and ``tags`` on top (``orchestrator train`` names its own source and runs).
    Raises ``ModelSkipped`` for a trainable without a PyTorch model on the shared loop or a trial without
    a checkpoint; MLflow's and torch's errors propagate (the caller records them).
    """
    import trainables

    if not trainables.get(version.trainable).task:
        raise ModelSkipped(f"trainable {version.trainable!r} has no PyTorch model on the shared loop to log")
    checkpoint = getattr(result, "checkpoint", None)
    if checkpoint is None:
        raise ModelSkipped(f"the best trial {best.trial_id} left no checkpoint")

    import torch
    from mlflow.tracking import MlflowClient

    from trainables.loop import evaluate, restore_task

    metric = version.metric.name
    name = registered_name or version.study
    with _torch_threads_kept(), checkpoint.as_directory() as folder:
        task, runtime, cfg = restore_task(version.trainable, {**result.config, **REVIEW_RUNTIME}, folder)
        value = evaluate(task, runtime).get(metric)
        inputs, _ = next(iter(task.val.epoch(torch.Generator().manual_seed(0))))
        example = inputs[:INPUT_EXAMPLE_SAMPLES].detach().cpu().numpy()
        metadata = prediction_metadata(version.trainable, cfg, task.meta)
        info = log_pytorch_model(store.uri, task.model.cpu(), example, parent_run_id, name, metadata)
    registered = str(info.registered_model_version)
    version_tags = {
        schema.VERSION: str(version.version),
        schema.HASH: version.content_hash,
        schema.TRIAL_ID: best.trial_id,
        schema.SOURCE_RUN: best.run_id,
        **(tags or {}),
    }
    if value is not None:
        version_tags[schema.model_metric(metric)] = repr(float(value))
        now = int(time.time() * 1000)
        store.log_batch(parent_run_id, metrics=[(schema.model_metric(metric), float(value), now, 0)])
    client = MlflowClient(store.uri)
    for key, text in version_tags.items():
        client.set_model_version_tag(name, registered, key, text)
    return RegisteredModel(
        name,
        registered,
        f"models:/{name}/{registered}",
        metric,
        None if value is None else float(value),
        best.trial_id,
        best.run_id,
    )
