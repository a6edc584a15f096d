"""The Ray a search runs on: join a cluster or start a local Ray, size the concurrency, shut down what we started.

Ray starts in a thread of its own (:func:`starting_ray`): a local Ray takes seconds to start (its processes boot
and register), during which the driver opens its tracking store, reads the warm start and imports what the search
needs; :meth:`RayStart.wait` joins it where Ray is first needed.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from orchestrator.errors import OrchestratorError, first_line
from orchestrator.settings import worker_logs
from orchestrator.spaces import StudyVersion

from .ray_auth import check_gcs_token, quiet_default_auth_warning
from .ray_job import stops_gracefully

PROBE_TIMEOUT_S = 5.0


def local_ray_on_loopback(address: str | None) -> None:
    """Before ray is imported: a local Ray (no ``address``, no ``$RAY_ADDRESS``) serves this process alone, so keep
    it on 127.0.0.1 (Ray reads the variable at import; it otherwise advertises the machine's address)."""
    if not address and not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Connect to ``address`` (or ``$RAY_ADDRESS``) or start a local Ray; on exit, shut down only a Ray started here.

    A Ray already initialised in this process (a test's, a notebook's) is used as it is. A cluster's address
    is probed, then its token checked (``ray_auth``), before ``ray.init``; SIGTERM stops the search as Ctrl-C does.
    """
    with starting_ray(address) as start:
        start.wait()
        yield


class RayStart:
    """Ray being started (or joined) in a thread; :meth:`wait` returns once it is up or raises why it is not."""

    def __init__(self, address: str | None):
        self.address = address
        self.started = False  # whether this process started (or joined) Ray here, so shuts it down at the end
        self.seconds = 0.0  # how long ``ray.init`` took
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._up = threading.Event()
        self._stopped = threading.Event()
        self._shutdown: threading.Thread | None = None

    def start(self) -> RayStart:
        """Begin ``ray.init`` in a thread, unless Ray is initialised in this process already."""
        import ray  # imported here, whole, before the thread imports Ray's own modules beside the driver's

        if not ray.is_initialized():
            self.started = True
            self._thread = threading.Thread(target=self._run, name="orchestrator-ray-start", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        began = time.perf_counter()
        try:
            _init(self.address)
        except BaseException as e:  # raised in the driver's thread by wait()
            self._error = e
        finally:
            self.seconds = time.perf_counter() - began
            self._up.set()
        # The processes ray.init started die with the thread that started them (Ray's fate sharing is Linux's
        # PR_SET_PDEATHSIG, which follows the parent thread): so the thread lives until Ray is shut down.
        self._stopped.wait()

    def wait(self) -> None:
        """Block until Ray is up; its start's error (an ``OrchestratorError``) is raised here."""
        if self._thread is not None:
            self._up.wait()
        if self._error is not None:
            error, self._error = self._error, None
            self.started = False  # nothing to shut down
            raise error

    def shut_down_soon(self) -> None:
        """Begin shutting down the Ray started here, in a thread (about a second: its processes are stopped and
        waited for) while the driver goes on; :meth:`stop` waits for it."""
        if self._shutdown is None and self.started and self._error is None and self._up.is_set():
            self._shutdown = threading.Thread(target=self._shut_down, name="orchestrator-ray-shutdown", daemon=True)
            self._shutdown.start()

    def _shut_down(self) -> None:
        import ray

        with suppress(Exception):  # what stopping Ray's processes reports is no news to a run that has ended
            ray.shutdown()

    def stop(self) -> None:
        """Shut down the Ray started here (once its start has finished, whatever happened meanwhile)."""
        try:
            if self._thread is not None:
                self._up.wait()
            if self._shutdown is None and self.started and self._error is None:
                self._shut_down()
        finally:
            if self._shutdown is not None:
                self._shutdown.join()
            self.started = False
            self._stopped.set()
            if self._thread is not None:
                self._thread.join()


@contextmanager
def starting_ray(address: str | None) -> Iterator[RayStart]:
    """Start Ray as :func:`ray_session` does, in a thread: the block runs meanwhile and calls ``wait()`` where it needs
    Ray. The checks that fail fast (a cluster's address probed, its token) run first, in the caller's thread. On exit,
    a Ray started here is shut down; SIGTERM stops the search as Ctrl-C does within the block."""
    import ray

    if address:
        _probe(address)
    joined = address if address not in (None, "auto") else os.environ.get("RAY_ADDRESS")
    if joined and "://" not in joined and ":" in joined and not ray.is_initialized():
        check_gcs_token(joined)
    start = RayStart(address).start()
    _STARTS.append(start)
    keep_credentials_on_their_machine()
    try:
        with stops_gracefully():
            yield start
    finally:
        _STARTS.remove(start)
        start.stop()


_STARTS: list[RayStart] = []  # the Rays being used by runs of this process, innermost last


def shut_down_ray_soon() -> None:
    """The innermost run's trials are over: a Ray it started is shut down in a thread from now (nothing for a Ray it
    found running); the run's ``starting_ray`` block waits for that at its end."""
    if _STARTS:
        _STARTS[-1].shut_down_soon()


class _DropThreadWarning(logging.Filter):
    """Ray's "SIGTERM handler is not set because current thread is not the main thread": ``stops_gracefully`` sets
    the driver's own while a search runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("SIGTERM handler is not set")


# Ray Tune copies these from the driver's environment into every trial's runtime environment, and Ray's runtime-env
# agent writes that in plain into its log on each node. Trials use their own machine's instead: a local Ray's
# processes inherit the driver's environment; a cluster's nodes have their own (docs/team-setup.md).
UNSHARED_CREDENTIALS = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"}
)


def keep_credentials_on_their_machine() -> None:
    """Stop Ray Tune from passing the driver's bucket credentials to the trials (``UNSHARED_CREDENTIALS``)."""
    from ray.tune.execution import class_cache

    shared = getattr(class_cache, "ENV_VARS_TO_PROPAGATE", None)
    if shared is not None:  # read by Ray Tune each time it makes a trial's actor class
        class_cache.ENV_VARS_TO_PROPAGATE = set(shared) - UNSHARED_CREDENTIALS


def _init(address: str | None) -> None:
    import ray

    worker_logger = logging.getLogger("ray._private.worker")
    if not any(isinstance(f, _DropThreadWarning) for f in worker_logger.filters):
        worker_logger.addFilter(_DropThreadWarning())
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # Ray's first driver makes its raylet start a Python worker per CPU for tasks; a search's trials are actors, which
    # never run on those, so on a small machine they only took CPU from the search's start (read by the raylet).
    os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
    quiet_default_auth_warning()  # a local Ray is token-authenticated by default: intended (ray_auth)
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    # Unfinished trials of an interrupted search have no results yet: expected, not a warning.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # Trial output stays in the trial's folder unless asked for: the live view is ours.
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": worker_logs(),
    }
    try:
        # "local" starts a fresh Ray for this search; a bare ray.init() would join any Ray already running here.
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local", **kwargs)
    except Exception as e:
        where = f"Ray cluster at {address!r}" if address else "a local Ray"
        raise OrchestratorError(f"could not connect to {where}: {first_line(e)}") from None


def _probe(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail in seconds, naming the address, when nothing listens there (``ray.init`` retries for minutes)."""
    target = address.removeprefix("ray://")
    if target == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        raise OrchestratorError(
            f"Ray cluster at {address!r} is not reachable ({reason}); check --address "
            "(host:port of the head's GCS, ray://host:10001 for Ray Client, or auto on a cluster node)"
        ) from None


def trial_slots(version: StudyVersion) -> int:
    """How many trials the connected cluster can run at once with the space's per-trial resources."""
    import ray

    total = ray.cluster_resources()
    slots = math.floor(total.get("CPU", 1) / version.resources.cpu + 1e-9)
    if version.resources.gpu > 0:
        slots = min(slots, math.floor(total.get("GPU", 0) / version.resources.gpu + 1e-9))
    if slots < 1:
        need = f"cpu {version.resources.cpu}, gpu {version.resources.gpu}"
        raise OrchestratorError(
            f"{version.source}: the cluster cannot fit one trial ({need}); it has "
            f"CPU {total.get('CPU', 0)}, GPU {total.get('GPU', 0)}"
        )
    return slots


def driver_node_cpus() -> tuple[str, float]:
    """The Ray node the driver runs on and its CPUs (0 on a head node started with none)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    cpus = next((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["NodeID"] == node and n["Alive"]), 0)
    return node, float(cpus)
