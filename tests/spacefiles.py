"""Space documents for tests: one builder of a document from its sections (``space_doc``) and one writer of a
space file (``write_space``), plus the repository's paths.

A section is given as YAML text (``"{scheduler: fifo, max_epochs: 3}"``; for ``params`` the indented lines
under ``params:``) or as a mapping (written in YAML's flow style); ``None`` leaves it out. The sections come
out in a fixed order: study, version, parent, trainable, metric, params, fixed, then the others in the order
given (so ``MINIMAL`` keeps the line numbers tests assert). With no arguments the builder gives ``MINIMAL``, the
smallest valid document.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"

Section = str | Mapping[str, Any] | None

LOSS = "{name: loss, mode: min}"
QUADRATIC = "{function: quadratic}"
X_PARAMS = "  x: {uniform: [-1.0, 1.0]}\n"


def _flow(value: str | Mapping[str, Any]) -> str:
    if isinstance(value, str):
        return value
    return yaml.safe_dump(dict(value), default_flow_style=True, sort_keys=False, width=1_000_000).strip()


def _params(value: str | Mapping[str, Any]) -> str:
    if isinstance(value, str):
        return value if not value or value.endswith("\n") else value + "\n"
    return "".join(f"  {name}: {_flow(spec) if isinstance(spec, Mapping) else spec}\n" for name, spec in value.items())


def space_doc(
    study: str = "demo",
    version: int = 1,
    *,
    parent: int | None = None,
    trainable: str = "analytic",
    metric: Section = LOSS,
    params: Section = X_PARAMS,
    fixed: Section = QUADRATIC,
    **sections: Section,
) -> str:
    """A space document from its sections; ``parent`` defaults to ``version - 1`` from version 2 on.

    ``space_doc("s", params=None, fixed=None)`` is the head alone, for a test that appends its own sections.
    """
    if parent is None and version > 1:
        parent = version - 1
    text = f"study: {study}\nversion: {version}\n"
    text += f"parent: {parent}\n" if parent is not None else ""
    text += f"trainable: {trainable}\n"
    text += f"metric: {_flow(metric)}\n" if metric is not None else ""
    text += f"params:\n{_params(params)}" if params is not None else ""
    text += f"fixed: {_flow(fixed)}\n" if fixed is not None else ""
    for key, value in sections.items():
        if value is not None:
            text += f"{key}: {_flow(value)}\n"
    return text


def write_space(
    root: Path,
    text: str | None = None,
    *,
    study: str = "demo",
    version: int = 1,
    name: str | None = None,
    **sections: Any,
) -> Path:
    """Write the space file ``root/<study>/<name>`` (``name`` defaults to ``v<version>.yaml``) and return its path.

    Its content is ``text`` when given (a document a test has edited, perhaps on purpose invalid), else
    ``space_doc(study, version, **sections)``.
    """
    folder = root / study
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"v{version}.yaml")
    path.write_text(space_doc(study, version, **sections) if text is None else text)
    return path


def small_search(
    trials: int = 4,
    epochs: int = 3,
    *,
    startup: int = 4,
    scheduler: str = "fifo",
    sleep: float = 0.0,
    cpu: float = 1,
    gpu: float = 0,
) -> dict[str, Any]:
    """The sections of a small search of the analytic trainable, as keyword arguments of ``space_doc`` and
    ``write_space``: ``write_space(root, study="s", params=P, **small_search(trials=6))``."""
    return {
        "fixed": {"function": "quadratic", "sleep": sleep},
        "schedule": {"scheduler": scheduler, "max_epochs": epochs, "grace_period": 1},
        "resources": {"cpu": cpu, "gpu": gpu},
        "search": {"trials": trials, "startup_trials": startup},
    }


def convnet_tiny_search(trials: int) -> dict[str, Any]:
    """The sections of ``trials`` FIFO trials of two epochs of ``convnet_tiny`` (give its ``params``)."""
    return {
        "trainable": "convnet_tiny",
        "metric": "{name: val_accuracy, mode: max}",
        "fixed": None,
        "schedule": "{scheduler: fifo, max_epochs: 2}",
        "resources": "{cpu: 1, gpu: 0}",
        "search": {"trials": trials, "startup_trials": 2},
    }


# The smallest valid document and its head (without params and fixed), for tests that edit or extend them.
MINIMAL = space_doc()
MINIMAL_HEAD = space_doc(params=None, fixed=None)
