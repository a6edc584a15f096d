"""Send tracking calls from a background thread, in batches, retrying through outages.

The Ray Tune driver only appends to a queue (microseconds), so logging never sits on the
critical path of scheduling or training. The worker thread coalesces everything queued
for a run into one ``log_batch`` call, keeps what it could not send, and retries with
backoff until the server answers again. At shutdown, anything still unsent after the
flush timeout (``orchestrator.settings.tracking_wait_s()``: ``TRACKING_WAIT_S``, or ``$ORCHESTRATOR_TRACKING_WAIT_S``)
is written to a spill file (JSON lines) that ``replay_spill`` sends later. The spill file lives
on a pyarrow filesystem: a local folder or the bucket of a remote storage.

An outage is reported once when it starts and once when it ends, never once per retry.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from orchestrator.errors import first_line

from .mlflow_store import MlflowStore


@dataclass
class _Op:
    """One queued call. ``kind`` is open | log | close."""

    kind: str
    key: str
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    status: str = ""
    experiment_id: str = ""
    name: str = ""
    run_id: str = ""  # open: reuse this run instead of creating one

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ("", [], {})}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> _Op:
        known = {f.name for f in dataclasses.fields(cls)}
        op = cls(**{k: v for k, v in record.items() if k in known})
        op.metrics = [(str(k), float(v), int(t), int(s)) for k, v, t, s in op.metrics]
        return op


class SpillFile:
    """JSON lines of updates a driver could not send, on a pyarrow filesystem (local folder or bucket).

    Object stores cannot append, so ``append`` rewrites the file with the new lines added. It pickles
    with the callback that holds it (pyarrow filesystems pickle), so a restored search spills to the same place.
    """

    def __init__(self, filesystem: pafs.FileSystem, path: str, where: str | None = None):
        """``where`` names the file in messages (a URI); default: ``path``."""
        self.filesystem = filesystem
        self.path = path
        self.where = where or path

    @classmethod
    def local(cls, path: Path | str) -> SpillFile:
        return cls(pafs.LocalFileSystem(), str(Path(path).resolve()))

    def __repr__(self) -> str:
        return f"SpillFile({self.where!r})"

    def exists(self) -> bool:
        return self.filesystem.get_file_info(self.path).type != pafs.FileType.NotFound

    def read(self) -> list[dict[str, Any]]:
        """The spilled records, oldest first; none when there is no file."""
        if not self.exists():
            return []
        with self.filesystem.open_input_stream(self.path) as f:
            return [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]

    def append(self, records: Iterable[Mapping[str, Any]]) -> None:
        lines = [json.dumps(dict(r)) + "\n" for r in records]
        kept = [json.dumps(r) + "\n" for r in self.read()]
        self.filesystem.create_dir(posixpath.dirname(self.path), recursive=True)
        with self.filesystem.open_output_stream(self.path) as f:
            f.write("".join(kept + lines).encode())

    def remove(self) -> None:
        if self.exists():
            self.filesystem.delete_file(self.path)


class AsyncTrialLogger:
    """Non-blocking tracking: ``open`` / ``log`` / ``close`` per trial key, sent by a worker thread."""

    def __init__(
        self,
        store_factory: Callable[[], MlflowStore],
        *,
        flush_interval: float = 0.5,
        max_backoff: float = 15.0,
        on_error: Callable[[str], None] | None = None,
    ):
        self._store_factory = store_factory
        self._store: MlflowStore | None = None
        self._queue: queue.Queue[_Op | None] = queue.Queue()
        self._pending: list[_Op] = []
        self._runs: dict[str, str] = {}
        self._run_waiters: dict[str, list[Callable[[str], None]]] = {}
        self._runs_lock = threading.Lock()
        self._skip_upto: dict[str, int] = {}
        self._flush_interval = flush_interval
        self._max_backoff = max_backoff
        self._on_error = on_error or (lambda message: None)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._in_flight: set[int] = set()
        self.calls = 0
        self.failures = 0
        self.last_error = ""

    # ------------------------------------------------------------------ producer side (driver)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="orchestrator-tracking", daemon=True)
            self._thread.start()

    def open(
        self,
        key: str,
        experiment_id: str,
        name: str,
        tags: Mapping[str, str],
        params: Mapping[str, Any],
        *,
        reuse_run_id: str = "",
        skip_steps_upto: int = -1,
    ) -> None:
        """Create a run for ``key`` (or reopen ``reuse_run_id``, ignoring steps already logged)."""
        if skip_steps_upto >= 0:
            self._skip_upto[key] = skip_steps_upto
        self._put(
            _Op(
                "open",
                key,
                params=dict(params),
                tags=dict(tags),
                experiment_id=experiment_id,
                name=name,
                run_id=reuse_run_id,
            )
        )

    def log(
        self,
        key: str,
        metrics: Mapping[str, float] | None = None,
        step: int = 0,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        if step <= self._skip_upto.get(key, -1):
            metrics = None  # already logged before a driver restart: never log twice
        now = int(time.time() * 1000)
        ms = [(k, float(v), now, int(step)) for k, v in (metrics or {}).items()]
        if ms or params or tags:
            self._put(_Op("log", key, metrics=ms, params=dict(params or {}), tags=dict(tags or {})))

    def close(self, key: str, status: str, tags: Mapping[str, str] | None = None) -> None:
        self._put(_Op("close", key, status=status, tags=dict(tags or {})))

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called: what is queued from then on is never sent."""
        return self._stop.is_set()

    def run_id(self, key: str, timeout: float = 30.0) -> str | None:
        """The run created for ``key`` (waits for the worker to create it)."""
        deadline = time.monotonic() + timeout
        while key not in self._runs and time.monotonic() < deadline:
            time.sleep(0.02)
        return self._runs.get(key)

    def when_run_exists(self, key: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(run_id)`` once the run of ``key`` exists: now if it does, else from the worker thread
        right after it creates (or reopens) the run. Never blocks; a run that is never created never calls it."""
        with self._runs_lock:
            run_id = self._runs.get(key)
            if run_id is None:
                self._run_waiters.setdefault(key, []).append(callback)
                return
        callback(run_id)

    def _run_created(self, key: str) -> None:
        with self._runs_lock:
            waiting = self._run_waiters.pop(key, [])
        for callback in waiting:
            try:
                callback(self._runs[key])
            except Exception as e:  # a waiter's problem must not stop the sending of updates
                self._on_error(f"tracking: a callback on the run of {key} failed: {first_line(e)}")

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until everything queued so far is sent; False if the timeout passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and not self._pending and self._idle.is_set():
                return True
            time.sleep(0.02)
        return False

    def stop(self, timeout: float = 60.0, spill_to: SpillFile | None = None) -> int:
        """Flush, stop the worker, and spill what is left; returns the number of ops left unsent."""
        self.flush(timeout)
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
        left = self._pending + [op for op in _drain(self._queue) if op is not None]
        if left and spill_to is not None:
            spill_to.append({**op.as_json(), "run": self._runs.get(op.key, "")} for op in left)
        return len(left)

    def _put(self, op: _Op) -> None:
        self._idle.clear()
        self._queue.put(op)

    # ------------------------------------------------------------------ consumer side (worker thread)

    def _work(self) -> None:
        backoff = 0.5
        outage_since: float | None = None  # when the current outage started (monotonic), None while sending
        while True:
            stopping = self._stop.is_set()
            self._gather(block=not self._pending and not stopping)
            if not self._pending:
                self._idle.set()
                if stopping:
                    return
                continue
            try:
                self._send()
                backoff = 0.5
                if outage_since is not None:
                    self._on_error(
                        f"tracking: the server answers again after {time.monotonic() - outage_since:.0f}s; "
                        "kept updates sent"
                    )
                    outage_since = None
            except Exception as e:
                if _permanent(e):  # the server refused this update: retrying cannot help
                    dropped = self._in_flight or {id(self._pending[0])}
                    self._pending = [op for op in self._pending if id(op) not in dropped]
                    self._on_error(f"tracking: update refused, dropped: {first_line(e)}")
                    continue
                # the server is down or unreachable: keep everything, try again (said once per outage)
                self.failures += 1
                self.last_error = first_line(e)
                if outage_since is None:
                    outage_since = time.monotonic()
                    self._on_error(f"tracking: {self.last_error}; keeping updates, retrying until it answers")
                self._store = None
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self._max_backoff)

    def _gather(self, block: bool) -> None:
        try:
            op = self._queue.get(timeout=self._flush_interval) if block else self._queue.get_nowait()
        except queue.Empty:
            return
        if op is not None:
            self._pending.append(op)
        # Let a burst of results accumulate into one batch.
        deadline = time.monotonic() + (0.05 if block else 0)
        while True:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.01)
                continue
            if op is not None:
                self._pending.append(op)

    def _send(self) -> None:
        """Send pending ops, each run's in order: a run's pending updates (its params, metrics and tags, up to its end)
        go in one ``log_batch``, so a short trial whose open, results and close are queued together costs three calls
        (create, batch, end) instead of five; each op is dropped once sent."""
        if self._store is None:
            self._store = self._store_factory()
        store = self._store
        while self._pending:
            op = self._pending[0]
            self._in_flight = set()
            if op.kind != "open" and op.key not in self._runs:
                self._pending.pop(0)  # its run could never be created; nothing to attach it to
                continue
            if op.kind == "open":
                self._in_flight = {id(op)}
                self._pending[0] = self._opened(store, op)
                self.calls += 1
                self._run_created(op.key)
                continue
            self._send_run(store, op.key)
        self._in_flight = set()

    def _opened(self, store: MlflowStore, op: _Op) -> _Op:
        """Create (or reopen) the run of ``op``; what it still has to log (its params, a reopened run's tags) comes
        back as a log op that takes its place, so a retry never creates a second run."""
        if op.run_id:
            store.reopen_run(op.run_id)
            self._runs[op.key] = op.run_id
            return _Op("log", op.key, params=op.params, tags=op.tags)
        self._runs[op.key] = op.run_id = store.create_run(op.experiment_id, op.name, op.tags, {})
        return _Op("log", op.key, params=op.params)

    def _send_run(self, store: MlflowStore, key: str) -> None:
        """Send the pending log ops of the run ``key`` up to its close, and the close's tags, in one batch; then end
        the run if it closed."""
        mine: list[_Op] = []
        close: _Op | None = None
        for op in self._pending:
            if op.key != key:
                continue
            if op.kind == "open":
                break  # a later reopen of the same key: after what comes before it
            mine.append(op)
            if op.kind == "close":
                close = op
                break
        metrics = [m for op in mine for m in op.metrics]
        params = {k: v for op in mine for k, v in op.params.items()}
        tags = {k: v for op in mine for k, v in op.tags.items()}
        # refused for good: the log ops go, the close stays (tried alone next, so the run still ends)
        self._in_flight = {id(op) for op in mine if op is not close} or {id(mine[0])}
        if metrics or params or tags:
            store.log_batch(self._runs[key], metrics=metrics, params=params, tags=tags)
            self.calls += 1
        sent = {id(op) for op in mine if op is not close}
        if close is not None:
            close.metrics, close.params, close.tags = [], {}, {}  # sent: a retry only ends the run
            self._in_flight = {id(close)}
            store.end_run(self._runs[key], close.status)
            self.calls += 1
            sent.add(id(close))
        self._pending = [op for op in self._pending if id(op) not in sent]


def _apply(store: MlflowStore, op: _Op, runs: dict[str, str]) -> None:
    """Send one op; an ``open`` records the run it creates (or reopens) in ``runs``, others need it there."""
    if op.kind == "open":
        if op.run_id:
            store.reopen_run(op.run_id)
            runs[op.key] = op.run_id
            if op.params or op.tags:
                store.log_batch(op.run_id, params=op.params, tags=op.tags)
        else:
            runs[op.key] = op.run_id = store.create_run(op.experiment_id, op.name, op.tags, {})
            # From here a retry of this op (the params below failed) reopens this run: never a second run.
            if op.params:
                store.log_batch(op.run_id, params=op.params)
        return
    run = runs[op.key]
    if op.metrics or op.params or op.tags:
        store.log_batch(run, metrics=op.metrics, params=op.params, tags=op.tags)
    if op.kind == "close":
        store.end_run(run, op.status)


def _permanent(e: BaseException) -> bool:
    """An error the server gave for this request itself (bad value, missing run), not an outage."""
    code = getattr(e, "error_code", "")
    return code in {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST"}


def _drain(q: queue.Queue[Any]) -> list[Any]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def replay_spill(spill: SpillFile, store: MlflowStore) -> int:
    """Send the ops a previous driver could not, in order; returns how many were sent. Removes the file.

    A run the old driver never managed to create is created here; ops of a run that cannot be
    identified (its ``open`` was lost) are skipped.
    """
    runs: dict[str, str] = {}
    sent = 0
    for record in spill.read():
        op = _Op.from_json(record)
        if record.get("run"):
            runs.setdefault(op.key, record["run"])
        if op.kind != "open" and op.key not in runs:
            continue
        _apply(store, op, runs)
        sent += 1
    spill.remove()
    return sent
