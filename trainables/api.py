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

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

RESERVED_KEYS = ("max_epochs", "seed")


class Reporter(Protocol):
    def report(self, metrics: Mapping[str, float], checkpoint_dir: str | None = None) -> None:
        """Send one epoch's metrics (and optionally a checkpoint folder) to the searcher.

        As with ``ray.tune.report``, the reporter persists (copies) the folder before it
        returns: the trainable deletes it afterwards.
        """

    def restore_dir(self) -> str | None:
        """The latest checkpoint folder to resume from, or ``None`` for a fresh start."""


TrainFn = Callable[[dict[str, Any], Reporter], None]


class TrialFailed(RuntimeError):
    """A trial that cannot continue, with a reason a user can act on."""


class UnknownTrainable(KeyError):
    def __init__(self, name: str, known: list[str]):
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.message = f"unknown trainable {name!r}{hint} (registered: {', '.join(sorted(known))})"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class TrainableConfigError(ValueError):
    """A configuration key the trainable does not accept, or a required key that is missing."""

    def __init__(self, trainable: str, key: str, message: str):
        self.trainable = trainable
        self.key = key
        super().__init__(f"trainable {trainable!r}: {key}: {message}")


@dataclass(frozen=True)
class TrainableSpec:
    """What the registry knows about a trainable before importing it.

    ``entry`` is ``"module:function"``; ``required`` and ``optional`` name the config keys
    it accepts (``optional`` maps keys to their defaults); ``metrics`` names what it reports.
    """

    name: str
    entry: str
    metrics: tuple[str, ...]
    required: tuple[str, ...] = ()
    optional: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def load(self) -> TrainFn:
        module, _, func = self.entry.partition(":")
        return getattr(importlib.import_module(module), func)

    @property
    def accepted(self) -> set[str]:
        return set(self.required) | set(self.optional) | set(RESERVED_KEYS)
