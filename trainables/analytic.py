"""A cheap analytic trainable for tests and benchmarks (no torch, no data).

``loss`` at epoch ``e`` is ``f(x, y, z) + bonus terms + 1/e`` (plus optional gaussian
noise), so it decreases towards the function's value as a real training curve would.
It checkpoints a small JSON file each epoch and resumes from it.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .api import Reporter, TrainableSpec, TrialFailed
from .config import Config, resolve
from .registry import register

STATE_FILE = "analytic.json"

DEFAULTS: dict[str, Any] = {
    "x": 0.0,
    "y": 0.0,
    "z": 0.0,
    "noise": 0.0,
    "sleep": 0.0,
    "choice": None,
    "optimizer": None,
    "bonus": 0.0,
    "fail_at_epoch": None,  # fault injection: raise TrialFailed from this epoch on
}

SPEC = register(
    TrainableSpec(
        name="analytic",
        entry="trainables.analytic:train",
        metrics=("loss", "epoch"),
        required=("function",),
        optional=DEFAULTS,
        description="A noisy analytic function per epoch; no data, for tests and benchmarks.",
        tiny={"function": "branin", "x": 1.0, "y": 2.0},
    )
)


def quadratic(x: float, y: float, z: float) -> float:
    """Minimum 0 at (0.3, -0.2, 0)."""
    return (x - 0.3) ** 2 + (y + 0.2) ** 2 + z**2


def branin(x: float, y: float, z: float = 0.0) -> float:
    """Branin-Hoo on x in [-5, 10], y in [0, 15]; minimum 0.397887 at (pi, 2.275) and two
    other points. ``z`` is ignored."""
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


FUNCTIONS: dict[str, Callable[[float, float, float], float]] = {
    "quadratic": quadratic,
    "branin": branin,
}


def value(cfg: Mapping[str, Any]) -> float:
    """The noiseless limit of ``loss``: the function plus the bonus terms.

    ``choice == "b"`` subtracts 0.1; an ``optimizer`` dict named "sgd" adds
    ``(momentum - 0.9)**2``; ``bonus`` is added as it is.
    """
    cfg = {**DEFAULTS, **cfg}
    f = FUNCTIONS[cfg["function"]]
    total = f(float(cfg["x"]), float(cfg["y"]), float(cfg["z"]))
    if cfg["choice"] == "b":
        total -= 0.1
    optimizer = cfg["optimizer"]
    if isinstance(optimizer, Mapping) and optimizer.get("name") == "sgd":
        total += (float(optimizer.get("momentum", 0.9)) - 0.9) ** 2
    return total + float(cfg["bonus"] or 0.0)


def _check(cfg: Config) -> None:
    cfg.choice("function", FUNCTIONS)
    for key in ("x", "y", "z"):
        cfg.number(key)
    cfg.number("noise", low=0.0)
    cfg.number("sleep", low=0.0)
    if cfg.get("bonus") is not None:
        cfg.number("bonus")
    if cfg.get("fail_at_epoch") is not None:
        cfg.number("fail_at_epoch", low=1)


def train(config: dict[str, Any], reporter: Reporter) -> None:
    cfg = resolve("analytic", config)
    _check(cfg)
    target = value(cfg)
    start = 0
    restore = reporter.restore_dir()
    if restore:
        start = int(json.loads((Path(restore) / STATE_FILE).read_text())["epoch"])
    scratch = Path(tempfile.mkdtemp(prefix="analytic-ckpt-"))
    try:
        for epoch in range(start + 1, cfg.max_epochs + 1):
            if cfg["sleep"]:
                time.sleep(float(cfg["sleep"]))
            rng = random.Random(cfg.seed * 1_000_003 + epoch)  # noise replays on resume
            loss = target + 1.0 / epoch + float(cfg["noise"]) * rng.gauss(0.0, 1.0)
            if cfg.get("fail_at_epoch") is not None and epoch >= int(cfg["fail_at_epoch"]):
                raise TrialFailed(f"loss became NaN at epoch {epoch} (fail_at_epoch={cfg['fail_at_epoch']})")
            folder = scratch / f"epoch_{epoch:04d}"
            folder.mkdir()
            (folder / STATE_FILE).write_text(json.dumps({"epoch": epoch, "loss": loss}))
            reporter.report({"loss": loss, "epoch": epoch}, str(folder))
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
