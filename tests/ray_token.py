"""A Ray token for one test run: a new random token in a file of its own, removed when the run ends."""

from __future__ import annotations

import atexit
import secrets
import shutil
import tempfile
from pathlib import Path


def ray_token_file() -> Path:
    """A file (mode 600) holding a new token; its folder is removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="ray-token-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "auth_token"
    path.write_text(secrets.token_hex(32))
    path.chmod(0o600)
    return path
