"""Review artifacts' cost: the demo search with the per-trial review artifacts off and on, side by side.

The search is what ``orchestrator demo`` runs (``search_spaces/convnet_digits/v1.yaml``: a network3-style
ConvNet on scikit-learn's digits, TPE + ASHA), through ``run_search`` in this process on one local Ray,
``SearchOptions.review_artifacts`` off and on taking turns (the side that goes first alternates by
round), the same seed, each run with a fresh SQLite store. Measured per run: every trial's wall time (its
MLflow run's end - start; per epoch too, since ASHA stops trials at different epochs), the search's wall
time (the whole ``run_search`` call, and Ray Tune's part of it) and how long the driver waited at the end
for the review worker. Reported: medians over the trials and rounds of each side, on / off, and the goal.

    python -m bench.review_cost --quick    # 2 rounds of each side, 4 trials per search
    python -m bench.review_cost            # 5 rounds of each side, the demo's 16 trials per search
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import common

GOAL_COST = 0.02  # review artifacts add at most 2 % to a trial's wall time (per epoch, the median)
EPOCH_TIME_METRIC = "epoch_time_s"  # what the shared loop reports per epoch: its own train + validate time
QUICK_TRIALS = 4  # --quick: trials per search (a full run searches the demo file's 16)
SIDES: dict[str, bool] = {"off": False, "on": True}  # side -> SearchOptions.review_artifacts


def demo_space() -> Path:
    """The space file ``orchestrator demo`` searches."""
    from orchestrator.cli import DEFAULT_SPACES, DEMO_SPACE

    return common.ROOT / DEFAULT_SPACES / DEMO_SPACE


def side_order(round_index: int) -> list[str]:
    """The sides of one round in the order they run: off first in even rounds, on first in odd ones."""
    sides = list(SIDES)
    return sides if round_index % 2 == 0 else sides[::-1]


@contextmanager
def timed_review_waits(waits: list[float]) -> Iterator[None]:
    """Record the seconds of each ``TrialReviews.finish``: the driver's wait for the review worker at a search's end.

    Benchmark only: the method is wrapped while the block runs and restored after it."""
    from orchestrator.review.trial import TrialReviews

    original = TrialReviews.finish

    def finish(self: TrialReviews, timeout: float) -> None:
        started = time.perf_counter()
        try:
            original(self, timeout)
        finally:
            waits.append(time.perf_counter() - started)

    TrialReviews.finish = finish  # type: ignore[method-assign]
    try:
        yield
    finally:
        TrialReviews.finish = original  # type: ignore[method-assign]


def trial_times(uri: str, study: str, metric: str, parent_run_id: str) -> list[dict[str, Any]]:
    """Wall time (s), epochs reached, seconds per epoch and whether it has review artifacts, of each finished trial
    of the search ``parent_run_id``."""
    from mlflow.tracking import MlflowClient

    from orchestrator.tracking import schema

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None, f"no experiment {study!r} at {uri}"
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.`{schema.PARENT}` = '{parent_run_id}' and tags.`{schema.KIND}` = '{schema.TRIAL_RUN}'",
    )
    times = []
    for run in runs:
        if run.info.end_time is None or run.info.status != "FINISHED":
            continue
        wall_s = (run.info.end_time - run.info.start_time) / 1000
        epochs = len(client.get_metric_history(run.info.run_id, metric))
        # The trainable's own clock (train + validate, each epoch): free of when the driver's logger closed the run.
        train_s = sum(m.value for m in client.get_metric_history(run.info.run_id, EPOCH_TIME_METRIC))
        listed = {f.path for f in client.list_artifacts(run.info.run_id, schema.REVIEW_ARTIFACT_DIR)}
        reviewed = schema.ARCHITECTURE_ARTIFACT in listed  # per trial; the best trial has the leaderboard either way
        times.append({"wall_s": wall_s, "epochs": epochs, "s_per_epoch": wall_s / max(epochs, 1), "reviewed": reviewed,
                      "train_s": train_s, "train_s_per_epoch": train_s / max(epochs, 1)})  # fmt: skip
    return times


def run_once(space: Path, folder: Path, review: bool, seed: int, trials: int | None) -> dict[str, Any]:
    """One search with review artifacts ``review``, in a fresh SQLite store under ``folder``."""
    from orchestrator.engine.runner import SearchOptions, run_search
    from orchestrator.spaces import load_with_lineage

    version, _ = load_with_lineage(space)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    options = SearchOptions(tracking_uri=uri, storage=str(folder / "ray"), seed=seed, trials=trials, live=False,
                            review_artifacts=review)  # fmt: skip
    lines: list[str] = []
    waits: list[float] = []
    with timed_review_waits(waits), common.swallow_stdout(), common.Timer() as call:
        result = run_search(space, options, echo=lines.append)
    times = trial_times(uri, version.study, version.metric.name, result.parent_run_id)
    return {
        "call_s": call.s, "fit_s": result.wall_s, "review_wait_s": sum(waits),
        "reviewed": sum(t["reviewed"] for t in times),
        "finished": result.finished, "failed": result.failed, "best": result.best_value, "trials": times,
    }  # fmt: skip


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of one side over its rounds: per trial (all trials of all rounds pooled) and per search."""
    trials = [t for run in runs for t in run["trials"]]
    return {
        "rounds": len(runs),
        "trials_measured": len(trials),
        "trials_reviewed": sum(t["reviewed"] for t in trials),
        "trial_wall_s_median": statistics.median(t["wall_s"] for t in trials),
        "trial_s_per_epoch_median": statistics.median(t["s_per_epoch"] for t in trials),
        "trial_train_s_median": statistics.median(t["train_s"] for t in trials),
        "trial_train_s_per_epoch_median": statistics.median(t["train_s_per_epoch"] for t in trials),
        "epochs_median": statistics.median(t["epochs"] for t in trials),
        "search_call_s_median": statistics.median(r["call_s"] for r in runs),
        "search_fit_s_median": statistics.median(r["fit_s"] for r in runs),
        "review_wait_s_median": statistics.median(r["review_wait_s"] for r in runs),
        "review_wait_s_max": max(r["review_wait_s"] for r in runs),
        "best_median": statistics.median(r["best"] for r in runs if r["best"] is not None),
    }


def compare(sides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """on / off of each median, and the goal: the median trial's wall time costs at most ``GOAL_COST`` more."""
    off, on = sides["off"], sides["on"]
    keys = ("trial_wall_s_median", "trial_s_per_epoch_median", "trial_train_s_median",
            "trial_train_s_per_epoch_median", "search_call_s_median", "search_fit_s_median")  # fmt: skip
    ratios = {key: on[key] / off[key] for key in keys}
    # Per epoch: ASHA stops trials at different rungs from run to run, so whole-trial medians mix 2-epoch and
    # 12-epoch trials; the wall time of a trial per epoch it ran compares like with like.
    cost = ratios["trial_s_per_epoch_median"] - 1
    return {
        "ratios_on_over_off": ratios,
        "goal": {"max_trial_cost": GOAL_COST, "trial_cost": cost, "met": cost <= GOAL_COST},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--rounds", type=int, help="searches of each side (default 2 with --quick, else 5)")
    p.add_argument("--trials", type=int, help=f"trials per search (default {QUICK_TRIALS} with --quick, else the "
                   "demo file's)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of every search (default %(default)s)")
    args = common.parse_args(p, argv, sizes={"rounds": (2, 5), "trials": (QUICK_TRIALS, None)})
    space = demo_space()
    out: dict[str, Any] = {
        "space": str(space.relative_to(common.ROOT)), "rounds": args.rounds, "seed": args.seed,
        "trials": args.trials, "cores": common.cpu_count(), "runs": {side: [] for side in SIDES},
    }  # fmt: skip
    out["ray_startup_s"] = common.local_ray()
    try:
        with common.scratch_dir("review-cost") as root:
            for round_index in range(args.rounds):
                for side in side_order(round_index):
                    print(f"round {round_index + 1}/{args.rounds}: review artifacts {side} ...", flush=True)
                    folder = root / f"{side}-{round_index}"
                    run = run_once(space, folder, SIDES[side], args.seed, args.trials)
                    out["runs"][side].append(run)
    finally:
        import ray

        ray.shutdown()
    out["sides"] = {side: summarize(runs) for side, runs in out["runs"].items()}
    out.update(compare(out["sides"]))
    report(out)
    return common.finish("review_cost", args.quick, out, args.out)


def report(out: dict[str, Any]) -> None:
    off, on, ratios = out["sides"]["off"], out["sides"]["on"], out["ratios_on_over_off"]
    rows = [
        ["trial wall time, median (s)", off["trial_wall_s_median"], on["trial_wall_s_median"],
         ratios["trial_wall_s_median"]],
        ["trial time per epoch, median (s)", off["trial_s_per_epoch_median"], on["trial_s_per_epoch_median"],
         ratios["trial_s_per_epoch_median"]],
        ["trial training time (its epoch_time_s), median (s)", off["trial_train_s_median"], on["trial_train_s_median"],
         ratios["trial_train_s_median"]],
        ["  per epoch, median (s)", off["trial_train_s_per_epoch_median"], on["trial_train_s_per_epoch_median"],
         ratios["trial_train_s_per_epoch_median"]],
        ["search: run_search call, median (s)", off["search_call_s_median"], on["search_call_s_median"],
         ratios["search_call_s_median"]],
        ["search: Ray Tune fit, median (s)", off["search_fit_s_median"], on["search_fit_s_median"],
         ratios["search_fit_s_median"]],
        ["driver waited for the review worker, median (s)", off["review_wait_s_median"], on["review_wait_s_median"],
         None],
        ["trials measured", off["trials_measured"], on["trials_measured"], None],
        ["trials with review artifacts", off["trials_reviewed"], on["trials_reviewed"], None],
        ["epochs reached, median", off["epochs_median"], on["epochs_median"], None],
        ["best value, median", off["best_median"], on["best_median"], None],
    ]  # fmt: skip
    title = f"Review artifacts off vs on: {out['space']}, {out['rounds']} rounds of each, seed {out['seed']}"
    common.print_table(["measure", "off", "on", "on / off"], rows, title)
    goal = out["goal"]
    verdict = "met" if goal["met"] else "NOT met"
    print(f"\ngoal: review artifacts cost <= {goal['max_trial_cost']:.0%} of a trial's wall time (per epoch, median): "
          f"{goal['trial_cost']:+.2%} ({verdict})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
