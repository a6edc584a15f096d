"""The ``convnet`` family on the shared loop: its ``build_task`` hook, loss and evaluator (spec: ``.spec``)."""

from __future__ import annotations

import functools
import json

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import Config, optimizer_settings
from ..loop import Runtime, Task, TensorBatches, make_optimizer
from ..measure import Network
from . import data as data_mod
from .model import ConvNetShape, build


def ensemble_loss(out: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy; for an ensemble (N, B, C) the sum over members, so each member
    trains as if alone."""
    if out.dim() == 2:
        return F.cross_entropy(out, y)
    members = out.shape[0]
    return F.cross_entropy(out.flatten(0, 1), y.repeat(members)) * members


def vote(out: Tensor, rule: str = "softmax") -> tuple[Tensor, Tensor]:
    """Log-probabilities and predicted classes of a net's logits (B, C), or of an ensemble's (N, B, C)
    combined by ``rule`` (see ``ClassificationEvaluator``)."""
    if out.dim() == 2:
        logp = F.log_softmax(out, dim=-1)
        return logp, logp.argmax(-1)
    probs = F.softmax(out, dim=-1).mean(0)
    pred = probs.argmax(-1)
    if rule == "majority":
        votes = F.one_hot(out.argmax(-1), out.shape[-1]).sum(0)
        pred = (votes + 0.5 * probs).argmax(-1)
    return probs.clamp_min(1e-12).log(), pred


class ClassificationEvaluator:
    """Accuracy and mean negative log-likelihood over the validation set, on the device.

    An ensemble's prediction is the mean of its members' softmax (``vote="softmax"``) or
    the majority of their arg-maxes, ties broken by the mean softmax (``vote="majority"``).
    """

    def __init__(self, vote: str = "softmax"):
        self.vote = vote
        self.reset()

    def reset(self) -> None:
        self.sums: Tensor | None = None

    def update(self, out: Tensor, y: Tensor) -> None:
        logp, pred = vote(out, self.vote)
        batch = torch.stack(
            [
                F.nll_loss(logp, y, reduction="sum"),
                (pred == y).sum().float(),
                torch.tensor(float(len(y)), device=y.device),
            ]
        )
        self.sums = batch if self.sums is None else self.sums + batch

    def compute(self) -> dict[str, float]:
        assert self.sums is not None, "update() was never called"
        nll, correct, n = self.sums.tolist()
        return {"val_accuracy": correct / n, "val_loss": nll / n}


def _split(cfg: Config) -> data_mod.Split:
    """The trial's data, split (``data.load``); ``TrainableConfigError`` naming ``data`` when it cannot be read."""
    subset = cfg["subset"]
    try:
        return data_mod.load(
            cfg["data"],
            validation_fraction=cfg.number("validation_fraction", low=0.01, high=0.9),
            seed=cfg.seed,
            expand_shifts=cfg.flag("expand_shifts"),
            subset=None if subset is None else cfg.integer("subset", low=10),
        )
    except data_mod.DataError as error:
        raise cfg.error("data", str(error)) from None


@functools.cache
def _data_shape(data: str, validation_fraction: float, seed: int, subset: int | None) -> tuple[tuple[int, ...], int]:
    """The image shape and class count of the data a trial reads (``data`` as JSON), what its network is built for;
    read once per process, since ``build_network`` builds many configurations of one study."""
    split = data_mod.load(json.loads(data), validation_fraction=validation_fraction, seed=seed, subset=subset)
    return split.image_shape, split.classes


def build_network(cfg: Config) -> Network:
    """The trial's network without its training data (``TrainableSpec.network``): the model ``build_task`` builds
    for the shape of the data it would read (cached per data set and split), its validation batch as the
    prediction batch."""
    subset = None if cfg["subset"] is None else cfg.integer("subset", low=10)
    fraction = cfg.number("validation_fraction", low=0.01, high=0.9)
    try:
        (channels, height, width), classes = _data_shape(json.dumps(cfg["data"]), fraction, cfg.seed, subset)
    except data_mod.DataError as error:
        raise cfg.error("data", str(error)) from None
    shape = ConvNetShape.from_config(cfg, in_channels=channels, image_size=min(height, width), classes=classes)
    try:
        shape.check()
    except ValueError as error:
        raise cfg.error("conv_layers", str(error)) from None
    model = build(shape, cfg.integer("ensemble", low=1))
    return Network(model, (channels, height, width), max(cfg.integer("batch_size", low=1), VALIDATION_BATCH))


VALIDATION_BATCH = 512  # the validation batch at least (``build_task``): the prediction batch


def build_task(cfg: Config, runtime: Runtime) -> Task:
    """Data on the device, model, optimizer, loss and evaluator for one trial."""
    opt = optimizer_settings(cfg)
    vote = cfg.choice("vote", ("softmax", "majority"))
    split = _split(cfg)
    channels, height, width = split.image_shape
    shape = ConvNetShape.from_config(cfg, in_channels=channels, image_size=min(height, width), classes=split.classes)
    try:
        shape.check()
    except ValueError as error:
        raise cfg.error("conv_layers", str(error)) from None
    model = runtime.prepare(build(shape, cfg.integer("ensemble", low=1)))
    optimizer = make_optimizer(model.parameters(), opt, weight_decay=cfg.number("l2", low=0.0), device=runtime.device)
    batch_size = cfg.integer("batch_size", low=1)
    train = TensorBatches(runtime.tensor(split.train_x), runtime.tensor(split.train_y), batch_size, shuffle=True)
    prediction_batch = max(batch_size, VALIDATION_BATCH)
    val = TensorBatches(runtime.tensor(split.val_x), runtime.tensor(split.val_y), prediction_batch)
    evaluator = ClassificationEvaluator(vote)
    return Task(
        model, optimizer, ensemble_loss, train, val, evaluator, name=cfg.trainable, prediction_batch=prediction_batch
    )
