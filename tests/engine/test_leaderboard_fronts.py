"""A search's leaderboard with several objectives or constraints (``engine.leaderboard``): by front then crowding,
infeasible and failed trials last, the knee as the best; hand-made trials, no Ray."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest

from orchestrator.engine import pareto
from orchestrator.engine.leaderboard import (
    CONSOLE_FRONT,
    FAILED_TRIAL,
    Leaderboard,
    TrialOutcome,
    _judged,
    front_aware,
    outcomes_from_grid,
    outcomes_from_rows,
)
from orchestrator.redaction import REDACTED
from orchestrator.spaces import Metric, parse_version
from orchestrator.spaces.version import Constraint
from orchestrator.tracking.mlflow_store import TrialRow

ACC, PARAMS = Metric("acc", "max"), Metric("params", "min")
SMALL = Constraint("params", max=100.0)

# (acc, params): a front of three (t1, t2, t3), two dominated (t4, t5), one that dominates every other but breaks
# the constraint (t6), one that failed with the best values (t7)
TRIALS = {
    "t1": (0.90, 80.0),
    "t2": (0.80, 20.0),
    "t3": (0.70, 5.0),
    "t4": (0.75, 30.0),
    "t5": (0.60, 90.0),
    "t6": (0.99, 101.0),
    "t7": (0.99, 1.0),
}


def outcome(trial_id: str, acc: float, params: float, status: str = "FINISHED", **config: Any) -> TrialOutcome:
    row = TrialOutcome(trial_id, acc, 3, status, {"x": acc, **config}, run_id=f"run-{trial_id}", values=(acc, params))
    return _judged(row, (SMALL,), {"params": params})


def board(trials: dict[str, tuple[float, float]] = TRIALS) -> Leaderboard:
    rows = [outcome(t, a, p, "FAILED" if t == "t7" else "FINISHED") for t, (a, p) in trials.items()]
    return Leaderboard.by_front((ACC, PARAMS), (SMALL,), rows)


def test_rows_by_front_then_crowding_infeasible_and_failed_last() -> None:
    b = board()
    order = [r.trial_id for r in b.rows]
    assert order[:3] == ["t1", "t3", "t2"]  # the front: its ends (infinite crowding) first, then the middle
    assert order[3:] == ["t4", "t5", "t6", "t7"]  # t4 dominates t5; then the slighter breach first
    assert list(b.fronts) == [0, 0, 0, 1, 2, 3, 4]
    assert [r.feasible for r in b.rows] == [True] * 5 + [False, False]
    assert b.rows[-1].broken == (FAILED_TRIAL,) and b.rows[-2].broken == ("params <= 100",)
    # the same order as the one rule in engine.pareto, applied to the losses
    points = [(-a, p) for a, p in TRIALS.values()]
    violations = [0, 0, 0, 0, 0, 0.01, math.inf]  # in units of the bound broken (StudyVersion.violation)
    assert order == [list(TRIALS)[i] for i in pareto.order(points, violations)]


def test_the_best_is_the_knee_of_the_feasible_front_never_an_infeasible_or_failed_trial() -> None:
    b = board()
    assert [r.trial_id for r in b.front()] == ["t1", "t3", "t2"]
    assert b.best is not None and b.best.trial_id == "t2"  # the balanced trade-off
    front = [TRIALS[t] for t in ("t1", "t2", "t3")]
    assert ["t1", "t2", "t3"][pareto.knee([(-a, p) for a, p in front])] == "t2"
    assert b.front_of("t6") is not None and b.front_of("t6") > max(b.front_of(t) or 0 for t in ("t4", "t5"))
    nothing_feasible = board({"t6": (0.99, 101.0), "t8": (0.5, 150.0)})
    assert nothing_feasible.best is None and nothing_feasible.front() == []
    assert "no trial meets the constraints" in nothing_feasible.text()


def test_one_metric_with_constraints_is_feasible_first_and_single_objective_boards_are_unchanged() -> None:
    loss = Metric("loss", "min")
    rows = [
        _judged(TrialOutcome("a", 0.1, 1, "FINISHED", {}), (Constraint("ms", max=5.0),), {"ms": 9.0}),
        _judged(TrialOutcome("b", 0.3, 1, "FINISHED", {}), (Constraint("ms", max=5.0),), {"ms": 4.0}),
        _judged(TrialOutcome("c", 0.2, 1, "FINISHED", {}), (Constraint("ms", max=5.0),), {"ms": 1.0}),
    ]
    b = Leaderboard.by_front((loss,), (Constraint("ms", max=5.0),), rows)
    assert [r.trial_id for r in b.rows] == ["c", "b", "a"] and b.best is not None and b.best.trial_id == "c"
    plain = Leaderboard.rank(loss, [replace(r, violation=0.0, broken=()) for r in rows])
    assert [r.trial_id for r in plain.rows] == ["a", "c", "b"] and plain.fronts == () and plain.best is plain.rows[0]


def test_text_shows_the_front_with_the_knee_marked_and_redacts() -> None:
    b = board({**TRIALS, "t1": (0.90, 80.0)})
    b = Leaderboard.by_front(
        (ACC, PARAMS), (SMALL,), [replace(r, config={**r.config, "api_key": "s3cret"}) for r in b.rows]
    )
    text = b.text()
    lines = text.splitlines()
    assert lines[0].startswith("Pareto front: 3 of 7 trials by acc (max), params (min) under params <= 100")
    assert len(lines) == 4 and sum(line.startswith(" * ") for line in lines) == 1
    assert "acc 0.8, params 20" in next(line for line in lines if line.startswith(" * "))
    assert "s3cret" not in text and REDACTED in text


def test_console_shows_at_most_a_screen_of_the_front() -> None:
    many = {f"m{i}": (i / 100, float(i)) for i in range(1, CONSOLE_FRONT + 6)}  # every one on the front
    text = board(many).text()
    assert "... 5 more on the front" in text
    assert len(text.splitlines()) == CONSOLE_FRONT + 2


def test_markdown_and_table_carry_every_objective_the_front_and_links() -> None:
    b = board().linked(lambda run_id: f"http://ui/#/runs/{run_id}")
    markdown = b.markdown("study v1")
    assert "| rank | front | trial | run | acc | params | feasible | epoch | status | config |" in markdown
    assert "[`run-t2`](http://ui/#/runs/run-t2)" in markdown and "`t2` *" in markdown
    assert "no: params <= 100" in markdown and f"no: {FAILED_TRIAL}" in markdown
    table = b.table().to_pylist()
    assert [row["trial_id"] for row in table] == [r.trial_id for r in b.rows]
    assert [row["front"] for row in table] == list(b.fronts)
    assert table[0]["objective.acc"] == 0.90 and table[0]["objective.params"] == 80.0
    assert [row["feasible"] for row in table][-2:] == [False, False]
    assert json.loads(table[0]["config"]) == {"x": 0.9}


V1 = """\
study: pieces
version: 1
trainable: analytic
objectives: [{name: loss, mode: min}, {name: epoch, mode: max}]
constraints: {loss: {max: 5.0}}
fixed: {function: quadratic}
params:
  x: {uniform: [-1.0, 1.0]}
"""


class Result:
    """What the leaderboard reads of a Ray Tune ``Result``."""

    def __init__(self, trial_id: str, losses: list[float], error: bool = False) -> None:
        self.metrics_dataframe = pd.DataFrame({"loss": losses, "epoch": list(range(1, len(losses) + 1))})
        self.metrics = {"trial_id": trial_id, "epoch": len(losses), "timestamp": 10}
        self.config = {"x": 0.5, "function": "quadratic"}
        self.error = "boom" if error else None


def test_a_trials_point_is_its_last_report_and_nan_is_no_point() -> None:
    version = parse_version(V1, "pieces/v1.yaml")
    assert front_aware(version)
    grid = [
        Result("a", [3.0, 1.0, 2.0]),  # the last report: loss 2 at epoch 3, not its best epoch
        Result("b", [9.0, 8.0]),  # breaks loss <= 5
        Result("c", [float("nan")]),  # never a finite loss: no point
        Result("d", [0.5], error=True),
    ]
    outcomes = {o.trial_id: o for o in outcomes_from_grid(grid, version)}
    assert set(outcomes) == {"a", "b", "d"}
    assert outcomes["a"].point == (2.0, 3.0) and outcomes["a"].feasible and outcomes["a"].config == {"x": 0.5}
    assert outcomes["b"].violation == pytest.approx(3.0 / 5.0) and outcomes["b"].broken == ("loss <= 5",)
    assert not outcomes["d"].feasible and outcomes["d"].status == "FAILED"
    b = Leaderboard.from_grid(grid, version)
    assert b.best is not None and b.best.trial_id == "a"


def test_rows_of_the_store_and_earlier_drivers_join_the_searchs_front() -> None:
    version = parse_version(V1, "pieces/v1.yaml")

    def row(i: int, loss: float, epoch: float, status: str = "FINISHED") -> TrialRow:
        metrics = {"loss": loss, "epoch": epoch, "best_loss": loss - 1}
        return TrialRow(f"r{i}", "pieces", 1, "h", f"e{i}", status, {"x": i / 10}, metrics, 0, 1, "p")

    earlier = [row(1, 0.1, 4.0), row(2, 0.2, 2.0), row(3, float("nan"), 9.0)]
    outcomes = outcomes_from_rows(earlier, version.goals, version.constraints)
    assert [(o.trial_id, o.point, o.run_id) for o in outcomes] == [("e1", (0.1, 4.0), "r1"), ("e2", (0.2, 2.0), "r2")]
    single = outcomes_from_rows(earlier, (Metric("loss", "min"),))
    assert [o.value for o in single[:2]] == [0.1 - 1, 0.2 - 1]  # one metric: its best epoch (TrialRow.score)
    b = Leaderboard.of_search([Result("a", [3.0, 1.0, 2.0])], version, earlier)
    assert {r.trial_id for r in b.rows} == {"a", "e1", "e2"} and b.best is not None and b.best.trial_id == "e1"


def test_the_knee_does_not_depend_on_the_order_trials_came_in() -> None:
    # a concave front: both ends are equally balanced (the middle is further from the ideal point)
    trials = {"a": (0.9, 80.0), "b": (0.5, 70.0), "c": (0.4, 10.0)}
    rows = [outcome(t, acc, params) for t, (acc, params) in trials.items()]
    knees = {Leaderboard.by_front((ACC, PARAMS), (SMALL,), order).best.trial_id for order in (rows, rows[::-1])}  # type: ignore[union-attr]
    assert knees == {"a"}  # the better first objective
