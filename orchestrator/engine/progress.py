"""A live view of a running search: counts, best so far with its config, elapsed and ETA.

On a terminal it redraws one panel (rich); otherwise it prints one plain line per finished
trial, so CI logs and ``kubectl logs`` stay readable.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ray.tune import Callback

from orchestrator.console import live_view
from orchestrator.redaction import redact_config
from orchestrator.spaces import Metric

from .results import user_metrics


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class ProgressCallback(Callback):
    def __init__(self, metric: Metric, planned: int, params: list[str], live: bool | None = None):
        self.metric = metric
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
                self.best = (value, trial.trial_id, values)
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
        if self._display is not None:
            self._refresh()
            return
        value = self._last.get(trial.trial_id)
        shown = f"{self.metric.name}={value:.5g}" if value is not None else "no result"
        print(f"trial {trial.trial_id} {what}: {shown} | {self.status()}", flush=True)

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
