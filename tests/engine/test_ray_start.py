"""Ray starts in a thread while the driver gets ready (``ray_session.starting_ray``), and goes once trials end."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from orchestrator.engine import ray_session
from orchestrator.engine.ray_session import RayStart, shut_down_ray_soon, starting_ray
from orchestrator.errors import OrchestratorError


class FakeRay:
    """``_init`` and ``ray.shutdown`` stand-ins: what was called, in which thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, error: Exception | None = None, init_s: float = 0.0):
        import ray

        self.calls: list[tuple[str, str]] = []
        self.error, self.init_s = error, init_s
        monkeypatch.setattr(ray, "is_initialized", lambda: False)
        monkeypatch.setattr(ray, "shutdown", lambda: self.calls.append(("shutdown", threading.current_thread().name)))
        monkeypatch.setattr(ray_session, "_init", self._init)

    def _init(self, address: str | None) -> None:
        time.sleep(self.init_s)
        self.calls.append(("init", threading.current_thread().name))
        if self.error is not None:
            raise self.error


def test_ray_starts_in_a_thread_while_the_block_runs_and_stops_at_its_end(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRay(monkeypatch, init_s=0.3)
    began = time.perf_counter()
    with starting_ray(None) as start:
        assert time.perf_counter() - began < 0.2, "the block runs while Ray starts"
        assert fake.calls == []
        start.wait()
        assert fake.calls == [("init", "orchestrator-ray-start")] and start.seconds >= 0.3
        assert start._thread is not None and start._thread.is_alive(), "the thread that started Ray outlives the start"
    assert [what for what, _ in fake.calls] == ["init", "shutdown"]
    assert start._thread is not None and not start._thread.is_alive()


def test_an_error_of_the_start_is_raised_where_the_driver_waits_and_nothing_is_shut_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeRay(monkeypatch, error=OrchestratorError("could not connect to a local Ray: boom"))
    with pytest.raises(OrchestratorError, match="could not connect to a local Ray: boom"), starting_ray(None) as start:
        start.wait()
    assert [what for what, _ in fake.calls] == ["init"]


def test_a_block_that_fails_before_waiting_still_waits_for_the_start_then_shuts_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeRay(monkeypatch, init_s=0.2)
    with pytest.raises(ValueError, match="store"), starting_ray(None):
        raise ValueError("the store does not answer")
    assert [what for what, _ in fake.calls] == ["init", "shutdown"]


def test_once_the_trials_are_over_ray_shuts_down_in_a_thread_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRay(monkeypatch)
    shut_down_ray_soon()  # no run: nothing
    with starting_ray(None) as start:
        start.wait()
        shut_down_ray_soon()
        shut_down_ray_soon()
    assert fake.calls == [("init", "orchestrator-ray-start"), ("shutdown", "orchestrator-ray-shutdown")]


def test_a_ray_initialised_already_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    calls: list[Any] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    monkeypatch.setattr(ray_session, "_init", lambda address: calls.append("init"))
    start = RayStart(None).start()
    start.wait()
    start.shut_down_soon()
    start.stop()
    assert calls == [] and not start.started


@pytest.mark.slow
def test_a_local_ray_started_in_a_thread_keeps_its_processes_until_it_is_shut_down() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()

    @ray.remote
    def answer() -> int:
        return 42

    with starting_ray(None) as start:
        start.wait()
        time.sleep(2)  # Ray's processes die with the thread that started them: this one must still be there
        assert ray.get(answer.remote(), timeout=120) == 42
    assert not ray.is_initialized()
