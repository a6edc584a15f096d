"""Every MLflow tag, param and metric name orchestrator writes or reads, defined once.

Code imports the constants below; nothing else spells these names. ``ENTRIES`` describes each
one (on which object it lives, what kind of value it is, what it means); the "MLflow layout"
table of docs/architecture.md is generated from it (``python -m orchestrator.tracking.schema
--markdown``) and a test keeps the two equal.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

PREFIX = "orchestrator."  # every name of our own starts with it; MLflow's own start with "mlflow."

# --------------------------------------------------------------------------- MLflow's own tags

PARENT = "mlflow.parentRunId"
NOTE = "mlflow.note.content"

# --------------------------------------------------------------------------- tags of ours

KIND = "orchestrator.kind"
STUDY = "orchestrator.study"
VERSION = "orchestrator.version"
HASH = "orchestrator.space_hash"
CARRY = "orchestrator.carry"
EXPERIMENT_PATH = "orchestrator.experiment_path"
BEST_CONFIG = "orchestrator.best_config"
END_REASON = "orchestrator.end_reason"
TRIAL_ID = "orchestrator.trial_id"
CONFIG = "orchestrator.config"
TRAINABLE = "orchestrator.trainable"
SEED = "orchestrator.seed"
SUGGESTED_BY = "orchestrator.suggested_by"
NODE_ID = "orchestrator.node_id"
GPU_IDS = "orchestrator.gpu_ids"
STATUS = "orchestrator.status"
FAILURE = "orchestrator.failure"
RETRIED_AFTER = "orchestrator.retried_after"
STOPPED_EARLY = "orchestrator.stopped_early"
LOST = "orchestrator.lost"
LEDGER_AS_OF = "orchestrator.ledger_as_of"

# Values of KIND.
SEARCH_RUN = "search"
TRIAL_RUN = "trial"

# --------------------------------------------------------------------------- params of a search run

SPACE_STUDY = "space.study"
SPACE_VERSION = "space.version"
SPACE_HASH = "space.hash"
SPACE_PARENT = "space.parent"
PARAM_TRAINABLE = "trainable"
PARAM_METRIC = "metric"
PARAM_MODE = "mode"
PARAM_TRIALS = "trials"
PARAM_CONCURRENCY = "concurrency"

# --------------------------------------------------------------------------- metrics

CARRIED_TRIALS = "carried_trials"
DROPPED_TRIALS = "dropped_trials"
WARM_START_S = "warm_start_s"
FINISHED_TRIALS = "finished_trials"
FAILED_TRIALS = "failed_trials"
SEARCH_WALL_S = "search_wall_s"
BEST_METRIC = "best_<metric>"  # documentation form; the name itself comes from best_metric()
TRIAL_PARAMS = "<parameter path>"  # documentation form: a trial's values under flattened paths
TRIAL_METRICS = "<reported metric>"  # documentation form: what the trainable reports each epoch


def best_metric(metric: str) -> str:
    """The name of the best value of ``metric`` (a trial's best epoch, or the search's best trial)."""
    return BEST_METRIC.replace("<metric>", metric)


# --------------------------------------------------------------------------- artifacts

LEDGER_ARTIFACT = "ledger/trials.parquet"  # on a finished search's run: the study's trials (tracking/ledger.py)

# --------------------------------------------------------------------------- the table

On = Literal["experiment", "search", "trial"]
Kind = Literal["tag", "param", "metric", "artifact"]


@dataclass(frozen=True)
class SchemaEntry:
    """One name on one kind of MLflow object, with what its value means."""

    name: str
    on: On
    kind: Kind
    meaning: str


ENTRIES: tuple[SchemaEntry, ...] = (
    SchemaEntry(STUDY, "experiment", "tag", "the study; the experiment is named after it"),
    # the parent run of one search
    SchemaEntry(KIND, "search", "tag", f"`{SEARCH_RUN}`"),
    SchemaEntry(STUDY, "search", "tag", "the study"),
    SchemaEntry(VERSION, "search", "tag", "the space version searched"),
    SchemaEntry(HASH, "search", "tag", "content hash of the space"),
    SchemaEntry(CARRY, "search", "tag", "carry-over report (JSON): carried, defaulted and dropped counts by reason"),
    SchemaEntry(EXPERIMENT_PATH, "search", "tag", "where Ray Tune keeps the search's state (`orchestrator resume` it)"),
    SchemaEntry(BEST_CONFIG, "search", "tag", "values of the best trial (JSON), set when the search finishes"),
    SchemaEntry(
        END_REASON,
        "search",
        "tag",
        "why a search ended FAILED (the error) or KILLED (interrupted, with the command to resume)",
    ),
    SchemaEntry(NOTE, "search", "tag", "space label and hash, carry-over summary, the space's notes"),
    SchemaEntry(
        LEDGER_AS_OF,
        "search",
        "tag",
        f"as-of time of `{LEDGER_ARTIFACT}` (ms since the epoch, a minute before the store was read): runs that "
        "ended after it are read on top; set after the artifact is written",
    ),
    SchemaEntry(SPACE_STUDY, "search", "param", "study of the space file"),
    SchemaEntry(SPACE_VERSION, "search", "param", "version of the space file"),
    SchemaEntry(SPACE_HASH, "search", "param", "content hash of the space file"),
    SchemaEntry(SPACE_PARENT, "search", "param", "the version it refines (`None` for the first)"),
    SchemaEntry(PARAM_TRAINABLE, "search", "param", "registered trainable"),
    SchemaEntry(PARAM_METRIC, "search", "param", "the metric searched"),
    SchemaEntry(PARAM_MODE, "search", "param", "`min` or `max`"),
    SchemaEntry(PARAM_TRIALS, "search", "param", "planned trials"),
    SchemaEntry(PARAM_CONCURRENCY, "search", "param", "trials at a time"),
    SchemaEntry(CARRIED_TRIALS, "search", "metric", "earlier trials fed to the searcher"),
    SchemaEntry(DROPPED_TRIALS, "search", "metric", "earlier trials that do not fit this version"),
    SchemaEntry(WARM_START_S, "search", "metric", "seconds to read and carry earlier trials"),
    SchemaEntry(FINISHED_TRIALS, "search", "metric", "trials that finished"),
    SchemaEntry(FAILED_TRIALS, "search", "metric", "trials that failed after their retries"),
    SchemaEntry(SEARCH_WALL_S, "search", "metric", "seconds Ray Tune ran (this driver)"),
    SchemaEntry(BEST_METRIC, "search", "metric", "best value of the metric over all trials"),
    SchemaEntry(
        LEDGER_ARTIFACT,
        "search",
        "artifact",
        "every trial of the study (all versions) as of the search's end, a Parquet ledger; warm start reads the "
        "newest one plus the runs that ended after it",
    ),
    # a nested run per trial
    SchemaEntry(PARENT, "trial", "tag", "the search's run id"),
    SchemaEntry(KIND, "trial", "tag", f"`{TRIAL_RUN}`"),
    SchemaEntry(STUDY, "trial", "tag", "the study"),
    SchemaEntry(VERSION, "trial", "tag", "the space version that suggested it"),
    SchemaEntry(HASH, "trial", "tag", "content hash of that space"),
    SchemaEntry(TRIAL_ID, "trial", "tag", "Ray Tune's trial id"),
    SchemaEntry(CONFIG, "trial", "tag", "the trial's values as JSON (exact types); warm start reads it"),
    SchemaEntry(TRAINABLE, "trial", "tag", "registered trainable"),
    SchemaEntry(SEED, "trial", "tag", "seed the trial received"),
    SchemaEntry(SUGGESTED_BY, "trial", "tag", "what chose the values (for example `tpe`, `random`)"),
    SchemaEntry(NODE_ID, "trial", "tag", "Ray node it ran on"),
    SchemaEntry(GPU_IDS, "trial", "tag", "GPU ids it saw (comma-separated, empty without GPUs)"),
    SchemaEntry(STATUS, "trial", "tag", "final status: FINISHED, FAILED or KILLED"),
    SchemaEntry(FAILURE, "trial", "tag", "last line of the error of a failed trial"),
    SchemaEntry(RETRIED_AFTER, "trial", "tag", "the error a retry (`max_failures`) followed"),
    SchemaEntry(STOPPED_EARLY, "trial", "tag", "the epoch the scheduler stopped it at"),
    SchemaEntry(LOST, "trial", "tag", "KILLED with a dead driver and not resumable; another trial ran instead"),
    SchemaEntry(TRIAL_PARAMS, "trial", "param", "the trial's values under flattened paths (`optimizer.momentum`)"),
    SchemaEntry(TRIAL_METRICS, "trial", "metric", "what the trainable reports, per epoch (`step` = epoch)"),
    SchemaEntry(BEST_METRIC, "trial", "metric", "the trial's best value of the metric"),
)


def names() -> set[str]:
    """Every name in the schema (documentation forms such as ``best_<metric>`` included)."""
    return {entry.name for entry in ENTRIES}


def markdown() -> str:
    """The "MLflow layout" table of docs/architecture.md."""
    lines = ["| on | kind | name | meaning |", "|---|---|---|---|"]
    lines += [f"| {e.on} | {e.kind} | `{e.name}` | {e.meaning} |" for e in ENTRIES]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.tracking.schema", description=__doc__)
    parser.add_argument("--markdown", action="store_true", required=True, help="print the docs/architecture.md table")
    parser.parse_args(argv)
    print(markdown(), end="")


if __name__ == "__main__":
    main()
