"""The async logger sends a run's queued updates in one batch: a short trial costs create, batch, end (three calls)."""

from __future__ import annotations

from typing import Any

from orchestrator.tracking.async_logger import AsyncTrialLogger


class RecordingStore:
    """Records every call; ``refuse`` makes log_batch calls whose params hold that key fail for good (a bad value);
    ``down`` fails the next that many calls as an outage."""

    def __init__(self, refuse: str = "", down: int = 0) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.refuse = refuse
        self.down = down
        self.runs = 0

    def _outage(self) -> None:
        if self.down > 0:
            self.down -= 1
            raise ConnectionError("connection refused")

    def create_run(self, experiment_id: str, name: str, tags: Any, params: Any) -> str:
        self._outage()
        self.runs += 1
        run = f"run-{name}"
        self.calls.append(("create", run, dict(tags)))
        return run

    def reopen_run(self, run_id: str) -> None:
        self._outage()
        self.calls.append(("reopen", run_id, None))

    def log_batch(self, run_id: str, metrics: Any = (), params: Any = None, tags: Any = None) -> None:
        self._outage()
        if self.refuse and self.refuse in (params or {}):
            error = ValueError("bad value")
            error.error_code = "INVALID_PARAMETER_VALUE"  # type: ignore[attr-defined]
            raise error
        self.calls.append(("batch", run_id, {"metrics": list(metrics), "params": params, "tags": tags}))

    def end_run(self, run_id: str, status: str) -> None:
        self._outage()
        self.calls.append(("end", run_id, status))


def logged(store: RecordingStore, ops: Any, **kwargs: Any) -> AsyncTrialLogger:
    """Queue ``ops(logger)`` before the sender starts (as a burst of results is), then send everything."""
    logger = AsyncTrialLogger(lambda: store, max_backoff=0.01, **kwargs)  # type: ignore[arg-type, return-value]
    ops(logger)
    logger.start()
    assert logger.flush(10)
    logger.stop(timeout=1)
    return logger


def a_trial(logger: AsyncTrialLogger, key: str, epochs: int = 2) -> None:
    logger.open(key, "0", key, {"kind": "trial"}, {"lr": 0.1})
    for epoch in range(1, epochs + 1):
        logger.log(key, {"loss": 1.0 / epoch}, epoch)
    logger.log(key, {"best_loss": 0.5}, epochs)
    logger.close(key, "FINISHED", {"status": "FINISHED"})


def test_a_short_trial_queued_at_once_is_create_batch_end() -> None:
    store = RecordingStore()
    logger = logged(store, lambda lg: a_trial(lg, "a"))
    assert [what for what, _, _ in store.calls] == ["create", "batch", "end"]
    batch = store.calls[1][2]
    assert batch["params"] == {"lr": 0.1} and batch["tags"] == {"status": "FINISHED"}
    assert [(key, step) for key, _, _, step in batch["metrics"]] == [("loss", 1), ("loss", 2), ("best_loss", 2)]
    assert logger.calls == 3


def test_runs_keep_their_own_order_and_each_gets_its_callback() -> None:
    store = RecordingStore()
    seen: list[str] = []

    def two_trials(logger: AsyncTrialLogger) -> None:
        logger.open("a", "0", "a", {}, {"x": 1})
        logger.open("b", "0", "b", {}, {"x": 2})
        logger.when_run_exists("b", seen.append)
        logger.log("b", {"loss": 2.0}, 1)
        logger.log("a", {"loss": 1.0}, 1)
        logger.close("a", "FINISHED")
        logger.close("b", "FAILED", {"failure": "boom"})

    logged(store, two_trials)
    per_run: dict[str, list[str]] = {}
    for what, run, _ in store.calls:
        per_run.setdefault(run, []).append(what)
    assert per_run == {"run-a": ["create", "batch", "end"], "run-b": ["create", "batch", "end"]}
    assert ("end", "run-b", "FAILED") in store.calls and seen == ["run-b"]


def test_an_outage_inside_a_trial_makes_no_second_run_and_loses_nothing() -> None:
    store = RecordingStore()
    original = store.create_run

    def create_then_fail(*args: Any) -> str:  # the run is created, then the store goes away for two calls
        run = original(*args)
        store.down = 2
        return run

    store.create_run = create_then_fail  # type: ignore[method-assign]
    logged(store, lambda lg: a_trial(lg, "a"))
    assert store.runs == 1
    assert [what for what, _, _ in store.calls] == ["create", "batch", "end"]
    assert store.calls[1][2]["params"] == {"lr": 0.1}


def test_a_batch_refused_for_good_drops_its_updates_but_still_ends_the_run() -> None:
    store = RecordingStore(refuse="lr")
    errors: list[str] = []
    logged(store, lambda lg: a_trial(lg, "a"), on_error=errors.append)
    assert [what for what, _, _ in store.calls] == ["create", "batch", "end"]
    assert store.calls[1][2]["tags"] == {"status": "FINISHED"}, "the close's tags go alone after the refusal"
    assert errors and "refused" in errors[0]


def test_a_reopened_run_gets_its_tags_in_the_batch() -> None:
    store = RecordingStore()

    def continued(logger: AsyncTrialLogger) -> None:
        logger.open("a", "0", "a", {"resumed_as": "b"}, {"lr": 0.1}, reuse_run_id="old-run")
        logger.log("a", {"loss": 1.0}, 3)
        logger.close("a", "FINISHED")

    logged(store, continued)
    assert [what for what, _, _ in store.calls] == ["reopen", "batch", "end"]
    assert store.calls[1][1] == "old-run" and store.calls[1][2]["tags"] == {"resumed_as": "b"}
