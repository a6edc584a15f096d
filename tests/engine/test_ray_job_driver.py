"""The search as a Ray job's driver (its job id, SIGTERM as a graceful stop) and Ray's token settings, in-process."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from orchestrator.engine import ray_auth, ray_job

TOKEN = "f" * 64


@pytest.fixture(autouse=True)
def _no_stop_recorded() -> Iterator[None]:
    ray_job._stopped_by = None
    yield
    ray_job._stopped_by = None


def test_the_job_id_comes_from_the_environment_ray_sets_for_a_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ray_job.JOB_CONFIG_VAR, raising=False)
    assert ray_job.ray_job_id() is None
    config = {"runtime_env": {}, "metadata": {"job_submission_id": "demo-v1-x7k2p", "study": "demo"}}
    monkeypatch.setenv(ray_job.JOB_CONFIG_VAR, json.dumps(config))
    assert ray_job.ray_job_id() == "demo-v1-x7k2p"
    monkeypatch.setenv(ray_job.JOB_CONFIG_VAR, "{not json")
    assert ray_job.ray_job_id() is None


def test_sigterm_calls_what_ctrl_c_would_and_names_the_job_in_the_end_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ray_job.JOB_CONFIG_VAR, json.dumps({"metadata": {"job_submission_id": "demo-v1-x7k2p"}}))
    calls: list[int] = []

    def tune_like(signum: int, frame: FrameType | None) -> None:  # Ray Tune's handler: a graceful stop
        calls.append(signum)

    previous_int = signal.signal(signal.SIGINT, tune_like)
    before = signal.getsignal(signal.SIGTERM)
    try:
        with ray_job.stops_gracefully():
            os.kill(os.getpid(), signal.SIGTERM)
        assert calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous_int)
    assert signal.getsignal(signal.SIGTERM) is before, "the handler before the search is back"
    assert ray_job.stop_cause() == "stopped by Ray's job manager (Ray job demo-v1-x7k2p)"
    reason = ray_job.with_stop_cause("interrupted after 2 of 6 trials; continue with: orchestrator resume /x")
    assert reason == (
        "stopped by Ray's job manager (Ray job demo-v1-x7k2p); interrupted after 2 of 6 trials; "
        "continue with: orchestrator resume /x"
    )


def test_sigterm_outside_ray_tune_interrupts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ray_job.JOB_CONFIG_VAR, raising=False)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), ray_job.stops_gracefully():
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGINT, previous_int)
    assert ray_job.with_stop_cause("interrupted (Ctrl-C)") == "stopped (SIGTERM); interrupted (Ctrl-C)"


def test_the_token_source_follows_rays_order_and_messages_never_hold_the_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    both = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN, "RAY_AUTH_TOKEN_PATH": str(token_file)}
    assert ray_auth.token_source(both) == "RAY_AUTH_TOKEN"
    path_only = {"RAY_AUTH_MODE": "TOKEN", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    assert ray_auth.token_source(path_only) == f"RAY_AUTH_TOKEN_PATH ({token_file})"
    where = "Ray cluster at 'head:6379'"
    refused = str(ray_auth.refused_token(where, path_only))
    assert refused.startswith(f"{where} refused the token from RAY_AUTH_TOKEN_PATH ({token_file}): set RAY_AUTH_MODE")
    unset = str(ray_auth.missing_token(where, {"RAY_AUTH_TOKEN": TOKEN}))
    assert "requires token authentication and RAY_AUTH_MODE is not set: set RAY_AUTH_MODE=token" in unset
    disabled = str(ray_auth.refused_token(where, {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": TOKEN}))
    assert "RAY_AUTH_MODE is 'disabled'" in disabled
    for text in (refused, unset, disabled):
        assert TOKEN not in text and "\n" not in text
