"""Registers the suite's plugin (``tests/plugin.py``: shared fixtures and the rules the suite enforces).

Besides that, only the environment every test process starts from; no test imports this module: shared plain
helpers are modules of their own (``tests/spacefiles.py``, ``tests/runs.py``), fixtures are in the plugin.
"""

from __future__ import annotations

import os

from tests.ray_token import ray_token_file

# Keep every Ray node the tests start on 127.0.0.1 (Ray otherwise advertises the machine's address): tests
# talk to loopback only. Read by Ray at import, so it is set before any import.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# Every Ray the tests start is token-authenticated, as Ray 2.60 makes a local Ray by default, with a token made for
# this run rather than the ~/.ray/auth_token Ray would write (orchestrator/engine/ray_auth.py).
if "RAY_AUTH_MODE" not in os.environ:
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(ray_token_file()))

pytest_plugins = ["tests.plugin", "pytester"]
