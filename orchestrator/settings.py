"""Where things go by default, and the environment variables that change it: one place for each.

Nothing here reads a file or starts anything; the functions read the environment when called, so a
test or a command that sets a variable first gets what it set. Bottom layer: the standard library only.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from orchestrator.errors import OrchestratorError

HOME_ENV = "ORCHESTRATOR_HOME"  # the local state folder (default ``.orchestrator`` in the working folder)
DEFAULT_HOME = ".orchestrator"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"  # MLflow's own variable: the default tracking store
DEBUG_ENV = "ORCHESTRATOR_DEBUG"  # "1": tracebacks on errors, as --debug
WORKER_LOGS_ENV = "ORCHESTRATOR_WORKER_LOGS"  # "1": the trials' worker output on the console
DEFAULT_SPACES = "search_spaces"  # the space repository's folder, relative to the working folder

# Bounded waits at the end of a search (seconds, >= 0), each overridable by its variable.
TRACKING_WAIT_S = 120.0  # for the tracking server, before updates are spilled to a file
TRACKING_WAIT_ENV = "ORCHESTRATOR_TRACKING_WAIT_S"
REVIEW_WAIT_S = 300.0  # for review artifacts still being rendered
REVIEW_WAIT_ENV = "ORCHESTRATOR_REVIEW_WAIT_S"


def state_dir() -> Path:
    """The local state folder: ``$ORCHESTRATOR_HOME`` or ``.orchestrator``."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else a SQLite store in the state folder."""
    return os.environ.get(TRACKING_URI_ENV) or f"sqlite:///{(state_dir() / 'mlflow.db').resolve()}"


def default_storage() -> str:
    """Where Ray Tune keeps searches' state by default: ``ray_results`` in the state folder."""
    return str((state_dir() / "ray_results").resolve())


def debug() -> bool:
    return os.environ.get(DEBUG_ENV) == "1"


def worker_logs() -> bool:
    return os.environ.get(WORKER_LOGS_ENV) == "1"


def wait_seconds(variable: str, default: float) -> float:
    """A bounded wait in seconds from the environment ``variable`` (a number >= 0), else ``default``."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise OrchestratorError(f"{variable}={text!r}: give the seconds to wait, a number >= 0")
    return seconds


def tracking_wait_s() -> float:
    """Seconds to wait for the tracking server at the end of a search: ``$ORCHESTRATOR_TRACKING_WAIT_S`` or default."""
    return wait_seconds(TRACKING_WAIT_ENV, TRACKING_WAIT_S)


def review_wait_s() -> float:
    """Seconds to wait for review artifacts at the end of a search: ``$ORCHESTRATOR_REVIEW_WAIT_S`` or default."""
    return wait_seconds(REVIEW_WAIT_ENV, REVIEW_WAIT_S)
