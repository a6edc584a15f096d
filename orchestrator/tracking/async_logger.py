"""Send tracking calls from a background thread, in batches, retrying through outages.

The Ray Tune driver only appends to a queue (microseconds), so logging never sits on the
critical path of scheduling or training. The worker thread coalesces everything queued
for a run into one ``log_batch`` call, keeps what it could not send, and retries with
backoff until the server answers again. At shutdown, anything still unsent after the
flush timeout is written to a spill file (JSON lines) that ``replay_spill`` sends later.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .mlflow_store import MlflowStore, _short


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
        self._put(_Op("open", key, params=dict(params), tags=dict(tags), experiment_id=experiment_id,
                      name=name, run_id=reuse_run_id))  # fmt: skip

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

    def run_id(self, key: str, timeout: float = 30.0) -> str | None:
        """The run created for ``key`` (waits for the worker to create it)."""
        deadline = time.monotonic() + timeout
        while key not in self._runs and time.monotonic() < deadline:
            time.sleep(0.02)
        return self._runs.get(key)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until everything queued so far is sent; False if the timeout passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and not self._pending and self._idle.is_set():
                return True
            time.sleep(0.02)
        return False

    def stop(self, timeout: float = 60.0, spill_to: Path | None = None) -> int:
        """Flush, stop the worker, and spill what is left; returns the number of ops spilled."""
        self.flush(timeout)
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
        left = self._pending + [op for op in _drain(self._queue) if op is not None]
        if left and spill_to is not None:
            spill_to.parent.mkdir(parents=True, exist_ok=True)
            with spill_to.open("a") as f:
                for op in left:
                    f.write(json.dumps({**op.as_json(), "run": self._runs.get(op.key, "")}) + "\n")
        return len(left)

    def _put(self, op: _Op) -> None:
        self._idle.clear()
        self._queue.put(op)

    # ------------------------------------------------------------------ consumer side (worker thread)

    def _work(self) -> None:
        backoff = 0.5
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
            except Exception as e:
                if _permanent(e):  # the server refused this update: retrying cannot help
                    dropped = self._in_flight or {id(self._pending[0])}
                    self._pending = [op for op in self._pending if id(op) not in dropped]
                    self._on_error(f"tracking: update refused, dropped: {_short(e)}")
                    continue
                # the server is down or unreachable: keep everything, try again
                self.failures += 1
                self.last_error = _short(e)
                self._on_error(f"tracking: {self.last_error}; {len(self._pending)} update(s) kept, retrying")
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
        """Send pending ops in order, merging consecutive logs of a run; drop each op once sent."""
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
                if op.run_id:
                    store.reopen_run(op.run_id)
                    self._runs[op.key] = op.run_id
                    if op.params or op.tags:
                        store.log_batch(op.run_id, params=op.params, tags=op.tags)
                else:
                    self._runs[op.key] = store.create_run(op.experiment_id, op.name, op.tags, op.params)
                self.calls += 1
                self._pending.pop(0)
            elif op.kind == "close":
                run = self._runs[op.key]
                if op.tags:
                    store.log_batch(run, tags=op.tags)
                store.end_run(run, op.status)
                self.calls += 1
                self._pending.pop(0)
            else:
                self._send_logs(store)

    def _send_logs(self, store: MlflowStore) -> None:
        group: list[_Op] = []
        for op in self._pending:
            if op.kind != "log":
                break
            group.append(op)
        for key in dict.fromkeys(op.key for op in group):
            mine = [op for op in group if op.key == key]
            metrics = [m for op in mine for m in op.metrics]
            params = {k: v for op in mine for k, v in op.params.items()}
            tags = {k: v for op in mine for k, v in op.tags.items()}
            self._in_flight = {id(op) for op in mine}
            store.log_batch(self._runs[key], metrics=metrics, params=params, tags=tags)
            self.calls += 1
            self._pending = [op for op in self._pending if id(op) not in self._in_flight]
        self._in_flight = set()


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


def replay_spill(path: Path, store: MlflowStore) -> int:
    """Send the ops a previous driver could not; returns how many were sent. Removes the file."""
    if not path.exists():
        return 0
    sent = 0
    for line in path.read_text().splitlines():
        op = json.loads(line)
        run = op.get("run") or op.get("run_id")
        if not run:
            continue
        if op["kind"] == "log":
            store.log_batch(run, [tuple(m) for m in op.get("metrics", [])], op.get("params"), op.get("tags"))
        elif op["kind"] == "close":
            store.end_run(run, op["status"])
        sent += 1
    path.unlink()
    return sent
