"""What a run whose driver stopped left in the tracking store, read back to continue it (``orchestrator resume``).

Resume rebuilds a run from this and ``orchestrator.json``, never from Ray Tune's pickled state: the trials that
ended count against the planned ones, and each interrupted trial continues first, with its values and seed, from
its newest checkpoint that the store saw (or from epoch 1 without one), in its own run.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.redaction import redact_config
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import MlflowStore, TrialRow

from .plan import SearchPlan
from .searchers.base import Replay
from .trainable import RESUME_KEY, ResumeFrom

ENDED = ("FINISHED", "FAILED")  # a trial run in one of these is done: it counts against the planned trials
INTERRUPTED = ("RUNNING", "KILLED")  # a trial run a driver left in one of these continues on resume


@dataclass(frozen=True)
class SearchSoFar:
    """The trials of a run that ended (they count against the plan) and those that continue, as replays."""

    ended: list[TrialRow]
    continued: list[Replay]
    interrupted_runs: frozenset[str] = frozenset()  # the runs of the trials that continue (or are replaced)

    @classmethod
    def read(cls, store: MlflowStore, plan: SearchPlan) -> SearchSoFar:
        rows = store.trials(plan.version.study, parent_run_id=plan.parent_run_id, kind=plan.trial_kind)
        interrupted = [row for row in rows if row.status in INTERRUPTED]
        continued = (_continued(store, plan, row) for row in interrupted)
        return cls(
            [r for r in rows if r.status in ENDED],
            [c for c in continued if c is not None],
            frozenset(row.run_id for row in interrupted),
        )

    def not_started(self, plan: SearchPlan) -> list[Replay]:
        """The plan's fixed trials that neither ended nor continue (none for a search: its searcher suggests)."""
        started = [redact_config(r.config) for r in self.ended] + [redact_config(c.values) for c in self.continued]
        return [Replay(values, seed) for values, seed in plan.fixed_trials if redact_config(values) not in started]

    def summary(self, planned: int) -> str:
        finished = sum(r.status == "FINISHED" for r in self.ended)
        from_checkpoint = sum(bool(c.extra[RESUME_KEY]["checkpoint"]) for c in self.continued)
        return (
            f"{finished} finished, {len(self.ended) - finished} failed of {planned} planned; "
            f"{len(self.continued)} interrupted continue ({from_checkpoint} from a checkpoint)"
        )


def _continued(store: MlflowStore, plan: SearchPlan, row: TrialRow) -> Replay | None:
    """How the interrupted trial of ``row`` continues; None without a recorded seed (a new trial takes its place)."""
    tags = store.client.get_run(row.run_id).data.tags
    seed = tags.get(schema.SEED, "")
    if not seed.isdigit() or not row.trial_id:
        return None
    logged = store.metric_steps(row.run_id, plan.version.metric.name)
    checkpoint = plan.experiment.last_checkpoint(tags.get(schema.RESUMED_AS) or row.trial_id, logged)
    resume = ResumeFrom(trial_id=row.trial_id, checkpoint=checkpoint or "")
    return Replay(row.config, int(seed), {RESUME_KEY: resume})
