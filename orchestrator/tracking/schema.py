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
PENDING = "orchestrator.pending"  # a search's running configurations while another search of its study runs
RAY_JOB_ID = "orchestrator.ray_job_id"
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
METRIC_HISTORY = "orchestrator.metric_history"
RESUMED_AS = "orchestrator.resumed_as"
LEDGER_AS_OF = "orchestrator.ledger_as_of"
LEDGER_ERROR = "orchestrator.ledger_error"
REVIEW_ERROR = "orchestrator.review_error"
IMPORTANCE_SKIPPED = "orchestrator.importance_skipped"
MODEL_SKIPPED = "orchestrator.model_skipped"
SOURCE_RUN = "orchestrator.source_run_id"
TRAIN_RUN_ID = "orchestrator.train_run_id"
TRAINED_RUN = "orchestrator.trained_run_id"
PARETO_RANK = "orchestrator.pareto_rank"  # a trial's front when its search has several objectives (0: the Pareto set)

# Values of KIND.
SEARCH_RUN = "search"
TRIAL_RUN = "trial"
TRAIN_RUN = "train"  # the parent run of ``orchestrator train`` (orchestrator/production/train.py)
TRAINING_RUN = "training"  # a nested run of a train: one model's training (warm start never reads it)
NESTED_KIND = {SEARCH_RUN: TRIAL_RUN, TRAIN_RUN: TRAINING_RUN}  # a parent run's kind -> its nested runs' kind

# --------------------------------------------------------------------------- params of a search run

SPACE_STUDY = "space.study"
SPACE_VERSION = "space.version"
SPACE_HASH = "space.hash"
SPACE_PARENT = "space.parent"
PARAM_TRAINABLE = "trainable"
PARAM_METRIC = "metric"
PARAM_MODE = "mode"
PARAM_OBJECTIVES = "objectives"  # several objectives: every one's name and mode (JSON), the first is ``metric``
PARAM_CONSTRAINTS = "constraints"  # the space's constraints (JSON: metric -> {min, max})
PARAM_TRIALS = "trials"
PARAM_CONCURRENCY = "concurrency"
PARAM_EPOCHS = "epochs"  # of a train run: the epochs each model trains for
PARAM_SEED = "seed"  # the searcher's seed (a new one per search unless --seed names one)

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


MODEL_METRIC = "model_<metric>"  # documentation form; the name itself comes from model_metric()


def model_metric(metric: str) -> str:
    """The name of ``metric`` measured again on the validation data with the registered model's weights."""
    return MODEL_METRIC.replace("<metric>", metric)


# --------------------------------------------------------------------------- artifacts

LEDGER_ARTIFACT = "ledger/trials.parquet"  # on a finished search's run: the study's trials (tracking/ledger.py)

# On a trial's run: what orchestrator.review renders from its last checkpoint, all under REVIEW_ARTIFACT_DIR.
REVIEW_ARTIFACT_DIR = "review"
MODEL_SUMMARY_ARTIFACT = "review/model_summary.txt"
ARCHITECTURE_ARTIFACT = "review/architecture.png"
CONFUSION_MATRIX_ARTIFACT = "review/confusion_matrix.png"  # classification
PREDICTIONS_ARTIFACT = "review/predictions.png"  # segmentation
# On a finished search's run (orchestrator/review/search.py); the best trial's run gets the leaderboard too.
LEADERBOARD_ARTIFACT = "review/leaderboard.md"
LEADERBOARD_TABLE_ARTIFACT = "review/leaderboard.parquet"
BEST_CONFIG_ARTIFACT = "review/best_config.yaml"
IMPORTANCE_ARTIFACT = "review/importance.png"
IMPORTANCE_VALUES_ARTIFACT = "review/importance.json"
BEST_SO_FAR_ARTIFACT = "review/best_so_far.png"
# A search of several objectives: the front of each pair of objectives, and the importance for each objective.
PARETO_ARTIFACT = "review/pareto_<objective>_<objective>.png"  # documentation form: pareto_artifact(x, y)
OBJECTIVE_IMPORTANCE_ARTIFACT = "review/importance_<objective>.png"  # documentation form: importance_artifact()
OBJECTIVE_IMPORTANCE_VALUES_ARTIFACT = "review/importance_<objective>.json"
LOGGED_MODEL = "model"  # the name of the best trial's model logged on the search's run (orchestrator/review/model.py)


def pareto_artifact(x: str, y: str) -> str:
    """The front of the objectives ``x`` (horizontal) and ``y`` (vertical): ``review/pareto_<x>_<y>.png``."""
    return f"{REVIEW_ARTIFACT_DIR}/pareto_{x}_{y}.png"


def importance_artifact(objective: str, suffix: str = ".png") -> str:
    """The importance of the parameters for one objective: ``review/importance_<objective>.png`` (or ``.json``)."""
    return f"{REVIEW_ARTIFACT_DIR}/importance_{objective}{suffix}"


def review_file_name(artifact: str) -> str:
    """The file name of a review artifact inside REVIEW_ARTIFACT_DIR (``architecture.png``)."""
    folder, _, name = artifact.rpartition("/")
    assert folder == REVIEW_ARTIFACT_DIR, f"{artifact!r} is not a review artifact"
    return name


# --------------------------------------------------------------------------- the table

On = Literal["experiment", "search", "trial", "train", "training", "model"]
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
    SchemaEntry(
        BEST_CONFIG,
        "search",
        "tag",
        "values of the best trial (JSON; several objectives: the knee of the front), set when the search finishes",
    ),
    SchemaEntry(
        PENDING,
        "search",
        "tag",
        "the configurations this search has suggested and not yet finished (JSON list), kept up while another "
        "search of the study runs: each counts the other's as running (`engine/peers.py`)",
    ),
    SchemaEntry(
        END_REASON,
        "search",
        "tag",
        "why a search ended FAILED (the error) or KILLED (interrupted, with the command to resume)",
    ),
    SchemaEntry(
        RAY_JOB_ID,
        "search",
        "tag",
        "the Ray job whose entrypoint ran the search (`orchestrator submit --ray-address`; "
        "`orchestrator jobs` finds the run by it)",
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
    SchemaEntry(
        PARAM_OBJECTIVES,
        "search",
        "param",
        'several objectives: each one\'s name and mode (JSON, `[{"name": ..., "mode": ...}, ...]`); `metric` is the '
        "first",
    ),
    SchemaEntry(PARAM_CONSTRAINTS, "search", "param", 'the space\'s constraints (JSON, `{"params": {"max": ...}}`)'),
    SchemaEntry(PARAM_TRIALS, "search", "param", "planned trials"),
    SchemaEntry(PARAM_CONCURRENCY, "search", "param", "trials at a time"),
    SchemaEntry(PARAM_SEED, "search", "param", "the searcher's seed: a new one per search unless `--seed` names one"),
    SchemaEntry(CARRIED_TRIALS, "search", "metric", "earlier trials fed to the searcher"),
    SchemaEntry(DROPPED_TRIALS, "search", "metric", "earlier trials that do not fit this version"),
    SchemaEntry(WARM_START_S, "search", "metric", "seconds to read and carry earlier trials"),
    SchemaEntry(FINISHED_TRIALS, "search", "metric", "trials that finished"),
    SchemaEntry(FAILED_TRIALS, "search", "metric", "trials that failed after their retries"),
    SchemaEntry(SEARCH_WALL_S, "search", "metric", "seconds Ray Tune ran (this driver)"),
    SchemaEntry(
        BEST_METRIC,
        "search",
        "metric",
        "best value of the metric over all trials (several objectives: one per objective, the knee's values)",
    ),
    SchemaEntry(
        LEDGER_ARTIFACT,
        "search",
        "artifact",
        "every trial of the study (all versions) as of the search's end, a Parquet ledger; warm start reads the "
        "newest one plus the runs that ended after it",
    ),
    SchemaEntry(
        LEDGER_ERROR,
        "search",
        "tag",
        f"why `{LEDGER_ARTIFACT}` is missing (its upload failed twice, e.g. the artifact store was down; one line); "
        "the next warm start reads the runs instead",
    ),
    SchemaEntry(REVIEW_ERROR, "search", "tag", "why the search's review artifacts are missing or partial (one line)"),
    SchemaEntry(
        IMPORTANCE_SKIPPED,
        "search",
        "tag",
        f"why there is no `{IMPORTANCE_ARTIFACT}`: too few finished trials or parameters, values that do not vary, "
        "or the error",
    ),
    SchemaEntry(
        MODEL_SKIPPED,
        "search",
        "tag",
        f"why no `{LOGGED_MODEL}` was logged: a trainable without a PyTorch model, no checkpoint, or the error",
    ),
    SchemaEntry(MODEL_METRIC, "search", "metric", "the metric measured again with the registered model's weights"),
    SchemaEntry(
        LEADERBOARD_ARTIFACT,
        "search",
        "artifact",
        "the search's trials ranked by the metric (trial, run, value, epoch reached, status, redacted values); "
        "several objectives: by front, then crowding, infeasible trials last, with each objective's value, the front "
        "and the knee marked, each run a link into the UI (a tracking server); a copy is on the best trial's run",
    ),
    SchemaEntry(LEADERBOARD_TABLE_ARTIFACT, "search", "artifact", "the same leaderboard as a Parquet table"),
    SchemaEntry(
        BEST_CONFIG_ARTIFACT,
        "search",
        "artifact",
        "the best trial's values pinned as a space-file fragment (`fixed:` and `params:`) to paste",
    ),
    SchemaEntry(
        IMPORTANCE_ARTIFACT,
        "search",
        "artifact",
        "parameter importance over the finished trials (`orchestrator.analysis.importance`: the main-effect share "
        "of a Gaussian process's partial dependence, the importance `space refine` quotes), a bar chart",
    ),
    SchemaEntry(IMPORTANCE_VALUES_ARTIFACT, "search", "artifact", "the importance numbers (JSON, summing to 1)"),
    SchemaEntry(
        BEST_SO_FAR_ARTIFACT,
        "search",
        "artifact",
        "best value so far against trials in completion order (several objectives: the hypervolume of the feasible "
        "trials so far, each objective scaled to [0, 1] over them, reference point 1.1 in each)",
    ),
    SchemaEntry(
        PARETO_ARTIFACT,
        "search",
        "artifact",
        "several objectives: one per pair of objectives, every trial's values with the front joined, dominated "
        "trials in grey, infeasible ones crossed, the knee named",
    ),
    SchemaEntry(
        OBJECTIVE_IMPORTANCE_ARTIFACT,
        "search",
        "artifact",
        f"several objectives: `{IMPORTANCE_ARTIFACT}` for each objective",
    ),
    SchemaEntry(
        OBJECTIVE_IMPORTANCE_VALUES_ARTIFACT,
        "search",
        "artifact",
        f"several objectives: `{IMPORTANCE_VALUES_ARTIFACT}` for each objective",
    ),
    SchemaEntry(
        LOGGED_MODEL,
        "search",
        "artifact",
        "the best trial's model (`mlflow.pytorch`, with input example and signature; several objectives: the knee's, "
        "under constraints a feasible one's), registered under the study",
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
    SchemaEntry(NODE_ID, "trial", "tag", "the Ray node it last ran on (a retry on another node updates it)"),
    SchemaEntry(GPU_IDS, "trial", "tag", "GPU ids it saw (comma-separated, empty without GPUs)"),
    SchemaEntry(STATUS, "trial", "tag", "final status: FINISHED, FAILED or KILLED"),
    SchemaEntry(FAILURE, "trial", "tag", "last line of the error of a failed trial"),
    SchemaEntry(RETRIED_AFTER, "trial", "tag", "the error a retry (`max_failures`) followed"),
    SchemaEntry(STOPPED_EARLY, "trial", "tag", "the epoch the scheduler stopped it at"),
    SchemaEntry(
        METRIC_HISTORY,
        "trial",
        "tag",
        'the searched metric per epoch as JSON (`{"metric": ..., "epochs": [...], "values": [...]}`; with several '
        'objectives or constraints also `"more": {name: [...]}`, the others at the same epochs), set when the trial '
        "ends; warm start reads it with the run, so carried trials count at the ASHA rungs they reached",
    ),
    SchemaEntry(
        RESUMED_AS,
        "trial",
        "tag",
        "the Ray Tune trial id that continues it after `orchestrator resume` (its folder holds the newer checkpoints)",
    ),
    SchemaEntry(
        REVIEW_ERROR,
        "trial",
        "tag",
        f"why the trial has no `{REVIEW_ARTIFACT_DIR}/` artifacts: the error (one line), or that they were skipped",
    ),
    SchemaEntry(TRIAL_PARAMS, "trial", "param", "the trial's values under flattened paths (`optimizer.momentum`)"),
    SchemaEntry(TRIAL_METRICS, "trial", "metric", "what the trainable reports, per epoch (`step` = epoch)"),
    SchemaEntry(BEST_METRIC, "trial", "metric", "the trial's best value of the metric"),
    SchemaEntry(
        PARETO_RANK,
        "trial",
        "tag",
        "several objectives: the trial's front among its search's trials (`0`: the Pareto set; infeasible and failed "
        "trials after every feasible front), written when the search ends; filter "
        f'`tags."{PARETO_RANK}" = "0"`',
    ),
    SchemaEntry(
        REVIEW_ARTIFACT_DIR,
        "trial",
        "artifact",
        "review artifacts rendered from the trial's last checkpoint by a low-priority process, off the training "
        f"path (off: `--no-review-artifacts`); missing ones are explained by `{REVIEW_ERROR}`",
    ),
    SchemaEntry(
        MODEL_SUMMARY_ARTIFACT,
        "trial",
        "artifact",
        "layer table with output shapes and parameter counts, total parameters, multiply-adds per sample",
    ),
    SchemaEntry(
        ARCHITECTURE_ARTIFACT,
        "trial",
        "artifact",
        "a drawing of the network (U-Net levels and skips with filter counts; ConvNet stages and FC layers)",
    ),
    SchemaEntry(
        CONFUSION_MATRIX_ARTIFACT,
        "trial",
        "artifact",
        "classification: the confusion matrix on the validation set, accuracy in the title",
    ),
    SchemaEntry(
        PREDICTIONS_ARTIFACT,
        "trial",
        "artifact",
        "segmentation: fixed validation tiles, RGB, truth and prediction per class, Jaccard per class",
    ),
    # the parent run of one `orchestrator train` and its nested runs (orchestrator/production/train.py)
    SchemaEntry(
        KIND,
        "train",
        "tag",
        f"`{TRAIN_RUN}`: a search's tags, params and metrics (its space is the trained trial's values pinned, FIFO, "
        "one trial per model), and those below",
    ),
    SchemaEntry(VERSION, "train", "tag", "the space version of the trial it trains"),
    SchemaEntry(HASH, "train", "tag", "content hash of that space"),
    SchemaEntry(TRIAL_ID, "train", "tag", "the trial whose values it trains"),
    SchemaEntry(SOURCE_RUN, "train", "tag", "that trial's run id"),
    SchemaEntry(PARAM_EPOCHS, "train", "param", "epochs each model trains for"),
    SchemaEntry(
        KIND,
        "training",
        "tag",
        f"`{TRAINING_RUN}`: one model of a train, nested under it, with a trial run's tags, params and metrics; "
        "warm start, refine and reports read only `trial` runs",
    ),
    # a version of the registered model named after the study
    SchemaEntry(VERSION, "model", "tag", "the space version of the search that logged it"),
    SchemaEntry(HASH, "model", "tag", "content hash of that space"),
    SchemaEntry(TRIAL_ID, "model", "tag", "the trial whose last checkpoint it is"),
    SchemaEntry(SOURCE_RUN, "model", "tag", "that trial's run id"),
    SchemaEntry(MODEL_METRIC, "model", "tag", "the metric measured with these weights on the validation data"),
    SchemaEntry(
        TRAIN_RUN_ID,
        "model",
        "tag",
        f"the `{TRAIN_RUN}` run that trained it (`orchestrator train`: models `<study>` or `<study>-<class>`)",
    ),
    SchemaEntry(TRAINED_RUN, "model", "tag", f"the `{TRAINING_RUN}` run whose last checkpoint it is"),
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
