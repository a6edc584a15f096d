"""Every built-in trainable, registered by spec; importing this module imports no torch."""

from __future__ import annotations

from .api import TrainableSpec
from .registry import register

register(
    TrainableSpec(
        name="analytic",
        entry="trainables.analytic:train",
        metrics=("loss", "epoch"),
        required=("function",),
        optional={"x": 0.0, "y": 0.0, "z": 0.0, "noise": 0.0, "sleep": 0.0, "choice": None,
                  "optimizer": None, "bonus": 0.0},
        description="A noisy analytic function per epoch; no data, for tests and benchmarks.",
    )
)
