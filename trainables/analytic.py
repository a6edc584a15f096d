"""A cheap analytic trainable for tests and benchmarks (no torch, no data).

``loss`` at epoch ``e`` is ``f(x, y, z) + bonus terms + 1/e`` (plus optional gaussian
noise), so it decreases towards the function's value as a real training curve would.
It checkpoints a small JSON file each epoch and resumes from it.

Two problems of two objectives (``MULTI_OBJECTIVE``) report ``f1`` and ``f2`` as well (each ``+ 1/e`` and the noise,
as ``loss``, which is then ``f1``'s curve): ``zdt1`` over x, y, z in [0, 1] (Zitzler, Deb and Thiele 2000, in three
variables; front ``f2 = 1 - sqrt(f1)`` at y = z = 0) and ``branches``, a conditional problem whose front needs both
options of a choice (``branch_objectives``).
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
    "branch": None,  # function branches: {kind: a, t, s} or {kind: b, t, s, d}
}

SPEC = register(
    TrainableSpec(
        name="analytic",
        entry="trainables.analytic:train",
        metrics=("loss", "epoch", "f1", "f2"),
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


def zdt1(x: float, y: float, z: float) -> tuple[float, float]:
    """ZDT1 in three variables in [0, 1]: ``f1 = x``, ``f2 = g (1 - sqrt(x / g))`` with ``g = 1 + 9 (y + z) / 2``;
    the front is ``f2 = 1 - sqrt(f1)`` (y = z = 0), convex."""
    g = 1.0 + 9.0 * (y + z) / 2.0
    return x, g * (1.0 - math.sqrt(x / g))


def branch_objectives(branch: Mapping[str, Any]) -> tuple[float, float]:
    """A conditional problem of two objectives: a choice of two options with their own parameters, t and s in
    [0, 1] both, d an integer in [1, 5] of option b only.

    * a: ``f1 = t``, ``f2 = 1 - t + s``: its best (s = 0) is the line ``f1 + f2 = 1``;
    * b: ``f1 = 0.3 + 0.7 t``, ``f2 = 0.6 (1 - t)**2 + s + 0.05 (d - 3)**2``: its best (s = 0, d = 3) lies below
      that line wherever f1 >= 0.3 but cannot reach f1 < 0.3.

    The front is option a's for ``f1 < 0.3`` and option b's from 0.3 on: a search must keep both options and tune
    the parameters of each (``branch_front``)."""
    t, s = float(branch["t"]), float(branch["s"])
    if branch["kind"] == "a":
        return t, 1.0 - t + s
    return 0.3 + 0.7 * t, 0.6 * (1.0 - t) ** 2 + s + 0.05 * (float(branch["d"]) - 3.0) ** 2


def branch_front(points: int = 2001) -> list[tuple[float, float]]:
    """Points of ``branch_objectives``' front, evenly spaced in t along each option's part of it."""
    a = [(0.3 * i / (points - 1), 1.0 - 0.3 * i / (points - 1)) for i in range(points - 1)]  # f1 in [0, 0.3)
    b = [branch_objectives({"kind": "b", "t": i / (points - 1), "s": 0.0, "d": 3}) for i in range(points)]
    return a + b


FUNCTIONS: dict[str, Callable[[float, float, float], float]] = {
    "quadratic": quadratic,
    "branin": branin,
}
MULTI_OBJECTIVE = ("zdt1", "branches")  # functions reporting f1 and f2


def objectives(cfg: Mapping[str, Any]) -> tuple[float, float]:
    """The noiseless limits of ``f1`` and ``f2`` of a function of ``MULTI_OBJECTIVE``."""
    cfg = {**DEFAULTS, **cfg}
    if cfg["function"] == "zdt1":
        return zdt1(float(cfg["x"]), float(cfg["y"]), float(cfg["z"]))
    return branch_objectives(cfg["branch"])


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
    function = cfg.choice("function", (*FUNCTIONS, *MULTI_OBJECTIVE))
    if function == "branches":
        branch = cfg["branch"]
        try:
            branch_objectives(branch)
        except (KeyError, TypeError, ValueError):
            raise cfg.error("branch", f"expected {{kind: a, t, s}} or {{kind: b, t, s, d}}, got {branch!r}") from None
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
    several = cfg["function"] in MULTI_OBJECTIVE
    targets = objectives(cfg) if several else (value(cfg),)
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
            curves = [t + 1.0 / epoch + float(cfg["noise"]) * rng.gauss(0.0, 1.0) for t in targets]
            loss = curves[0]
            if cfg.get("fail_at_epoch") is not None and epoch >= int(cfg["fail_at_epoch"]):
                raise TrialFailed(f"loss became NaN at epoch {epoch} (fail_at_epoch={cfg['fail_at_epoch']})")
            folder = scratch / f"epoch_{epoch:04d}"
            folder.mkdir()
            (folder / STATE_FILE).write_text(json.dumps({"epoch": epoch, "loss": loss}))
            extra = {"f1": curves[0], "f2": curves[1]} if several else {}
            reporter.report({"loss": loss, "epoch": epoch, **extra}, str(folder))
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
