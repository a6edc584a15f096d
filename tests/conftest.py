"""Shared fixtures: paths and small space documents."""

from __future__ import annotations

import os
from pathlib import Path

from tests.ray_token import ray_token_file

# Keep every Ray node the tests start on 127.0.0.1 (Ray otherwise advertises the machine's
# address): tests talk to loopback only. Read by Ray at import, so it is set before any import.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# Every Ray the tests start is token-authenticated, as Ray 2.60 makes a local Ray by default, with a token made for
# this run rather than the ~/.ray/auth_token Ray would write (orchestrator/engine/ray_auth.py).
if "RAY_AUTH_MODE" not in os.environ:
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(ray_token_file()))

import pytest

from tests.team.stack import team  # noqa: F401  (the team's tracking server, one per session)

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"

# What every space file starts with; add ``params:`` (and more) to make a document.
MINIMAL_HEAD = """\
study: demo
version: 1
trainable: analytic
metric: {name: loss, mode: min}
"""
MINIMAL = (
    MINIMAL_HEAD
    + """\
params:
  x: {uniform: [-1.0, 1.0]}
fixed: {function: quadratic}
"""
)


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
