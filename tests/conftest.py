"""Shared fixtures: paths and small space documents."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"

MINIMAL = """\
study: demo
version: 1
trainable: analytic
metric: {name: loss, mode: min}
params:
  x: {uniform: [-1.0, 1.0]}
fixed: {function: quadratic}
"""


@pytest.fixture
def write_space(tmp_path: Path):
    """Write a space file at ``tmp_path/<study>/<name>`` and return its path."""

    def write(text: str, name: str = "v1.yaml", study: str = "demo") -> Path:
        folder = tmp_path / study
        folder.mkdir(exist_ok=True)
        path = folder / name
        path.write_text(text)
        return path

    return write
