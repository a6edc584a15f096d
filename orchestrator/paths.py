"""Where a command may write: the one rule for output paths, checked before any expensive work.

A command writes the file or folder the user named, and creates no folder the user did not name: the folder
an output goes into must exist (orchestrator's own state folder is the one it creates, ``settings.state_dir``).
Bottom layer: the standard library and ``orchestrator.errors``.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import OrchestratorError


def _blocking_file(path: Path) -> Path | None:
    """The first of ``path``'s folders that is a file, if any."""
    return next((p for p in path.parents if p.exists() and not p.is_dir()), None)


def check_output_file(path: Path) -> None:
    """Raise ``OrchestratorError`` unless ``path`` can name a file to write: not a folder, not under a file, in a
    folder that exists."""
    if path.is_dir():
        raise OrchestratorError(f"{path} is a folder; name the file to write, such as {path / 'trials.parquet'}")
    blocker = _blocking_file(path)
    if blocker is not None:
        raise OrchestratorError(f"cannot write {path}: {blocker} is a file, not a folder")
    if not path.parent.is_dir():
        raise OrchestratorError(f"cannot write {path}: the folder {path.parent} does not exist; create it first")


def check_output_folder(path: Path) -> None:
    """Raise ``OrchestratorError`` unless ``path`` can be a folder to write into: a folder, or a new one whose parent
    exists (it is then created by the command); not a file, not under a file."""
    if path.exists() and not path.is_dir():
        raise OrchestratorError(f"{path} is a file; name a folder to write into")
    blocker = _blocking_file(path)
    if blocker is not None:
        raise OrchestratorError(f"cannot write into {path}: {blocker} is a file, not a folder")
    if not path.exists() and not path.parent.is_dir():
        raise OrchestratorError(f"cannot write into {path}: the folder {path.parent} does not exist; create it first")
