"""The search as the driver of a Ray job: which job it is, and a stop (SIGTERM) that ends its run KILLED.

Ray's job manager starts the entrypoint with ``RAY_JOB_CONFIG_JSON_ENV_VAR`` (the job's runtime
environment and metadata, whose ``job_submission_id`` is the job's id): :func:`ray_job_id` reads it,
and the search's parent run is tagged with it (``orchestrator.ray_job_id``), so ``orchestrator jobs``
finds the run of a job and the run names its job.

``ray job stop`` (``orchestrator jobs cancel``) sends SIGTERM to the driver and every process under it,
then SIGKILL after ``RAY_JOB_STOP_WAIT_TIME_S`` (which ``submit`` sets in the job's environment). Ray's
own handler for SIGTERM exits at once (``sys.exit``), which would leave the search's run FAILED with
``SystemExit: 15``, or RUNNING when the kill comes first. While a search holds its Ray,
:func:`stops_gracefully` turns SIGTERM into what Ctrl-C does: Ray Tune stops its trials and returns,
and the runner ends the parent run KILLED with the command to resume; :func:`with_stop_cause` puts
what stopped it in front of that reason. A second SIGTERM interrupts at once (as a second Ctrl-C).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

JOB_CONFIG_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray's job supervisor for the entrypoint's process
JOB_ID_KEY = "job_submission_id"

_stopped_by: str | None = None


def ray_job_id() -> str | None:
    """The id of the Ray job whose entrypoint this process is (or was started by); None outside a job."""
    text = os.environ.get(JOB_CONFIG_VAR)
    if not text:
        return None
    try:
        metadata = json.loads(text).get("metadata") or {}
    except (ValueError, AttributeError):
        return None
    job = metadata.get(JOB_ID_KEY) if isinstance(metadata, dict) else None
    return str(job) if job else None


def stop_cause() -> str | None:
    """What stopped this driver (a SIGTERM while a search ran), or None."""
    return _stopped_by


def with_stop_cause(reason: str) -> str:
    """``reason`` (why a search's run ended) preceded by what stopped the driver, if something did."""
    return f"{_stopped_by}; {reason}" if _stopped_by else reason


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _stopped_by
    job = ray_job_id()
    _stopped_by = f"stopped by Ray's job manager (Ray job {job})" if job else "stopped (SIGTERM)"
    # What Ctrl-C does now: Ray Tune's handler during a search (a graceful stop, then a second one interrupts),
    # else Python's (KeyboardInterrupt). Called directly: a Ray job's driver has SIGINT blocked.
    interrupt = signal.getsignal(signal.SIGINT)
    if callable(interrupt):
        interrupt(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


@contextmanager
def stops_gracefully() -> Iterator[None]:
    """SIGTERM acts as Ctrl-C within the block (main thread only; elsewhere signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
