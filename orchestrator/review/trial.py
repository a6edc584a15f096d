"""Per-trial review artifacts, rendered and uploaded by one low-priority process beside the driver.

When a trial ends with a checkpoint, the tracking callback hands its trainable, config and last
checkpoint to :class:`TrialReviews`; once the async logger has created the trial's MLflow run, a
:class:`ReviewJob` goes to the review worker: ONE process (``spawn``) at the lowest CPU priority
(``SCHED_IDLE``, see :func:`lowest_cpu_priority`) with one torch thread, which moreover holds its next
job while the trials on the driver's machine leave fewer than :data:`REVIEW_SPARE_CPUS` free (the
callback tells it, :meth:`TrialReviews.machine_busy`). The worker restores the trained model
(``trainables.loop.restore_task``, on the CPU), calls the family's review hook
(``TrainableSpec.review``, see ``trainables.review``) into a temporary folder and uploads it as
``review/`` of the trial's run. A job that fails is a tag on its run (``orchestrator.review_error``, one
redacted line), never a lost trial: nothing here raises into Ray Tune.

At the end of a search the driver waits for the queue, bounded by ``review_wait_s()``
(:data:`REVIEW_WAIT_S`, or ``$ORCHESTRATOR_REVIEW_WAIT_S``), with a progress line every
:data:`PROGRESS_EVERY_S`; jobs still undone are tagged as skipped. torch, matplotlib, torchinfo
and mlflow are imported only inside the worker.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.tracking.async_logger import AsyncTrialLogger, wait_seconds
from orchestrator.tracking.mlflow_store import short_error
from orchestrator.tracking.schema import REVIEW_ARTIFACT_DIR, REVIEW_ERROR

REVIEW_WAIT_S = 300.0  # at the end of a search: how long to wait for review artifacts still being rendered
REVIEW_WAIT_ENV = "ORCHESTRATOR_REVIEW_WAIT_S"  # overrides REVIEW_WAIT_S (seconds, >= 0)
PROGRESS_EVERY_S = 10.0  # while waiting at the end: one progress line this often
WORKER_STOP_S = 5.0  # how long a stopping worker may take to finish before it is terminated
# The worker computes on one CPU thread: it never takes a trial's GPU or more than one core.
REVIEW_RUNTIME: Mapping[str, Any] = {"device": "cpu", "cpus": 1}


def review_wait_s() -> float:
    """Seconds to wait for review artifacts at the end of a search: ``$ORCHESTRATOR_REVIEW_WAIT_S`` or default."""
    return wait_seconds(REVIEW_WAIT_ENV, REVIEW_WAIT_S)


def has_review_hook(trainable: str) -> bool:
    """Whether ``trainable`` is registered with a review hook (no review process is started otherwise)."""
    import trainables
    from trainables.api import UnknownTrainable

    try:
        return bool(trainables.get(trainable).review)
    except UnknownTrainable:
        return False


@dataclass(frozen=True)
class ReviewJob:
    """What the worker needs to review one trial; pickled to the worker process."""

    trial_id: str
    trainable: str
    config: Mapping[str, Any]  # the trial's config, as the trainable received it
    checkpoint: Any  # the trial's last ``ray.tune.Checkpoint`` (fetched from any storage)
    tracking_uri: str
    run_id: str


@dataclass(frozen=True)
class ReviewOutcome:
    trial_id: str
    error: str = ""  # one redacted line; empty when the artifacts were uploaded


# --------------------------------------------------------------------------- the worker process


def render_artifacts(trainable: str, config: Mapping[str, Any], checkpoint_dir: str | Path, out: Path) -> list[Path]:
    """The family's review files for the model in the checkpoint folder, written into ``out``; their paths."""
    import trainables
    from trainables.api import load_object
    from trainables.loop import restore_task

    spec = trainables.get(trainable)
    runtime_keys = {key: value for key, value in REVIEW_RUNTIME.items() if key in spec.accepted}
    task, runtime, cfg = restore_task(trainable, {**config, **runtime_keys}, checkpoint_dir)
    return load_object(spec.review)(task, runtime, cfg, out)


def review_trial(job: ReviewJob) -> ReviewOutcome:
    """Render the trial's review files and upload them as ``review/`` of its run; an error becomes the outcome."""
    try:
        from mlflow.tracking import MlflowClient

        with tempfile.TemporaryDirectory(prefix="orchestrator-review-") as tmp, job.checkpoint.as_directory() as ckpt:
            render_artifacts(job.trainable, job.config, ckpt, Path(tmp))
            MlflowClient(job.tracking_uri).log_artifacts(job.run_id, tmp, REVIEW_ARTIFACT_DIR)
    except Exception as e:
        return ReviewOutcome(job.trial_id, error_line(e))
    return ReviewOutcome(job.trial_id)


def error_line(error: BaseException) -> str:
    """One line for a failed review, without credentials: the error's type and first line."""
    text = short_error(error)
    return type(error).__name__ if text == type(error).__name__ else f"{type(error).__name__}: {text}"


# The worker renders only while trials on the driver's machine leave this many CPUs free: a physical core
# (two hyperthreads), since even an idle-class process slows a trial on its core's sibling.
REVIEW_SPARE_CPUS = 2.0


def lowest_cpu_priority() -> None:
    """Run this process only on CPU time nothing else wants: Linux's ``SCHED_IDLE`` class, else ``nice 19``.

    ``nice 19`` alone is not enough beside Ray's trial workers, which run at ``nice 15``: the kernel
    would still give this process about a third of a trial's share of a busy core."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        os.nice(19)


def _serve(jobs: Any, outcomes: Any, may_work: Any) -> None:
    """The worker's loop: lowest CPU priority, one torch thread, Ctrl-C left to the driver; a job at a time
    until ``None``, each only while ``may_work`` is set (the driver clears it while trials fill this machine)."""
    lowest_cpu_priority()
    os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported
    os.environ.setdefault("MPLBACKEND", "Agg")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C reaches the whole process group
    may_work.wait()
    # Heavy imports at the first chance, rather than when the first job comes.
    import mlflow.tracking  # noqa: F401

    import trainables.review  # noqa: F401

    while (job := jobs.get()) is not None:
        may_work.wait()
        outcomes.put(review_trial(job))


class ReviewWorker:
    """The one review process (``spawn`` context, daemonic: it dies with the driver) and its two queues."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._jobs = context.Queue()
        self._outcomes = context.Queue()
        self._may_work = context.Event()
        self._process = context.Process(
            target=_serve, args=(self._jobs, self._outcomes, self._may_work), name="orchestrator-review", daemon=True
        )
        self._process.start()

    def pause(self, paused: bool) -> None:
        """Hold the worker before its next job (``True``) or let it go on (``False``); a job under way finishes."""
        if paused:
            self._may_work.clear()
        else:
            self._may_work.set()

    def submit(self, job: ReviewJob) -> None:
        """Queue ``job`` (returns at once; a feeder thread pickles and sends it)."""
        self._jobs.put(job)

    def outcomes(self, timeout: float = 0.0) -> Iterator[ReviewOutcome]:
        """The outcomes ready now, waiting up to ``timeout`` for the first one."""
        try:
            yield self._outcomes.get(timeout=timeout) if timeout > 0 else self._outcomes.get_nowait()
            while True:
                yield self._outcomes.get_nowait()
        except queue.Empty:
            return

    @property
    def exit_code(self) -> int | None:
        """None while the process runs."""
        return self._process.exitcode

    def stop(self, timeout: float = WORKER_STOP_S) -> None:
        """Ask the process to end after its current job; terminate it when it has not within ``timeout``."""
        if self._process.is_alive():
            self._may_work.set()
            self._jobs.put(None)
            self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(WORKER_STOP_S)
        for q in (self._jobs, self._outcomes):
            q.cancel_join_thread()  # never block the driver's exit on items nobody reads
            q.close()


# --------------------------------------------------------------------------- the driver's side


class TrialReviews:
    """The driver's side: a job per ended trial once its run exists, outcomes turned into tags on the runs.

    Every call returns at once except :meth:`finish`, the bounded wait at the end of a search. Tags go
    through the async logger, so they share its retries and spill file.
    """

    def __init__(self, trainable: str, tracking_uri: str, logger: AsyncTrialLogger):
        self.trainable = trainable
        self.tracking_uri = tracking_uri
        self._logger = logger
        self._worker: ReviewWorker | None = None
        try:
            self._worker = ReviewWorker()
        except OSError as e:  # no process to spare: the search runs without review artifacts
            print(f"review artifacts: off, the review process did not start ({error_line(e)})", file=sys.stderr)
        self._lock = threading.Lock()  # _waiting and _submitted change in the logger's thread too
        self._waiting: set[str] = set()  # ended trials whose run the logger has not created yet
        self._submitted: set[str] = set()  # handed to the worker, outcome not yet read
        self.done = 0  # outcomes read (artifacts uploaded or an error tagged)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._submitted)

    def add(self, trial_id: str, config: Mapping[str, Any], checkpoint: Any) -> None:
        """Review the ended trial ``trial_id`` from ``checkpoint`` as soon as its run exists."""
        with self._lock:
            if self._worker is None:
                return
            self._waiting.add(trial_id)

        def submit(run_id: str) -> None:  # in the logger's thread, or here when the run exists already
            with self._lock:
                if self._worker is None or trial_id not in self._waiting:
                    return  # stopped meanwhile
                self._waiting.discard(trial_id)
                self._submitted.add(trial_id)
                self._worker.submit(ReviewJob(trial_id, self.trainable, dict(config), checkpoint,
                                              self.tracking_uri, run_id))  # fmt: skip

        self._logger.when_run_exists(trial_id, submit)

    def machine_busy(self, busy: bool) -> None:
        """Whether trials leave too little of the driver's machine free now (``REVIEW_SPARE_CPUS``): the worker
        renders only while they do not, so that it never slows a trial."""
        with self._lock:
            if self._worker is not None:
                self._worker.pause(busy)

    def collect(self, timeout: float = 0.0) -> None:
        """Read the outcomes ready now (waiting up to ``timeout`` for one); a failure becomes its run's tag."""
        if self._worker is None:
            return
        for outcome in self._worker.outcomes(timeout):
            with self._lock:
                self._submitted.discard(outcome.trial_id)
            self.done += 1
            if outcome.error:
                self._logger.log(outcome.trial_id, tags={REVIEW_ERROR: outcome.error})

    def finish(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every job, a progress line every ``PROGRESS_EVERY_S``; then stop."""
        deadline = time.monotonic() + timeout
        next_line = time.monotonic()
        self.machine_busy(False)
        try:
            while self.pending and self._worker is not None and self._worker.exit_code is None:
                now = time.monotonic()
                if now >= deadline:
                    break
                if now >= next_line:
                    print(f"review artifacts: {self.done} of {self.done + self.pending} trials", file=sys.stderr,
                          flush=True)  # fmt: skip
                    next_line = now + PROGRESS_EVERY_S
                self.collect(timeout=min(0.5, deadline - now))
        finally:
            self.stop(f"not rendered within {timeout:.0f}s of the search's end")

    def stop(self, reason: str = "the search stopped first") -> None:
        """Stop the worker now (no wait for its queue); jobs not done are tagged ``skipped: <reason>``."""
        if self._worker is None:
            return
        self.collect()
        with self._lock:  # from here no job is submitted (the logger's thread checks _worker under the lock)
            worker, self._worker = self._worker, None
            skipped, unlogged = sorted(self._submitted), len(self._waiting)
            self._submitted.clear()
            self._waiting.clear()
        if worker.exit_code:
            reason = f"the review process stopped (exit code {worker.exit_code})"
        worker.stop(timeout=0 if skipped else WORKER_STOP_S)
        for trial_id in skipped:
            self._logger.log(trial_id, tags={REVIEW_ERROR: f"skipped: {reason}"})
        if skipped or unlogged:
            without_run = f", {unlogged} more whose tracking run was never created" if unlogged else ""
            print(f"review artifacts: {len(skipped)} trial(s) skipped ({reason}){without_run}", file=sys.stderr,
                  flush=True)  # fmt: skip
