"""Review artifacts' cost: the demo search with the per-trial review artifacts off and on, side by side.

The search is what ``orchestrator demo`` runs (``search_spaces/convnet_digits/v1.yaml``: a network3-style
ConvNet on scikit-learn's digits, TPE + ASHA), through ``run_search`` in this process on one local Ray,
``SearchOptions.review_artifacts`` off and on taking turns (the side that goes first alternates by
round), the same seed, each run with a fresh SQLite store. Measured per run: every trial's wall time (its
MLflow run's end - start; per epoch too, since ASHA stops trials at different epochs) and its config, the
search's wall time (the whole ``run_search`` call, and Ray Tune's part of it), how long the driver waited at
the end for the review worker, the worker's own CPU time (its warm-up imports, each job), and the driver
process's CPU time, sampled every :data:`DRIVER_SAMPLE_S` (all its threads: Ray Tune's loop, the tracking
logger, the review bookkeeping).

Reported, on / off: medians over the trials and rounds of each side (pooled), and paired ratios. Both sides of
a round have the same seed, so TPE suggests the same configs in the same order until the scheduler's decisions
diverge: each "on" trial is paired with the "off" trial of its round that ran the same config, and the paired
estimate is the median over the pairs of on / off, per epoch (wall time, and the trainable's own epoch time).
Pairs cancel the differences between configs that the pooled medians mix in. The goal metric is the paired
per-epoch wall-time ratio when at least :data:`PAIRED_MIN_FRACTION` of the trials pair up, else the pooled
per-epoch median's ratio (the report says which).

How far that ratio can be trusted: on a shared 2-core machine one search's trials run up to 20 % slower or
faster than the next search's, whatever the side, so beside it come the paired ratio of each round, an 80 %
interval from resampling whole rounds (:func:`round_interval`), and the noise floor (the same ratio between
consecutive rounds of one side). A bound that does not depend on that noise: trials can lose to the review
artifacts at most the CPU time that the review worker and the driver's extra work took while trials ran, so
(worker CPU while trials ran + the driver's CPU while trials ran, on minus off) over the trials' summed wall
time bounds the cost from above (``cpu_bound``). An even number of rounds runs each side first equally often.

    python -m bench.review_cost --quick    # 2 rounds of each side, 4 trials per search
    python -m bench.review_cost            # 6 rounds of each side, the demo's 16 trials per search
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import common

GOAL_COST = 0.02  # review artifacts add at most 2 % to a trial's wall time (per epoch, the median)
EPOCH_TIME_METRIC = "epoch_time_s"  # what the shared loop reports per epoch: its own train + validate time
QUICK_TRIALS = 4  # --quick: trials per search (a full run searches the demo file's 16)
PAIRED_MIN_FRACTION = 0.5  # the paired estimate is the goal metric when at least this share of trials pair up
DRIVER_SAMPLE_S = 0.25  # how often the driver's own CPU time is sampled while a search runs
INTERVAL = (0.1, 0.9)  # the quantiles of the paired ratio's interval from resampling rounds
RESAMPLES = 2000  # resampled sets of rounds behind that interval
# The pooled medians both sides have, compared as on / off: report label -> ``summarize`` key.
COMPARED: dict[str, str] = {
    "trial wall time, median (s)": "trial_wall_s_median",
    "trial time per epoch, median (s)": "trial_s_per_epoch_median",
    "trial training time (its epoch_time_s), median (s)": "trial_train_s_median",
    "  per epoch, median (s)": "trial_train_s_per_epoch_median",
    "search: run_search call, median (s)": "search_call_s_median",
    "search: Ray Tune fit, median (s)": "search_fit_s_median",
}
SIDES: dict[str, bool] = {"off": False, "on": True}  # side -> SearchOptions.review_artifacts


def demo_space() -> Path:
    """The space file ``orchestrator demo`` searches."""
    from orchestrator.cli.search import DEMO_SPACE
    from orchestrator.settings import DEFAULT_SPACES

    return common.ROOT / DEFAULT_SPACES / DEMO_SPACE


def side_order(round_index: int) -> list[str]:
    """The sides of one round in the order they run: off first in even rounds, on first in odd ones."""
    sides = list(SIDES)
    return sides if round_index % 2 == 0 else sides[::-1]


@contextmanager
def timed_review_waits(waits: list[float], worker_cpu: list[dict[str, Any]] | None = None) -> Iterator[None]:
    """Record the seconds of each ``TrialReviews.finish``: the driver's wait for the review worker at a search's end;
    and into ``worker_cpu``, the worker's CPU seconds it reported: ``warm_up_cpu_s`` (None if it never said) and
    ``job_cpu_s`` (one per job).

    Benchmark only: the method is wrapped while the block runs and restored after it."""
    from orchestrator.review.trial import TrialReviews

    original = TrialReviews.finish

    def finish(self: TrialReviews, timeout: float) -> None:
        started = time.perf_counter()
        try:
            original(self, timeout)
        finally:
            waits.append(time.perf_counter() - started)
            if worker_cpu is not None:
                warm_up = self.warm_up.cpu_s if self.warm_up is not None else None
                worker_cpu.append(
                    {
                        "warm_up_cpu_s": warm_up,
                        "job_cpu_s": list(self.job_cpu_s),
                        "activity": [list(a) for a in self.activity],
                    }
                )

    TrialReviews.finish = finish  # type: ignore[method-assign]
    try:
        yield
    finally:
        TrialReviews.finish = original  # type: ignore[method-assign]


def trial_times(uri: str, study: str, metric: str, parent_run_id: str) -> list[dict[str, Any]]:
    """Wall time (s), epochs reached, seconds per epoch, whether it has review artifacts and its config (the JSON of
    its ``orchestrator.config`` tag), of each finished trial of the search ``parent_run_id``."""
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
        times.append(
            {
                "wall_s": wall_s,
                "epochs": epochs,
                "s_per_epoch": wall_s / max(epochs, 1),
                "reviewed": reviewed,
                "train_s": train_s,
                "train_s_per_epoch": train_s / max(epochs, 1),
                "config": run.data.tags.get(schema.CONFIG, ""),
                "start": run.info.start_time / 1000,
                "end": run.info.end_time / 1000,
            }
        )
    return times


@contextmanager
def sampled_cpu(activity: list[tuple[float, float, float]], every_s: float = DRIVER_SAMPLE_S) -> Iterator[None]:
    """While the block runs, this process's CPU time (all its threads) into ``activity``, as stretches of ``every_s``
    (start, end, CPU seconds): what :func:`cpu_during_trials` takes."""
    stop = threading.Event()

    def sample() -> None:
        start, cpu = time.time(), time.process_time()
        while True:
            stopping = stop.wait(every_s)
            now, used = time.time(), time.process_time()
            activity.append((start, now, used - cpu))
            if stopping:
                return
            start, cpu = now, used

    sampler = threading.Thread(target=sample, name="bench-cpu-sampler", daemon=True)
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join()


def cpu_during_trials(activity: Iterable[Sequence[float]], trials: Sequence[dict[str, Any]]) -> float:
    """CPU seconds a process spent while at least one trial ran: each stretch of its work (start, end, CPU seconds)
    counted for the share of its wall time that falls inside the union of the trials' runs. A trial can lose no more
    than that to the process, so over the trials' summed wall time it bounds what the process cost them."""
    busy: list[tuple[float, float]] = []
    for start, end in sorted((t["start"], t["end"]) for t in trials):
        if busy and start <= busy[-1][1]:
            busy[-1] = (busy[-1][0], max(busy[-1][1], end))
        else:
            busy.append((start, end))
    total = 0.0
    for start, end, cpu_s in activity:
        span = end - start
        inside = sum(max(0.0, min(end, b) - max(start, a)) for a, b in busy)
        total += cpu_s * (inside / span if span > 0 else float(any(a <= start <= b for a, b in busy)))
    return total


def run_once(space: Path, folder: Path, review: bool, seed: int, trials: int | None) -> dict[str, Any]:
    """One search with review artifacts ``review``, in a fresh SQLite store under ``folder``."""
    from orchestrator.api import run_search
    from orchestrator.engine.runner import SearchOptions
    from orchestrator.spaces import load_with_lineage

    version, _ = load_with_lineage(space)
    folder.mkdir(parents=True, exist_ok=True)  # a search creates a store, not the folder it goes in
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    options = SearchOptions(
        tracking_uri=uri, storage=str(folder / "ray"), seed=seed, trials=trials, live=False, review_artifacts=review
    )
    lines: list[str] = []
    waits: list[float] = []
    worker_cpu: list[dict[str, Any]] = []
    driver: list[tuple[float, float, float]] = []
    with timed_review_waits(waits, worker_cpu), sampled_cpu(driver), common.swallow_stdout(), common.Timer() as call:
        result = run_search(space, options, echo=lines.append)
    times = trial_times(uri, version.study, version.metric.name, result.parent_run_id)
    cpu = worker_cpu[0] if worker_cpu else {"warm_up_cpu_s": None, "job_cpu_s": [], "activity": []}
    cpu["cpu_during_trials_s"] = cpu_during_trials(cpu["activity"], times)
    return {
        "call_s": call.s,
        "fit_s": result.wall_s,
        "review_wait_s": sum(waits),
        **cpu,
        "driver_cpu_s": sum(used for _, _, used in driver),
        "driver_cpu_during_trials_s": cpu_during_trials(driver, times),
        "reviewed": sum(t["reviewed"] for t in times),
        "finished": result.finished,
        "failed": result.failed,
        "best": result.best_value,
        "trials": times,
    }


def median_or_none(values: Iterable[float | None]) -> float | None:
    """The median of the values given (None ones left out), None when there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


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
        "worker_warm_up_cpu_s_median": median_or_none(r.get("warm_up_cpu_s") for r in runs),
        "worker_job_cpu_s_median": median_or_none(s for r in runs for s in r.get("job_cpu_s", ())),
        "worker_cpu_during_trials_s": sum(r.get("cpu_during_trials_s", 0.0) for r in runs),
        "driver_cpu_during_trials_s": sum(r.get("driver_cpu_during_trials_s", 0.0) for r in runs),
        "trial_wall_s_total": sum(t["wall_s"] for t in trials),
    }


def pairs_by_round(off_runs: list[dict[str, Any]], on_runs: list[dict[str, Any]]) -> list[list[tuple[dict, dict]]]:
    """Per round, (off trial, on trial) with the same config; each trial in one pair at most, in order."""
    rounds = []
    for off_run, on_run in zip(off_runs, on_runs, strict=True):
        unmatched: dict[str, list[dict[str, Any]]] = {}
        for trial in off_run["trials"]:
            unmatched.setdefault(trial["config"], []).append(trial)
        rounds.append([(unmatched[t["config"]].pop(0), t) for t in on_run["trials"] if unmatched.get(t["config"])])
    return rounds


def pair_trials(off_runs: list[dict[str, Any]], on_runs: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
    """The pairs of every round (:func:`pairs_by_round`), in order."""
    return [pair for pairs in pairs_by_round(off_runs, on_runs) for pair in pairs]


def median_ratio(pairs: Iterable[tuple[dict, dict]], key: str = "s_per_epoch") -> float | None:
    """The median over ``pairs`` of on / off of the trials' ``key`` (None without pairs)."""
    return median_or_none(on[key] / off[key] for off, on in pairs if off[key] > 0)


def paired_ratios(off_runs: list[dict[str, Any]], on_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over the pairs of trials (:func:`pair_trials`) of on / off, per epoch; how many pairs and trials; the
    same ratio for each round alone."""
    rounds = pairs_by_round(off_runs, on_runs)
    pairs = [pair for round_pairs in rounds for pair in round_pairs]
    trials = min(sum(len(r["trials"]) for r in off_runs), sum(len(r["trials"]) for r in on_runs))
    per_round = [median_ratio(round_pairs) for round_pairs in rounds]
    return {
        "pairs": len(pairs),
        "trials": trials,
        "s_per_epoch_ratio": median_ratio(pairs),
        "train_s_per_epoch_ratio": median_ratio(pairs, "train_s_per_epoch"),
        "per_round": per_round,
    }


def round_interval(
    off_runs: list[dict[str, Any]],
    on_runs: list[dict[str, Any]],
    quantiles: tuple[float, float] = INTERVAL,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> list[float] | None:
    """The ``quantiles`` of the paired per-epoch ratio over ``resamples`` sets of rounds drawn with replacement: the
    trials of one search share its machine's mood, so whole rounds are the units that vary. None under 2 rounds."""
    rounds = pairs_by_round(off_runs, on_runs)
    if len(rounds) < 2:
        return None
    rng = random.Random(seed)
    drawn = [median_ratio(pair for _ in rounds for pair in rng.choice(rounds)) for _ in range(resamples)]
    estimates = sorted(r for r in drawn if r is not None)
    if not estimates:
        return None
    return [estimates[min(len(estimates) - 1, int(q * len(estimates)))] for q in quantiles]


def compare(sides: dict[str, dict[str, Any]], paired: dict[str, Any]) -> dict[str, Any]:
    """on / off of each pooled median, the paired ratios (:func:`paired_ratios`), the CPU bound, and the goal: a
    trial's wall time per epoch costs at most ``GOAL_COST`` more. Its measure is the paired per-epoch ratio when at
    least ``PAIRED_MIN_FRACTION`` of the trials paired up, else the pooled per-epoch median's ratio.

    The CPU bound (a share of the trials' wall time): the worker's CPU seconds while trials ran, plus how much more
    CPU the driver spent while trials ran with review artifacts on than off (per second of trial time, none if
    less), over the "on" trials' summed wall time."""
    off, on = sides["off"], sides["on"]
    ratios = {key: on[key] / off[key] for key in COMPARED.values()}
    # Per epoch: ASHA stops trials at different rungs from run to run, so whole-trial medians mix 2-epoch and
    # 12-epoch trials; the wall time of a trial per epoch it ran compares like with like.
    enough_pairs = paired["s_per_epoch_ratio"] is not None and paired["pairs"] >= PAIRED_MIN_FRACTION * paired["trials"]
    if enough_pairs:
        measure, ratio = "paired trial time per epoch, median of on / off", paired["s_per_epoch_ratio"]
    else:
        measure, ratio = "pooled trial time per epoch, on median / off median", ratios["trial_s_per_epoch_median"]
    cost = ratio - 1
    bound = on["worker_cpu_during_trials_s"] / on["trial_wall_s_total"] if on["trial_wall_s_total"] else None
    cpu_bound = None
    if bound is not None and off["trial_wall_s_total"]:
        driver_rates = {side: s["driver_cpu_during_trials_s"] / s["trial_wall_s_total"] for side, s in sides.items()}
        cpu_bound = bound + max(0.0, driver_rates["on"] - driver_rates["off"])
    return {
        "ratios_on_over_off": ratios,
        "paired": paired,
        "worker_cpu_bound": bound,
        "cpu_bound": cpu_bound,
        "goal": {"max_trial_cost": GOAL_COST, "measure": measure, "trial_cost": cost, "met": cost <= GOAL_COST},
    }


def noise_floor(runs: list[dict[str, Any]]) -> float | None:
    """The paired per-epoch ratio between consecutive rounds of one side (the same seed suggests the same configs
    each round): how far the paired measure strays with nothing changed, to set beside the on / off one."""
    if len(runs) < 2:
        return None
    return paired_ratios(runs[:-1], runs[1:])["s_per_epoch_ratio"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--rounds", type=int, help="searches of each side (default 2 with --quick, else 6)")
    p.add_argument(
        "--trials", type=int, help=f"trials per search (default {QUICK_TRIALS} with --quick, else the demo file's)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every search (default %(default)s)")
    args = common.parse_args(p, argv, sizes={"rounds": (2, 6), "trials": (QUICK_TRIALS, None)})
    space = demo_space()
    out: dict[str, Any] = {
        "space": str(space.relative_to(common.ROOT)),
        "rounds": args.rounds,
        "seed": args.seed,
        "trials": args.trials,
        "cores": common.cpu_count(),
        "runs": {side: [] for side in SIDES},
    }
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
    out.update(compare(out["sides"], paired_ratios(out["runs"]["off"], out["runs"]["on"])))
    out["paired"]["interval"] = round_interval(out["runs"]["off"], out["runs"]["on"])
    out["noise_floor"] = {side: noise_floor(runs) for side, runs in out["runs"].items()}
    report(out)
    return common.finish("review_cost", args.quick, out, args.out)


def report(out: dict[str, Any]) -> None:
    off, on, ratios, paired = out["sides"]["off"], out["sides"]["on"], out["ratios_on_over_off"], out["paired"]
    rows = [[label, off[key], on[key], ratios[key]] for label, key in COMPARED.items()] + [
        [f"paired: trial time per epoch ({paired['pairs']} pairs)", None, None, paired["s_per_epoch_ratio"]],
        ["paired: trial training time per epoch", None, None, paired["train_s_per_epoch_ratio"]],
        [
            "driver waited for the review worker, median (s)",
            off["review_wait_s_median"],
            on["review_wait_s_median"],
            None,
        ],
        ["review worker: warm-up imports, median (CPU s)", None, on["worker_warm_up_cpu_s_median"], None],
        ["review worker: one job, median (CPU s)", None, on["worker_job_cpu_s_median"], None],
        ["review worker: CPU s while trials ran (all rounds)", None, on["worker_cpu_during_trials_s"], None],
        [
            "driver: CPU s while trials ran (all rounds)",
            off["driver_cpu_during_trials_s"],
            on["driver_cpu_during_trials_s"],
            None,
        ],
        ["trials' wall time, summed (s)", off["trial_wall_s_total"], on["trial_wall_s_total"], None],
        ["trials measured", off["trials_measured"], on["trials_measured"], None],
        ["trials with review artifacts", off["trials_reviewed"], on["trials_reviewed"], None],
        ["epochs reached, median", off["epochs_median"], on["epochs_median"], None],
        ["best value, median", off["best_median"], on["best_median"], None],
    ]
    title = f"Review artifacts off vs on: {out['space']}, {out['rounds']} rounds of each, seed {out['seed']}"
    common.print_table(["measure", "off", "on", "on / off"], rows, title)
    goal = out["goal"]
    verdict = "met" if goal["met"] else "NOT met"
    print(f"\npaired up {paired['pairs']} of {paired['trials']} trials (same round, same config)")
    if paired.get("per_round"):
        print(
            "paired ratio of each round (the side that ran first): "
            + ", ".join(
                "n/a" if ratio is None else f"{ratio - 1:+.1%} ({side_order(i)[0]})"
                for i, ratio in enumerate(paired["per_round"])
            )
        )
    if paired.get("interval"):
        low, high = paired["interval"]
        print(f"80% interval of the paired ratio, resampling whole rounds: {low - 1:+.2%} .. {high - 1:+.2%}")
    floor = out.get("noise_floor", {})
    if all(floor.get(side) is not None for side in SIDES):
        print(
            "noise floor, the same paired ratio between consecutive rounds of one side: "
            + ", ".join(f"{side} {floor[side] - 1:+.2%}" for side in SIDES)
        )
    if out.get("worker_cpu_bound") is not None:
        print(
            f"upper bound from the worker's CPU time while trials ran, over the trials' summed wall time: "
            f"{out['worker_cpu_bound']:.2%}"
        )
    if out.get("cpu_bound") is not None:
        print(
            f"... with the driver's extra CPU time while trials ran (on minus off, per trial second): "
            f"{out['cpu_bound']:.2%}"
        )
    print(
        f"goal: review artifacts cost <= {goal['max_trial_cost']:.0%} of a trial's wall time, by the "
        f"{goal['measure']}: {goal['trial_cost']:+.2%} ({verdict})",
        flush=True,
    )


if __name__ == "__main__":
    main()
