"""An outage is reported once when it starts and once when it ends; the wait at the end is bounded, set in one place."""

from __future__ import annotations

import time
from typing import Any

import pytest

from orchestrator.errors import OrchestratorError, first_line
from orchestrator.settings import TRACKING_WAIT_ENV, TRACKING_WAIT_S, tracking_wait_s
from orchestrator.tracking.async_logger import AsyncTrialLogger, SpillFile

REFUSED = (
    "API request to http://user:secret@127.0.0.1:5000/api/2.0/mlflow/runs/log-batch failed with exception "
    "HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded with url: /api/2.0/mlflow/runs/log-batch "
    "(Caused by NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=5000): Failed to establish a new "
    'connection: [Errno 111] Connection refused"))'
)


class FlakyStore:
    """A store that takes ``up`` calls, refuses the next ``down`` (an outage), then records what it is sent."""

    def __init__(self, down: int, up: int = 0) -> None:
        self.down = down
        self.up = up
        self.sent: list[tuple[str, Any]] = []

    def _call(self, what: str, payload: Any) -> None:
        if self.up > 0:
            self.up -= 1
        elif self.down > 0:
            self.down -= 1
            raise ConnectionError(REFUSED)
        self.sent.append((what, payload))

    def reopen_run(self, run_id: str) -> None:
        self._call("reopen", run_id)

    def create_run(self, experiment_id: str, name: str, tags: Any, params: Any) -> str:
        self._call("create", name)
        return "run-1"

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = None, tags: Any = None) -> None:
        self._call("log", list(metrics))

    def end_run(self, run_id: str, status: str) -> None:
        self._call("end", status)


def test_an_outage_is_two_lines_however_many_retries() -> None:
    store = FlakyStore(down=5)
    lines: list[str] = []
    logger = AsyncTrialLogger(lambda: store, max_backoff=0.01, on_error=lines.append)  # type: ignore[arg-type]
    logger.start()
    logger.open("t", "0", "t", {}, {})
    for step in range(3):
        logger.log("t", {"loss": 1.0 / (step + 1)}, step)
    logger.close("t", "FINISHED")
    assert logger.flush(10)
    assert logger.stop(timeout=1) == 0
    assert logger.failures == 5
    assert len(lines) == 2, lines
    assert lines[0] == (
        "tracking: request to http://127.0.0.1:5000/api/2.0/mlflow/runs/log-batch failed: "
        "[Errno 111] Connection refused; keeping updates, retrying until it answers"
    )
    assert lines[1].startswith("tracking: the server answers again after ") and lines[1].endswith("kept updates sent")
    assert [what for what, _ in store.sent] == ["create", "log", "end"]
    assert [m[3] for m in store.sent[1][1]] == [0, 1, 2], "every step, once, in order"


def test_a_store_gone_for_good_spills_after_the_bounded_wait(tmp_path) -> None:
    store = FlakyStore(down=10**9)
    lines: list[str] = []
    logger = AsyncTrialLogger(lambda: store, max_backoff=0.05, on_error=lines.append)  # type: ignore[arg-type]
    logger.start()
    logger.open("t", "0", "t", {}, {})
    logger.log("t", {"loss": 1.0}, 1)
    spill = SpillFile.local(tmp_path / "spill.jsonl")
    start = time.monotonic()
    assert logger.stop(timeout=0.5, spill_to=spill) == 2
    assert time.monotonic() - start < 5, "the wait is bounded"
    assert [r["kind"] for r in spill.read()] == ["open", "log"]
    assert len(lines) == 1, "one line for the outage, however long the retries went on"


def test_first_line_keeps_the_cause_of_a_request_and_drops_credentials() -> None:
    assert first_line(ConnectionError(REFUSED)) == (
        "request to http://127.0.0.1:5000/api/2.0/mlflow/runs/log-batch failed: [Errno 111] Connection refused"
    )
    assert first_line(ValueError("first\nsecond")) == "first"
    assert first_line(ValueError()) == "ValueError"


def test_wait_defaults_and_is_overridden_by_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRACKING_WAIT_ENV, raising=False)
    assert tracking_wait_s() == TRACKING_WAIT_S
    monkeypatch.setenv(TRACKING_WAIT_ENV, "2.5")
    assert tracking_wait_s() == 2.5
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(TRACKING_WAIT_ENV, bad)
        with pytest.raises(OrchestratorError, match=rf"{TRACKING_WAIT_ENV}='{bad}': give the seconds to wait"):
            tracking_wait_s()


def test_an_outage_between_creating_a_run_and_logging_its_params_makes_no_second_run() -> None:
    store = FlakyStore(down=2, up=1)  # the run is created, then its params fail twice
    logger = AsyncTrialLogger(lambda: store, max_backoff=0.01)  # type: ignore[arg-type]
    logger.start()
    logger.open("t", "0", "t", {}, {"lr": 0.1})
    logger.close("t", "FINISHED")
    assert logger.flush(10)
    logger.stop(timeout=1)
    # the run stays RUNNING while its params are retried: one batch once the store is back, then its end
    assert [what for what, _ in store.sent] == ["create", "log", "end"], store.sent
