"""The other live searches of a study, read from the tracking store so that searches at once do not repeat each other.

Two teammates who start searches of one study in the same minute would otherwise run the same configurations:
each searcher avoids repeating only what it knows. ``StudyPeers`` reads, in a thread of the driver, the study's
other RUNNING searches (one query every ``PEERS_POLL_S``) and, while there are any, their trial runs: those
RUNNING and those that ended since this search started (two filtered queries, whatever the study's size), fitted
into this search's version (``spaces.carry``: others may search another version). The searcher takes the latest
snapshot at each suggestion (``SpaceSearcher.watch_peers``).

A trial's run appears in the store a moment after its search suggested it (the logger creates it), so while
another search runs each search also publishes the configurations it has suggested and not finished as a tag of
its own run (``schema.PENDING``): the other counts them as running. Two searches that suggest at the same moment
see the same state and may choose alike, so a suggestion is a claim (``claim``): its configuration is written to
the run's pending list, then the other searches' lists are read, and a configuration another search claimed too
is given up and suggested again (both may give it up; neither runs it twice). Running configurations are told
apart by value (a run and a pending entry of one are one).

The first suggestion waits for the thread's first read (at most ``PEERS_WAIT_S``): a search that started a moment
after another must know of it before it suggests, or it neither claims nor publishes what it suggests, and the other
sees that trial only once its run exists (seconds later on a busy machine, time enough to suggest it too).

What it costs per suggestion: with no other live search, nothing (the snapshot is read from memory). With one,
a suggestion waits for a read of the store at most ``PEERS_FRESH_S`` old (at most ``PEERS_WAIT_S``: a store that
answers slower than that is read in the background only), makes its claim (one write and one read of the
searches' runs, ``StudyPeers.last_claim_s``), and the library's state is rebuilt when the peers' trials changed;
``StudyPeers.last_read_s`` holds how long the last background read took. Best effort by design: trials two
searches suggest before either's run exists (the first of each, started in the same second) are not told apart.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import first_line
from orchestrator.spaces import StudyVersion, ValueNotInSpace
from orchestrator.spaces.carry import CarriedTrial, carry, fit
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import MlflowStore

PEERS_POLL_S = 2.0  # how often the store is read for other live searches (and their trials while there are any)
PEERS_FRESH_S = 0.5  # with other live searches, a suggestion wants a read at most this old ...
PEERS_WAIT_S = 3.0  # ... and waits at most this long for one


@dataclass(frozen=True)
class PeerTrials:
    """Other searches' trials as one read found them: running (their values as JSON -> values: trial runs RUNNING
    and configurations the searches published as pending) and finished since this search started (run id ->
    carried trial), both fitted into this search's version."""

    running: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # by their values as JSON
    finished: Mapping[str, CarriedTrial] = field(default_factory=dict)


class StudyPeers:
    """Reads the peers of the search ``parent_run_id`` of ``version``'s study in a background thread."""

    def __init__(
        self,
        store: MlflowStore,
        version: StudyVersion,
        parent_run_id: str,
        kind: str,
        since_ms: int,
        poll_s: float = PEERS_POLL_S,
    ) -> None:
        self.store, self.version, self.parent_run_id, self.kind = store, version, parent_run_id, kind
        self.since_ms, self.poll_s = since_ms, poll_s
        self.last_read_s = 0.0  # how long the last read of the store took
        self.last_claim_s = 0.0  # how long the last claim took (a write and a read)
        self.last_error = ""  # why the last read failed (the search goes on without it)
        self.active = False  # whether another search of the study was RUNNING at the last read
        self._snapshot: PeerTrials | None = None
        self._read_at = 0.0  # time.monotonic() of the last read that finished
        self._changed = threading.Condition()
        self._wanted = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="orchestrator-peers", daemon=True)

    def snapshot(self) -> PeerTrials | None:
        """The latest snapshot; before the first read has finished, that read, and while other searches run, a read
        at most ``PEERS_FRESH_S`` old (waiting up to ``PEERS_WAIT_S`` for either). A new object whenever the peers'
        trials changed (the searcher compares identity)."""
        if not self._read_at:  # the first suggestion: whether others run decides whether it claims
            with self._changed:
                self._changed.wait_for(lambda: self._read_at > 0 or self._stopped, timeout=PEERS_WAIT_S)
        if self.active and time.monotonic() - self._read_at > PEERS_FRESH_S:
            with self._changed:
                asked = time.monotonic()
                self._wanted = True
                self._changed.notify_all()
                self._changed.wait_for(lambda: self._read_at >= asked or self._stopped, timeout=PEERS_WAIT_S)
        return self._snapshot

    def claim(self, values: dict[str, Any], pending: list[dict[str, Any]]) -> bool:
        """Publish ``pending`` (this search's suggested, unfinished configurations, ``values`` the newest) now, then
        whether no other live search has ``values`` among its own: False means another search claimed them at the
        same moment, and this search should suggest again. True at once when no other search runs."""
        if not self.active:
            return True
        start = time.perf_counter()
        text = json.dumps(pending, sort_keys=True, default=str)
        try:
            self.store.log_batch(self.parent_run_id, tags={schema.PENDING: text})
            theirs = self._pending_of_others(self.store.searches(self.version.study, running=True))
        except Exception as e:  # the store does not answer now: the suggestion stands, the next one tries again
            self.last_error = first_line(e)
            return True
        finally:
            self.last_claim_s = time.perf_counter() - start
        key = json.dumps(values, sort_keys=True, default=str)
        return all(json.dumps(_fitted(self.version, c), sort_keys=True, default=str) != key for c in theirs)

    def _pending_of_others(self, searches: list[Any]) -> list[dict[str, Any]]:
        """The configurations the other running searches published as pending."""
        out: list[dict[str, Any]] = []
        for run in searches:
            if run.info.run_id != self.parent_run_id:
                with suppress(ValueError, TypeError):
                    out += [c for c in json.loads(run.data.tags.get(schema.PENDING, "[]")) if isinstance(c, dict)]
        return out

    def start(self) -> StudyPeers:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def __enter__(self) -> StudyPeers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while True:
            try:
                self.read()
                self.last_error = ""
            except Exception as e:  # a store that does not answer now: the search goes on, the next read tries again
                self.last_error = first_line(e)
            with self._changed:
                self._read_at = time.monotonic()
                self._changed.notify_all()
                self._changed.wait_for(lambda: self._wanted or self._stopped, timeout=self.poll_s)
                self._wanted = False
                if self._stopped:
                    return

    def read(self) -> PeerTrials | None:
        """Read the store now (the other live searches, then their trials while there are any)."""
        start = time.perf_counter()
        study = self.version.study
        searches = self.store.searches(study, running=True)
        self.active = any(run.info.run_id != self.parent_run_id for run in searches)
        if not self.active:
            self.last_read_s = time.perf_counter() - start
            return self._snapshot
        running_rows = self.store.trials(study, kind=self.kind, running=True)
        ended_rows = self.store.trials(study, kind=self.kind, ended_after_ms=self.since_ms)
        self.last_read_s = time.perf_counter() - start
        configs = [row.config for row in running_rows if row.parent_run_id != self.parent_run_id]
        configs += self._pending_of_others(searches)
        running: dict[str, dict[str, Any]] = {}
        for config in configs:
            values = _fitted(self.version, config)
            if values is not None:
                running[json.dumps(values, sort_keys=True, default=str)] = values
        metric = self.version.metric.name
        finished: dict[str, CarriedTrial] = {}
        for row in ended_rows:
            if row.parent_run_id != self.parent_run_id:
                prior = row.prior(metric, self.version.reported)
                carried = carry([prior], self.version).carried  # finished, scored and fitting only
                if carried:
                    finished[row.run_id] = carried[0]
        old = self._snapshot
        if old is None or old.running.keys() != running.keys() or old.finished.keys() != finished.keys():
            self._snapshot = PeerTrials(running, finished)
        return self._snapshot


def _fitted(version: StudyVersion, config: dict[str, Any]) -> dict[str, Any] | None:
    """``config`` fitted into ``version``'s space (``spaces.carry.fit``), None when it does not fit."""
    try:
        return fit(version.params, config)
    except ValueNotInSpace:
        return None
