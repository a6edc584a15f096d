"""Per-trial review artifacts, rendered and uploaded by one low-priority process beside the driver.

When a trial ends with a checkpoint, the tracking callback hands its trainable, config and last
checkpoint to :class:`TrialReviews`; once the async logger has created the trial's MLflow run, a
:class:`ReviewJob` goes to the review worker: ONE process (``spawn``) at the lowest CPU priority
(``SCHED_IDLE``, see :func:`lowest_cpu_priority`) with one torch thread, which moreover holds its next
job while the trials on the driver's machine leave fewer than :func:`spare_cpus` free (a physical core; the
callback tells it, :meth:`TrialReviews.machine_busy`), and until they have left them free for
:data:`REVIEW_SETTLE_S` (a trial that ends is soon followed by the next one). Its warm-up (mlflow, torch,
matplotlib, torchinfo, the family's hook, a rehearsal: several CPU seconds, :func:`warm_up`) goes in steps that
each wait for the gate like a job; a search starts the worker before Ray (``trial_callback.early_reviews``) and
lets it go on until its first trial starts, so it warms up while Ray and the first trials start and the first job
costs what the others do (about a tenth of a CPU second); it reports the steps' CPU time (:class:`WorkerReady`) and
that of each job (:attr:`ReviewOutcome.cpu_s`). For a job it restores the trained model
(``trainables.loop.restore_task``, on the CPU), calls the family's review hook (``TrainableSpec.review``, see
``trainables.review``) into a temporary folder and uploads it as ``review/`` of the trial's run, through one MLflow
client kept across jobs. A job that fails is a tag on its run (``orchestrator.review_error``, one redacted line),
never a lost trial: nothing here raises into Ray Tune. The worker also logs a search's best model when asked
(:class:`ModelJob`: its torch and mlflow are warm, so the driver never imports torch for it).

At the end of a run the driver waits for the queue, bounded by ``orchestrator.settings.review_wait_s()``
(:data:`REVIEW_WAIT_S`, or ``$ORCHESTRATOR_REVIEW_WAIT_S``), saying what it waits for with a progress line each
time a job is done (at most one per :data:`PROGRESS_EVERY_S`); jobs still undone are tagged as skipped. torch,
matplotlib, torchinfo and mlflow are imported only inside the worker.
"""

from __future__ import annotations

import contextlib
import functools
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

PROGRESS_EVERY_S = 1.0  # while waiting at the end: a progress line when a job is done, at most this often
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


@dataclass(frozen=True)
class ModelJob:
    """Log and register the best model of the search ``parent_run_id`` (``models.register.log_best_model``) in the
    worker, whose torch and mlflow are warm; pickled to the worker process."""

    tracking_uri: str
    version: Any  # the search's ``StudyVersion``
    parent_run_id: str
    best: Any  # its best trial, a ``TrialOutcome``
    config: Mapping[str, Any]  # that trial's config and last checkpoint (a ``ray.tune.Checkpoint``)
    checkpoint: Any


@dataclass(frozen=True)
class ModelOutcome:
    """What came of a :class:`ModelJob`: the ``models.register.RegisteredModel``, or why there is none (``skipped``:
    the reason of a ``ModelSkipped``; ``error``: one line)."""

    model: Any = None
    skipped: str = ""
    error: str = ""
    cpu_s: float = 0.0


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


@functools.cache
def _client(tracking_uri: str) -> Any:
    """One MLflow client per store for the worker's life (a new one per job opened the store again)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def review_trial(job: ReviewJob) -> ReviewOutcome:
    """Render the trial's review files and upload them as ``review/`` of its run in one call; an error becomes the
    outcome."""
    started, cpu = time.time(), time.process_time()
    error = ""
    try:
        with tempfile.TemporaryDirectory(prefix="orchestrator-review-") as tmp, job.checkpoint.as_directory() as ckpt:
            render_artifacts(job.trainable, job.config, ckpt, Path(tmp))
            _client(job.tracking_uri).log_artifacts(job.run_id, tmp, REVIEW_ARTIFACT_DIR)
    except Exception as e:
        error = failure_line(e)
    return ReviewOutcome(job.trial_id, error, cpu_s=time.process_time() - cpu, started=started, ended=time.time())


def log_model(job: ModelJob) -> ModelOutcome:
    """Log and register the best model of a search (:class:`ModelJob`); what stops it is the outcome."""
    from orchestrator.models.register import ModelSkipped, log_best_model
    from orchestrator.tracking.mlflow_store import MlflowStore

    cpu = time.process_time()
    source = _ModelSource(dict(job.config), job.checkpoint)
    try:
        model = log_best_model(MlflowStore(job.tracking_uri), job.version, job.parent_run_id, job.best, source)
    except ModelSkipped as e:
        return ModelOutcome(skipped=str(e), cpu_s=time.process_time() - cpu)
    except Exception as e:
        return ModelOutcome(error=failure_line(e), cpu_s=time.process_time() - cpu)
    return ModelOutcome(model, cpu_s=time.process_time() - cpu)


@dataclass(frozen=True)
class _ModelSource:
    """What ``log_best_model`` reads of a Ray Tune result: the trial's config and checkpoint."""

    config: dict[str, Any]
    checkpoint: Any


def warm_up(trainable: str, tracking_uri: str, wait: Callable[[], Any] = lambda: None) -> WorkerReady:
    """Do once what would make the worker's first job cost several times what the others do (4 CPU seconds against
    a tenth of one in a demo search): the heavy imports and first uses, in :func:`warm_up_steps`, calling ``wait``
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
    into a scratch folder, which loads the fonts and builds an optimizer (the first one imports ``torch._dynamo``);
    a rehearsal of logging a model (``models.register.rehearse_logging``: the search's best model is logged here at
    its end, a fifth of the first one's cost after it)."""

    def open_store() -> None:
        _client(tracking_uri)

    def import_hook() -> None:
        import trainables

        _review_hook(trainable, trainables.get(trainable).tiny)

    def rehearse() -> None:
        import trainables
        from trainables.loop import prepare

        hook, config = _review_hook(trainable, trainables.get(trainable).tiny)
        with tempfile.TemporaryDirectory(prefix="orchestrator-review-warm-up-") as tmp:
            hook(*prepare(trainable, config), Path(tmp))

    def rehearse_model() -> None:
        from orchestrator.models.register import rehearse_logging

        with tempfile.TemporaryDirectory(prefix="orchestrator-review-warm-up-") as tmp:
            rehearse_logging(trainable, tmp)

    return [open_store, import_hook, rehearse, rehearse_model]


# The worker renders only while trials on the driver's machine leave a physical core free (:func:`spare_cpus`):
# even an idle-class process slows a trial on its core's sibling. Two CPUs where the machine does not say.
REVIEW_SPARE_CPUS = 2.0
# ... and only once they have left them free this long: a trial that ends is usually followed within a second or two
# by the next one (the searcher suggests, Ray Tune reuses the actor), and a render started in between runs into it.
REVIEW_SETTLE_S = 3.0
_SIBLINGS = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")


@functools.cache
def spare_cpus() -> float:
    """The CPUs of one physical core of this machine (its hardware threads): what trials must leave free for the worker
    to render beside them; :data:`REVIEW_SPARE_CPUS` where the machine does not say (not Linux)."""
    try:
        text = _SIBLINGS.read_text().strip()
    except OSError:
        return REVIEW_SPARE_CPUS
    count = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        count += int(high) - int(low) + 1 if high else 1
    return float(max(count, 1))


def lowest_cpu_priority() -> None:
    """Run this process only on CPU time nothing else wants: Linux's ``SCHED_IDLE`` class, else ``nice 19``.

    ``nice 19`` alone is not enough beside Ray's trial workers, which run at ``nice 15``: the kernel
    would still give this process about a third of a trial's share of a busy core."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        os.nice(19)


def end_priority() -> None:
    """The run's trials are over and the driver waits for this process: leave ``SCHED_IDLE`` for ``nice``
    :data:`END_NICE` where Linux lets it (root, ``CAP_SYS_NICE`` or a ``RLIMIT_NICE`` that allows it; else it stays
    idle-class), so that other work on the machine does not starve it while the driver, at nice 0, still comes
    first."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, 0, END_NICE)


END_NICE = 10  # the worker's priority once the run's trials are over (end_priority)


def _serve(trainable: str, tracking_uri: str, jobs: Any, outcomes: Any, may_work: Any, at_end: Any = None) -> None:
    """The worker's loop: lowest CPU priority, one torch thread, Ctrl-C left to the driver; its warm-up, then a job
    at a time until ``None``; each step of the warm-up and each job only while ``may_work`` is set (the driver
    clears it while trials fill this machine), at :func:`end_priority` once ``at_end`` is set. It ends without
    tearing down its imports (seconds of torch's and mlflow's finalisation that nobody waits for), once its last
    outcome is sent."""
    lowest_cpu_priority()
    os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported
    os.environ.setdefault("MPLBACKEND", "Agg")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C reaches the whole process group
    raised: list[bool] = []

    def gate() -> None:  # before each warm-up step and each job
        may_work.wait()
        if at_end is not None and at_end.is_set() and not raised:
            end_priority()
            raised.append(True)

    outcomes.put(warm_up(trainable, tracking_uri, gate))
    while (job := jobs.get()) is not None:
        gate()
        outcomes.put(log_model(job) if isinstance(job, ModelJob) else review_trial(job))
    outcomes.close()
    outcomes.join_thread()  # every outcome is in the pipe
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class ReviewWorker:
    """The one review process for jobs of ``trainable`` logged to ``tracking_uri`` (``spawn`` context, daemonic: it
    dies with the driver) and its two queues. It starts ``held`` (the default), its :func:`warm_up` included: a search
    that starts it before Ray lets it go on at once, so that it warms up while Ray and the first trials start, and
    holds it as soon as trials run (``bench.review_cost``: a warm-up step begun while trials ran took 2.5 CPU seconds
    from them). The driver lets it go on (:meth:`pause`) once trials leave enough of the machine free for a while, or
    at the search's end."""

    def __init__(self, trainable: str, tracking_uri: str, held: bool = True) -> None:
        context = multiprocessing.get_context("spawn")
        self._jobs = context.Queue()
        self._outcomes = context.Queue()
        self._may_work = context.Event()  # clear: held until the driver lets it go on
        self._at_end = context.Event()  # set: the run's trials are over (end_priority)
        if not held:
            self._may_work.set()
        args = (trainable, tracking_uri, self._jobs, self._outcomes, self._may_work, self._at_end)
        self._process = context.Process(target=_serve, args=args, name="orchestrator-review", daemon=True)
        self._process.start()
        self.trainable, self.tracking_uri = trainable, tracking_uri

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

    def trials_over(self) -> None:
        """The run's trials are over: the worker goes on at :func:`end_priority` from its next job."""
        self._at_end.set()
        self._may_work.set()

    def submit(self, job: ReviewJob | ModelJob) -> None:
        """Queue ``job`` (returns at once; a feeder thread pickles and sends it)."""
        self._jobs.put(job)

    def outcomes(self, timeout: float = 0.0) -> Iterator[ReviewOutcome | ModelOutcome | WorkerReady]:
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

    Every call returns at once except :meth:`finish` and :meth:`model`, the bounded waits at the end of a run. Tags
    go through the async logger while it runs (its retries and spill file), straight to the store after it stopped
    (the wait at the end comes after the trials' tracking is flushed). ``worker``: a review process started earlier
    for this trainable and store (``trial_callback.early_reviews``); else one is started here, held.
    """

    def __init__(self, trainable: str, tracking_uri: str, logger: AsyncTrialLogger, worker: ReviewWorker | None = None):
        self.trainable = trainable
        self.tracking_uri = tracking_uri
        self._logger = logger
        self._worker: ReviewWorker | None = worker
        if worker is None:
            try:
                self._worker = ReviewWorker(trainable, tracking_uri)
            except OSError as e:  # no process to spare: the search runs without review artifacts
                print(f"review artifacts: off, the review process did not start ({failure_line(e)})", file=sys.stderr)
        self._lock = threading.Lock()  # _waiting and _submitted change in the logger's thread too
        self._waiting: set[str] = set()  # ended trials whose run the logger has not created yet
        self._submitted: set[str] = set()  # handed to the worker, outcome not yet read
        self._runs: dict[str, str] = {}  # trial -> its run, for the tags sent after the logger stopped
        self._release: threading.Timer | None = None  # lets the worker go on once the machine stayed free
        self._released = False  # the run's trials are over: the worker goes on, whatever the machine does
        self._models: list[ModelOutcome] = []
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

    @property
    def working(self) -> bool:
        """Whether a review process is there to take jobs."""
        return self._worker is not None and self._worker.exit_code is None

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
                self._runs[trial_id] = run_id
                self._worker.submit(
                    ReviewJob(trial_id, self.trainable, dict(config), checkpoint, self.tracking_uri, run_id)
                )

        self._logger.when_run_exists(trial_id, submit)

    def machine_busy(self, busy: bool, settle_s: float = REVIEW_SETTLE_S) -> None:
        """Whether trials leave too little of the driver's machine free now (:func:`spare_cpus`): the worker holds its
        next job at once while they do, and goes on once they have not for ``settle_s`` seconds, so that it never
        slows a trial. After :meth:`release` it always goes on."""
        with self._lock:
            if self._worker is None:
                return
            if self._released:
                busy, settle_s = False, 0.0
            if not busy and settle_s > 0:
                if self._release is None and self._worker.held:  # free since now: the clock starts
                    timer = threading.Timer(settle_s, lambda: self._release_now(timer))
                    timer.daemon = True
                    self._release = timer
                    timer.start()
                return
            self._cancel_release()
            self._worker.pause(busy)

    def release(self) -> None:
        """The run's trials are over: the worker goes on from now to the end, its queue and the model (if asked), at
        the priority of the end (``end_priority``)."""
        with self._lock:
            self._released = True
            if self._worker is not None:
                self._worker.trials_over()
        self.machine_busy(False, settle_s=0)

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

    def ask_model(self, job: ModelJob) -> bool:
        """Have the worker log the best model (:class:`ModelJob`) after the jobs queued before it; False without a
        worker (the caller logs it itself). :meth:`model` waits for it."""
        if not self.working:
            return False
        self.release()  # first: the worker takes the job at the priority of the end
        with self._lock:
            if self._worker is None:
                return False
            self._worker.submit(job)
        return True

    def model(self, timeout: float) -> ModelOutcome:
        """The outcome of the model asked for (:meth:`ask_model`), waiting up to ``timeout`` seconds (with a line that
        says so when it is not there at once)."""
        deadline = time.monotonic() + timeout
        self.collect()
        if not self._models and self.working:
            queued = f" after {self.pending} trials' review artifacts" if self.pending else ""
            warming = ", once it has warmed up" if self.warm_up is None else ""
            print(f"review: the best model is being logged by the review process{queued}{warming}", file=sys.stderr)
        while not self._models and self.working and time.monotonic() < deadline:
            self.collect(timeout=min(0.5, max(deadline - time.monotonic(), 0.01)))
        if self._models:
            return self._models.pop(0)
        reason = "the review process stopped" if not self.working else f"not logged within {timeout:.0f}s"
        return ModelOutcome(error=reason)

    def collect(self, timeout: float = 0.0) -> None:
        """Read the outcomes ready now (waiting up to ``timeout`` for one); a failure becomes its run's tag."""
        if self._worker is None:
            return
        for outcome in self._worker.outcomes(timeout):
            if isinstance(outcome, WorkerReady):
                self.warm_up = outcome
                continue
            if isinstance(outcome, ModelOutcome):
                self._models.append(outcome)
                continue
            with self._lock:
                self._submitted.discard(outcome.trial_id)
            self.done += 1
            self.jobs.append((outcome.started, outcome.ended, outcome.cpu_s))
            if outcome.error:
                self._tag(outcome.trial_id, outcome.error)

    def _tag(self, trial_id: str, reason: str) -> None:
        """``REVIEW_ERROR`` on the trial's run: through the logger while it runs, else straight to the store."""
        if not self._logger.stopped:
            self._logger.log(trial_id, tags={REVIEW_ERROR: reason})
            return
        run_id = self._runs.get(trial_id)
        if run_id:
            with contextlib.suppress(Exception):  # the store does not answer: nothing more to do at the end
                from orchestrator.tracking.mlflow_store import MlflowStore

                MlflowStore(self.tracking_uri).log_batch(run_id, tags={REVIEW_ERROR: reason})

    def finish(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every job, saying what for, with a line each time jobs are done (at most
        one per ``PROGRESS_EVERY_S``); then stop."""
        started = time.monotonic()
        deadline = started + timeout
        self.release()  # no trial is left to slow
        self.collect()
        shown = -1
        next_line = started
        try:
            while self.pending and self.working:
                now = time.monotonic()
                if now >= deadline:
                    break
                if self.done != shown and now >= next_line:
                    print(self._progress(shown < 0), file=sys.stderr, flush=True)
                    shown, next_line = self.done, now + PROGRESS_EVERY_S
                self.collect(timeout=min(0.25, deadline - now))
            if shown >= 0:
                print(
                    f"review artifacts: {self.done} of {self.done + self.pending} trials "
                    f"({time.monotonic() - started:.1f}s at the end)",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            self.stop(f"not rendered within {timeout:.0f}s of the search's end")

    def _progress(self, first: bool) -> str:
        """The line that says how far the renders are, and on the first what the end waits for."""
        total = self.done + self.pending
        line = f"review artifacts: {self.done} of {total} trials"
        if not first:
            return line
        warming = "; the review process is still warming up" if self.warm_up is None else ""
        return f"{line}: waiting for the other {total - self.done} (rendered by a low-priority process{warming})"

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
            self._tag(trial_id, f"skipped: {reason}")
        if skipped or unlogged:
            without_run = f", {unlogged} more whose tracking run was never created" if unlogged else ""
            print(
                f"review artifacts: {len(skipped)} trial(s) skipped ({reason}){without_run}",
                file=sys.stderr,
                flush=True,
            )
