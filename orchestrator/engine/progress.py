"""What the console shows of a running search: counts, best so far with its config, elapsed and ETA.

On a terminal it redraws one panel (rich); otherwise it prints one plain line per finished
trial, so CI logs and ``kubectl logs`` stay readable. A failed trial is one line either way: its id as the
tracking store knows it, the last line of its error, and the file that holds the whole traceback. Ray Tune's
own lines for the same events (a traceback per failed attempt, "Trials did not complete", and its hint to
``Tuner.restore``, which contradicts ``orchestrator resume``) are dropped (``quiet_ray_tune``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from orchestrator.console import live_view
from orchestrator.redaction import redact_config
from orchestrator.spaces import Metric

from .results import failure_reason, trial_identity, user_metrics

# Ray Tune's log records that our own lines replace: (logger, the message's start).
RAY_TUNE_NOISE = (
    ("ray.tune.execution.tune_controller", "Trial task failed for trial"),
    ("ray.tune.tune", "Trials did not complete"),
    ("ray.tune.tune", "Experiment has been interrupted"),
)


class _DropRecords(logging.Filter):
    def __init__(self, starts: tuple[str, ...]):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def quiet_ray_tune() -> None:
    """Drop Ray Tune's records in ``RAY_TUNE_NOISE`` (idempotent): the progress lines and the run's end say it."""
    by_logger: dict[str, tuple[str, ...]] = {}
    for name, start in RAY_TUNE_NOISE:
        by_logger[name] = (*by_logger.get(name, ()), start)
    for name, starts in by_logger.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropRecords) for f in logger.filters):
            logger.addFilter(_DropRecords(starts))


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class ProgressCallback(Callback):
    def __init__(
        self, metric: Metric, planned: int, params: list[str], live: bool | None = None, experiment_uri: str = ""
    ):
        self.metric = metric
        self.experiment_uri = experiment_uri  # where each trial's folder (and its error.txt) is kept
        self.planned = planned
        self.params = params
        self.live = live_view(live)
        self.done = self.failed = 0
        self.running: set[str] = set()
        self.best: tuple[float, str, dict[str, Any]] | None = None
        self._last: dict[str, float] = {}
        self._start = time.monotonic()
        self._display: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_display"] = None
        return state

    def setup(self, **info: Any) -> None:
        self._start = time.monotonic()
        if self.live:
            from rich.live import Live

            self._display = Live(self._render(), refresh_per_second=2, transient=False)
            self._display.start()

    # ------------------------------------------------------------------ events

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self._refresh()

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        value = user_metrics(result).get(self.metric.name)
        if value is not None:
            self._last[trial.trial_id] = value
            if self.best is None or self.metric.better(value, self.best[0]):
                values = redact_config({k: trial.config[k] for k in self.params if k in trial.config})
                self.best = (value, trial_identity(trial.trial_id, trial.config), values)
        self._refresh()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.done += 1
        self._line(trial, "done")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.failed += 1
        self._line(trial, "FAILED")

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        if self._display is not None:
            self._display.update(self._render())
            self._display.stop()
            self._display = None

    # ------------------------------------------------------------------ output

    def status(self) -> str:
        elapsed = time.monotonic() - self._start
        finished = self.done + self.failed
        eta = elapsed / finished * max(self.planned - finished, 0) if finished else None
        best = f"{self.metric.name}={self.best[0]:.5g} (trial {self.best[1]})" if self.best else "-"
        return (
            f"[{finished}/{self.planned}] done {self.done}, running {len(self.running)}, failed {self.failed} | "
            f"best {best} | elapsed {_clock(elapsed)}, eta {_clock(eta) if eta is not None else '?'}"
        )

    def _line(self, trial: Any, what: str) -> None:
        identity = trial_identity(trial.trial_id, trial.config)
        if what == "FAILED":  # on a terminal too: why it failed stays readable after the panel moves on
            shown = failure_reason(trial) + (f" (traceback: {where})" if (where := self._traceback(trial)) else "")
            self._print(f"trial {identity} FAILED: {shown} | {self.status()}")
            return
        if self._display is not None:
            self._refresh()
            return
        value = self._last.get(trial.trial_id)
        shown = f"{self.metric.name}={value:.5g}" if value is not None else "no result"
        self._print(f"trial {identity} {what}: {shown} | {self.status()}")

    def _traceback(self, trial: Any) -> str | None:
        """Where the trial's whole traceback is kept: its folder in the experiment folder (Ray Tune copies the
        file there from its staging folder), else the staging folder's copy."""
        error_file = getattr(trial, "error_file", None)
        if not error_file:
            return None
        folder = getattr(trial, "path", None)
        if self.experiment_uri and folder:
            return f"{self.experiment_uri}/{Path(folder).name}/{Path(error_file).name}"
        return str(error_file)

    def _print(self, line: str) -> None:
        if self._display is not None:
            self._display.console.print(line, markup=False, highlight=False)
        else:
            print(line, flush=True)

    def _refresh(self) -> None:
        if self._display is not None:
            self._display.update(self._render())

    def _render(self) -> Any:
        from rich.panel import Panel
        from rich.text import Text

        text = Text(self.status())
        if self.best:
            text.append("\nbest config: " + json.dumps(self.best[2], sort_keys=True, default=str))
        return Panel(text, title="search", expand=False)
