"""The other live searches of a study as one search sees them (``orchestrator.engine.peers.StudyPeers``), on a store
stand-in whose answers the test sets (the real two-search cases, against a real ``mlflow server``, are in
``tests/test_honest_commands.py``)."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

from orchestrator.engine.peers import StudyPeers
from orchestrator.spaces import parse_version
from orchestrator.tracking import schema
from tests.spacefiles import space_doc

VERSION = parse_version(space_doc("peers", params="  x: {choice: [1, 2, 3]}\n"))


def search_run(run_id: str, pending: list[dict[str, Any]] | None = None) -> Any:
    """A search's run as ``MlflowStore.searches`` lists it, with its published pending configurations."""
    tags = {schema.PENDING: json.dumps(pending)} if pending is not None else {}
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id), data=SimpleNamespace(tags=tags))


class SlowStore:
    """A tracking store whose reads take ``delay_s``: beside this search (``mine``), the search ``other`` runs with
    ``pending`` published, unless ``pending`` is None."""

    def __init__(self, delay_s: float, pending: list[dict[str, Any]] | None) -> None:
        self.delay_s, self.pending = delay_s, pending
        self.published: list[str] = []

    def searches(self, study: str, running: bool = False) -> list[Any]:
        time.sleep(self.delay_s)
        others = [] if self.pending is None else [search_run("other", self.pending)]
        return [search_run("mine"), *others]

    def trials(self, study: str, **_: Any) -> list[Any]:
        return []

    def log_batch(self, run_id: str, tags: dict[str, str]) -> None:
        self.published.append(tags[schema.PENDING])


def test_the_first_suggestion_waits_for_the_first_read_so_it_claims_against_a_search_already_running() -> None:
    """A search started a moment after another used to suggest before its first read of the store had finished: it
    believed itself alone, so it neither published its suggestion nor saw the other's, and both ran one
    configuration (a flaky two-search test on a loaded machine)."""
    store = SlowStore(0.3, pending=[{"x": 2}])
    with StudyPeers(store, VERSION, "mine", "trial", since_ms=0, poll_s=10.0) as peers:  # type: ignore[arg-type]
        started = time.monotonic()
        snapshot = peers.snapshot()
        waited = time.monotonic() - started
        assert peers.active and snapshot is not None and list(snapshot.running.values()) == [{"x": 2}]
        assert waited >= 0.2  # it waited for the read instead of answering from an empty memory
        assert not peers.claim({"x": 2}, [{"x": 2}])  # the other search holds it: give it up
        assert peers.claim({"x": 3}, [{"x": 3}])
    assert [json.loads(text) for text in store.published] == [[{"x": 2}], [{"x": 3}]]


def test_alone_a_search_waits_once_then_answers_from_memory() -> None:
    store = SlowStore(0.2, pending=None)
    with StudyPeers(store, VERSION, "mine", "trial", since_ms=0, poll_s=10.0) as peers:  # type: ignore[arg-type]
        peers.snapshot()
        started = time.monotonic()
        for _ in range(5):
            assert peers.snapshot() is None and peers.claim({"x": 1}, [{"x": 1}])
        assert time.monotonic() - started < 0.1  # no store read or write per suggestion when alone
    assert store.published == []
