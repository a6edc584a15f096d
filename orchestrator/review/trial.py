"""Per-trial review artifacts, rendered and uploaded by one low-priority process beside the driver.

When a trial ends with a checkpoint, the tracking callback hands its trainable, config and last
checkpoint to :class:`TrialReviews`; once the async logger has created the trial's MLflow run, a
:class:`ReviewJob` goes to the review worker: ONE process (``spawn``) at the lowest CPU priority
(``SCHED_IDLE``, see :func:`lowest_cpu_priority`) with one torch thread, which moreover holds its next
job while the trials on the driver's machine leave fewer than :data:`REVIEW_SPARE_CPUS` free (the
callback tells it, :meth:`TrialReviews.machine_busy`), and until they have left them free for
:data:`REVIEW_SETTLE_S` (a trial that ends is soon followed by the next one). It starts held; its warm-
up (mlflow, torch, matplotlib, torchinfo, the family's hook, a rehearsal: about 7 CPU seconds,
:func:`warm_up`) goes in steps that each wait for the gate like a job, so a search on one machine
renders everything at its end, the first job costing what the others do (0.2-0.3 CPU seconds); it
reports their CPU time (:class:`WorkerReady`) and that of each job (:attr:`ReviewOutcome.cpu_s`). For a
job it restores the trained model (``trainables.loop.restore_task``, on the CPU), calls the family's
review hook (``TrainableSpec.review``, see ``trainables.review``) into a temporary folder and uploads it
as ``review/`` of the trial's run. A job that fails is a tag on its run (``orchestrator.review_error``,
one redacted line), never a lost trial: nothing here raises into Ray Tune.

At the end of a search the driver waits for the queue, bounded by ``orchestrator.settings.review_wait_s()``
(:data:`REVIEW_WAIT_S`, or ``$ORCHESTRATOR_REVIEW_WAIT_S``), with a progress line every
:data:`PROGRESS_EVERY_S`; jobs still undone are tagged as skipped. torch, matplotlib, torchinfo
and mlflow are imported only inside the worker.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import failure_line
from orchestrator.tracking.async_logger import AsyncTrialLogger
from orchestrator.tracking.schema import REVIEW_ARTIFACT_DIR, REVIEW_ERROR

PROGRESS_EVERY_S = 10.0  # while waiting at the end: one progress line this often
WORKER_STOP_S = 5.0  # how long a stopping worker may take to finish before it is terminated
# The worker computes on one CPU thread: it never takes a trial's GPU or more than one core.
REVIEW_RUNTIME: Mapping[str, Any] = {"device": "cpu", "cpus": 1}


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
    cpu_s: float = 0.0  # CPU seconds the worker spent on the job (restore, render, upload)
    started: float = 0.0  # when the job began and ended, ``time.time()`` (for a benchmark to set beside the trials)
    ended: float = 0.0


# What the worker did when: (start, end) as ``time.time()``, and the CPU seconds it spent in between.
Activity = tuple[float, float, float]


@dataclass(frozen=True)
class WorkerReady:
    """The worker's first message: its heavy imports are done, in ``cpu_s`` CPU seconds (``wall_s`` of wall time),
    step by step in ``steps``."""

    cpu_s: float
    wall_s: float
    steps: tuple[Activity, ...] = ()


# --------------------------------------------------------------------------- the worker process


def render_artifacts(trainable: str, config: Mapping[str, Any], checkpoint_dir: str | Path, out: Path) -> list[Path]:
    """The family's review files for the model in the checkpoint folder, written into ``out``; their paths."""
    from trainables.loop import restore_task

    hook, config = _review_hook(trainable, config)
    task, runtime, cfg = restore_task(trainable, config, checkpoint_dir)
    return hook(task, runtime, cfg, out)


def _review_hook(trainable: str, config: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The family's review hook and ``config`` with the worker's runtime (:data:`REVIEW_RUNTIME`) where accepted."""
    import trainables
    from trainables.api import load_object

    spec = trainables.get(trainable)
    runtime_keys = {key: value for key, value in REVIEW_RUNTIME.items() if key in spec.accepted}
    return load_object(spec.review), {**config, **runtime_keys}


def review_trial(job: ReviewJob) -> ReviewOutcome:
    """Render the trial's review files and upload them as ``review/`` of its run; an error becomes the outcome."""
    started, cpu = time.time(), time.process_time()
    error = ""
    try:
        from mlflow.tracking import MlflowClient

        with tempfile.TemporaryDirectory(prefix="orchestrator-review-") as tmp, job.checkpoint.as_directory() as ckpt:
            render_artifacts(job.trainable, job.config, ckpt, Path(tmp))
            MlflowClient(job.tracking_uri).log_artifacts(job.run_id, tmp, REVIEW_ARTIFACT_DIR)
    except Exception as e:
        error = failure_line(e)
    return ReviewOutcome(job.trial_id, error, cpu_s=time.process_time() - cpu, started=started, ended=time.time())


def warm_up(trainable: str, tracking_uri: str, wait: Callable[[], Any] = lambda: None) -> WorkerReady:
    """Do once what would make the worker's first job cost several times what the others do (4 CPU seconds against
    half a second in a demo search): the heavy imports and first uses, in :func:`warm_up_steps`, calling ``wait``
    before each (the worker waits for its gate, so that a step runs only while no trial does). A step that fails
    here is left to the jobs to report. ``WorkerReady.wall_s`` counts the waits too."""
    cpu, wall = time.process_time(), time.perf_counter()
    steps: list[Activity] = []
    for step in warm_up_steps(trainable, tracking_uri):
        wait()
        started, step_cpu = time.time(), time.process_time()
        with contextlib.suppress(Exception):
            step()
        steps.append((started, time.time(), time.process_time() - step_cpu))
    return WorkerReady(time.process_time() - cpu, time.perf_counter() - wall, tuple(steps))


def warm_up_steps(trainable: str, tracking_uri: str) -> list[Callable[[], Any]]:
    """The warm-up in steps of one to three CPU seconds each: mlflow's client and its store for ``tracking_uri``
    (an SQLite store imports SQLAlchemy); the family's review hook (torch, matplotlib, torchinfo); a rehearsal of
    a job without a checkpoint or an upload, the hook on the family's untrained tiny variant (``TrainableSpec.tiny``)
    into a scratch folder, which loads the fonts and builds an optimizer (the first one imports ``torch._dynamo``)."""

    def open_store() -> None:
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri)

    def import_hook() -> None:
        import trainables

        _review_hook(trainable, trainables.get(trainable).tiny)

    def rehearse() -> None:
        import trainables
        from trainables.loop import prepare

        hook, config = _review_hook(trainable, trainables.get(trainable).tiny)
        with tempfile.TemporaryDirectory(prefix="orchestrator-review-warm-up-") as tmp:
            hook(*prepare(trainable, config), Path(tmp))

    return [open_store, import_hook, rehearse]


# The worker renders only while trials on the driver's machine leave this many CPUs free: a physical core
# (two hyperthreads), since even an idle-class process slows a trial on its core's sibling.
REVIEW_SPARE_CPUS = 2.0
# ... and only once they have left them free this long: a trial that ends is usually followed within a second or two
# by the next one (the searcher suggests, Ray Tune reuses the actor), and a render started in between runs into it.
REVIEW_SETTLE_S = 3.0


def lowest_cpu_priority() -> None:
    """Run this process only on CPU time nothing else wants: Linux's ``SCHED_IDLE`` class, else ``nice 19``.

    ``nice 19`` alone is not enough beside Ray's trial workers, which run at ``nice 15``: the kernel
    would still give this process about a third of a trial's share of a busy core."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        os.nice(19)


def _serve(trainable: str, tracking_uri: str, jobs: Any, outcomes: Any, may_work: Any) -> None:
    """The worker's loop: lowest CPU priority, one torch thread, Ctrl-C left to the driver; its warm-up, then a job
    at a time until ``None``; each step of the warm-up and each job only while ``may_work`` is set (the driver
    clears it while trials fill this machine)."""
    lowest_cpu_priority()
    os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported
    os.environ.setdefault("MPLBACKEND", "Agg")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C reaches the whole process group
    outcomes.put(warm_up(trainable, tracking_uri, may_work.wait))
    while (job := jobs.get()) is not None:
        may_work.wait()
        outcomes.put(review_trial(job))


class ReviewWorker:
    """The one review process for jobs of ``trainable`` logged to ``tracking_uri`` (``spawn`` context, daemonic: it
    dies with the driver) and its two queues. It starts held, its :func:`warm_up` included: the search's start is no
    quiet time (Ray, the driver and the first trials start then), and a warm-up step begun then ran on into the first
    trials (``bench.review_cost``: 2.5 CPU seconds of the worker's per search while trials ran). The driver lets it
    go on (:meth:`pause`) once trials leave enough of the machine free for a while, or at the search's end."""

    def __init__(self, trainable: str, tracking_uri: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._jobs = context.Queue()
        self._outcomes = context.Queue()
        self._may_work = context.Event()  # clear: held until the driver lets it go on
        args = (trainable, tracking_uri, self._jobs, self._outcomes, self._may_work)
        self._process = context.Process(target=_serve, args=args, name="orchestrator-review", daemon=True)
        self._process.start()

    def pause(self, paused: bool) -> None:
        """Hold the worker before its next job (``True``) or let it go on (``False``); a job under way finishes."""
        if paused:
            self._may_work.clear()
        else:
            self._may_work.set()

    @property
    def held(self) -> bool:
        """Whether the worker holds its next job (:meth:`pause`)."""
        return not self._may_work.is_set()

    def submit(self, job: ReviewJob) -> None:
        """Queue ``job`` (returns at once; a feeder thread pickles and sends it)."""
        self._jobs.put(job)

    def outcomes(self, timeout: float = 0.0) -> Iterator[ReviewOutcome | WorkerReady]:
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
            self._worker = ReviewWorker(trainable, tracking_uri)
        except OSError as e:  # no process to spare: the search runs without review artifacts
            print(f"review artifacts: off, the review process did not start ({failure_line(e)})", file=sys.stderr)
        self._lock = threading.Lock()  # _waiting and _submitted change in the logger's thread too
        self._waiting: set[str] = set()  # ended trials whose run the logger has not created yet
        self._submitted: set[str] = set()  # handed to the worker, outcome not yet read
        self._release: threading.Timer | None = None  # lets the worker go on once the machine stayed free
        self.done = 0  # outcomes read (artifacts uploaded or an error tagged)
        self.warm_up: WorkerReady | None = None  # the worker's imports, once it has done them
        self.jobs: list[Activity] = []  # each job the worker did, in the order the outcomes came

    @property
    def job_cpu_s(self) -> list[float]:
        """The worker's CPU seconds per job, in the order the outcomes came."""
        return [cpu_s for _, _, cpu_s in self.jobs]

    @property
    def activity(self) -> list[Activity]:
        """What the worker did when: its warm-up steps (once it has reported them), then its jobs."""
        return [*(self.warm_up.steps if self.warm_up is not None else ()), *self.jobs]

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
                self._worker.submit(
                    ReviewJob(trial_id, self.trainable, dict(config), checkpoint, self.tracking_uri, run_id)
                )

        self._logger.when_run_exists(trial_id, submit)

    def machine_busy(self, busy: bool, settle_s: float = REVIEW_SETTLE_S) -> None:
        """Whether trials leave too little of the driver's machine free now (``REVIEW_SPARE_CPUS``): the worker
        holds its next job at once while they do, and goes on once they have not for ``settle_s`` seconds, so
        that it never slows a trial."""
        with self._lock:
            if self._worker is None:
                return
            if not busy and settle_s > 0:
                if self._release is None and self._worker.held:  # free since now: the clock starts
                    timer = threading.Timer(settle_s, lambda: self._release_now(timer))
                    timer.daemon = True
                    self._release = timer
                    timer.start()
                return
            self._cancel_release()
            self._worker.pause(busy)

    def _cancel_release(self) -> None:
        """Forget a pending release (under the lock)."""
        if self._release is not None:
            self._release.cancel()
            self._release = None

    def _release_now(self, timer: threading.Timer) -> None:
        """``timer``'s settle time passed with the machine free (in its thread): the worker goes on, unless a later
        call replaced or cancelled the timer meanwhile."""
        with self._lock:
            if self._worker is not None and self._release is timer:
                self._release = None
                self._worker.pause(False)

    def collect(self, timeout: float = 0.0) -> None:
        """Read the outcomes ready now (waiting up to ``timeout`` for one); a failure becomes its run's tag."""
        if self._worker is None:
            return
        for outcome in self._worker.outcomes(timeout):
            if isinstance(outcome, WorkerReady):
                self.warm_up = outcome
                continue
            with self._lock:
                self._submitted.discard(outcome.trial_id)
            self.done += 1
            self.jobs.append((outcome.started, outcome.ended, outcome.cpu_s))
            if outcome.error:
                self._logger.log(outcome.trial_id, tags={REVIEW_ERROR: outcome.error})

    def finish(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every job, a progress line every ``PROGRESS_EVERY_S``; then stop."""
        deadline = time.monotonic() + timeout
        next_line = time.monotonic()
        self.machine_busy(False, settle_s=0)  # no trial is left to slow
        try:
            while self.pending and self._worker is not None and self._worker.exit_code is None:
                now = time.monotonic()
                if now >= deadline:
                    break
                if now >= next_line:
                    print(
                        f"review artifacts: {self.done} of {self.done + self.pending} trials",
                        file=sys.stderr,
                        flush=True,
                    )
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
            self._cancel_release()
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
            print(
                f"review artifacts: {len(skipped)} trial(s) skipped ({reason}){without_run}",
                file=sys.stderr,
                flush=True,
            )
