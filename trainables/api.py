"""The contract between a search engine and a trainable; no torch, no ray.

A training function has the signature ``train(config: dict, reporter: Reporter) -> None``.
It reads its hyperparameters from ``config`` (the space's fixed values plus sampled
values, plus the reserved keys ``max_epochs`` and ``seed`` that the engine adds), calls
``reporter.report(metrics, checkpoint_dir)`` once per epoch with ``epoch`` (1-based) among
the metrics, and resumes from ``reporter.restore_dir()`` when that returns a folder.
It raises ``TrialFailed`` with a readable reason (NaN loss, out of memory) instead of
letting a raw error end the trial.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

# The core's pieces a trainable may use. Every module of ``trainables`` talks to ``orchestrator`` through these
# names only (an import contract in pyproject.toml checks it): the error rules and the review artifacts' names.
from orchestrator.errors import OrchestratorError, did_you_mean, first_line
from orchestrator.tracking.schema import (
    ARCHITECTURE_ARTIFACT,
    CONFUSION_MATRIX_ARTIFACT,
    MODEL_SUMMARY_ARTIFACT,
    PREDICTIONS_ARTIFACT,
    review_file_name,
)

RESERVED_KEYS = ("max_epochs", "seed")
__all__ = [
    "ARCHITECTURE_ARTIFACT",
    "CONFUSION_MATRIX_ARTIFACT",
    "MODEL_SUMMARY_ARTIFACT",
    "PREDICTIONS_ARTIFACT",
    "RESERVED_KEYS",
    "Reporter",
    "TrainFn",
    "TrainableConfigError",
    "TrainableSpec",
    "TrialFailed",
    "UnknownTrainable",
    "first_line",
    "load_object",
    "review_file_name",
]


class Reporter(Protocol):
    def report(self, metrics: Mapping[str, float], checkpoint_dir: str | None = None) -> None:
        """Send one epoch's metrics (and optionally a checkpoint folder) to the searcher.

        As with ``ray.tune.report``, the reporter persists (copies) the folder before it
        returns: the trainable deletes it afterwards.
        """

    def restore_dir(self) -> str | None:
        """The latest checkpoint folder to resume from, or ``None`` for a fresh start."""

    # A reporter may also have ``measure``: the costs beyond ``trainables.costs.ALWAYS`` that the search needs (the
    # latencies, when an objective or constraint names them); the shared loop measures those too.


TrainFn = Callable[[dict[str, Any], Reporter], None]


class TrialFailed(RuntimeError):
    """A trial that cannot continue, with a reason a user can act on."""


class UnknownTrainable(OrchestratorError, KeyError):
    def __init__(self, name: str, known: list[str]):
        self.message = f"unknown trainable {name!r}{did_you_mean(name, known)} (registered: {', '.join(sorted(known))})"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class TrainableConfigError(OrchestratorError, ValueError):
    """A configuration key the trainable does not accept, or a required key that is missing."""

    def __init__(self, trainable: str, key: str, message: str):
        self.trainable = trainable
        self.key = key
        super().__init__(f"trainable {trainable!r}: {key}: {message}")


SHARED_LOOP_ENTRY = "trainables.loop:run_trainable"  # run_trainable(name, config, reporter)


def load_object(reference: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class TrainableSpec:
    """What the registry knows about a trainable before importing it (nothing here imports torch).

    A trainable either brings its own training function, ``entry="module:function"`` naming
    ``train(config, reporter)``, or runs the shared training loop: ``task="module:function"``
    names its ``build_task(cfg, runtime) -> Task`` hook (data, model, optimizer, loss and
    evaluator), and ``failure_hint`` says what to change when its loss diverges.

    ``required`` and ``optional`` name the config keys it accepts (``optional`` maps keys to
    their defaults: the one place a family states them); ``metrics`` names what it reports.
    ``tiny`` overrides defaults to make a run of seconds (tests, the ``<name>_tiny`` variant);
    ``throughput`` names the configs (overrides) that ``bench.train_throughput`` measures,
    ``"small"`` in quick runs; empty when the family is not benchmarked.

    ``preflight="module:function"`` names ``check(cfg) -> None``, run on the driver before any
    trial is scheduled: it checks what a trial would read (data paths, file headers) and raises
    ``TrainableConfigError`` naming the key. ``review="module:function"`` names the family's
    review-artifact hook (architecture summary and picture, predictions; ``orchestrator.review``).
    ``network="module:function"`` names ``build_network(cfg) -> trainables.measure.Network``: the trial's
    network with the shape of one input sample and its prediction batch, built from the configuration without
    its data, so the hardware costs of a configuration (``trainables.costs``) can be computed without training
    (carried trials of a version that did not measure them). All are optional and imported only when used.
    """

    name: str
    metrics: tuple[str, ...]
    entry: str = ""
    task: str = ""
    required: tuple[str, ...] = ()
    optional: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    failure_hint: str = "lower the learning rate"
    tiny: Mapping[str, Any] = field(default_factory=dict)
    throughput: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    preflight: str = ""
    review: str = ""
    network: str = ""

    def __post_init__(self) -> None:
        if bool(self.entry) == bool(self.task):
            raise ValueError(
                f"trainable {self.name!r}: give either entry (its own train function) "
                "or task (a build_task hook for the shared loop), not both or neither"
            )
        for what, keys in (("tiny", self.tiny), *((f"throughput[{k!r}]", v) for k, v in self.throughput.items())):
            unknown = set(keys) - self.accepted
            if unknown:
                raise ValueError(f"trainable {self.name!r}: {what} sets keys it does not accept: {sorted(unknown)}")

    def load(self) -> TrainFn:
        """The training function (imports its module now)."""
        if self.entry:
            return load_object(self.entry)
        return functools.partial(load_object(SHARED_LOOP_ENTRY), self.name)

    def tiny_variant(self, description: str) -> TrainableSpec:
        """This spec as ``<name>_tiny``: the ``tiny`` overrides become its defaults; not benchmarked."""
        return replace(
            self,
            name=f"{self.name}_tiny",
            optional={**self.optional, **self.tiny},
            description=description,
            throughput={},
        )

    @property
    def accepted(self) -> set[str]:
        return set(self.required) | set(self.optional) | set(RESERVED_KEYS)
