"""The end of a search of several objectives: each trial's front as a tag on its run, the knee's values on the
search's run.

Written once every trial has ended (``runner``, before the search's end hook): a front is the whole search's, so
a tag written while trials still ran would be stale by the end. Every trial with a point gets its front
(``schema.PARETO_RANK``: ``0`` is the Pareto set; infeasible and failed trials come after every feasible front);
a trial that never reported every objective has no point and no tag. The search's run gets ``best_<objective>``
for every objective: the knee's values (the first objective's with the counts, as a search of one metric logs
its best).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from orchestrator.tracking import schema

if TYPE_CHECKING:
    from orchestrator.tracking.mlflow_store import MlflowStore

    from .leaderboard import Leaderboard
    from .plan import SearchPlan


def log_fronts(store: MlflowStore, plan: SearchPlan, board: Leaderboard) -> Leaderboard:
    """Tag every ranked trial run of the search ``plan`` with its front on ``board``, log the knee's values of the
    objectives after the first on the search's run; returns ``board`` with the trials' run ids."""
    version = plan.version
    board = board.with_runs(store.trials(version.study, parent_run_id=plan.parent_run_id, kind=plan.trial_kind))
    for row, front in zip(board.rows, board.fronts, strict=True):
        if row.run_id:
            store.log_batch(row.run_id, tags={schema.PARETO_RANK: str(front)})
    best = board.best
    if best is not None:
        now = int(time.time() * 1000)
        metrics = [
            (schema.best_metric(m.name), value, now, 0)
            for m, value in zip(board.objectives[1:], best.point[1:], strict=True)
        ]
        store.log_batch(plan.parent_run_id, metrics=metrics)
    return board
