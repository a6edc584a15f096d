"""Per-trial overhead: the orchestrator (MLflow logging on, real server) vs plain Ray Tune vs the ideal.

N trials of the registered ``analytic`` trainable, which sleeps a fixed time per epoch and reports (and
checkpoints) once per epoch, run at concurrency = CPU cores:

(a) the orchestrator: ``run_search`` on a space file, logging every trial to a real ``mlflow server``;
(b) plain Ray Tune: ``Tuner`` + ``HyperOptSearch`` with default settings, no logging callback, the same
    training function (``orchestrator.engine.trainable.ray_trainable("analytic", ...)``);
(c) the ideal: N x epochs x sleep / concurrency.

(a) and (b) share one local Ray (started once), so their fit times leave Ray's start-up out; the
orchestrator's ``run_search`` call (space loading, store checks, parent run, leaderboard) is timed too,
and finally the whole ``orchestrator run`` command in a fresh process (Python imports, Ray start-up) on
another study of the same size.

The fresh-process runs go through ``bench/startup_trace.py`` (a timeline of the process: imports, Ray's start, the
store, the warm start, the first trial's first result, the end), and ``--before-python`` runs the same command of
another checkout beside it, taking turns (``/work/main/.venv/bin/python``: today's main), so "time to first result"
compares before and after in one run.

Many short trials: N_short trials of 0.2 s (1,000 in full, 100 with --quick) at the same concurrency, the whole
``orchestrator run`` (traced, and the before side) beside plain Ray Tune with actor reuse (its default would start an
actor per trial: seconds each), and the driver's work per trial that the trace times: every callback of the run
(Ray Tune's own loggers included), the searcher as Ray Tune calls it, the study's other live searches' reads.

    python -m bench.overhead --quick      # N=20 one-second trials, 100 short ones
    python -m bench.overhead              # N=200, 1,000 short ones
    python -m bench.overhead --quick --before-python /work/main/.venv/bin/python   # before and after
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import common
from bench.spacetools import version_text

# orchestrator with logging on, fit time / ideal (and the whole fresh `orchestrator run` process / ideal)
QUICK_GOALS = {"fit": 1.2, "cli": 1.5}  # N=20
FULL_GOALS = {"fit": 1.05}  # N=200
RAY_PUBLISHED = 1.14  # Ray's figure for 10k one-second trials on 16 CPUs, no logging
PARAMS = {"x": {"uniform": [-5.0, 10.0]}, "y": {"uniform": [0.0, 15.0]}}


def write_space(root: Path, study: str, trials: int, epochs: int, sleep: float) -> Path:
    folder = root / "search_spaces" / study
    folder.mkdir(parents=True, exist_ok=True)
    text = version_text(
        study,
        PARAMS,
        schedule={"scheduler": "fifo", "max_epochs": epochs, "grace_period": 1},
        resources={"cpu": 1, "gpu": 0},
        search={"trials": trials, "startup_trials": 10},
        fixed={"function": "branin", "sleep": sleep},
    )
    path = folder / "v1.yaml"
    path.write_text(text)
    return path


@contextmanager
def completion_times(times: list[float]) -> Iterator[None]:
    """Record when the driver learns that each trial completed, through the orchestrator's own callback hook
    (wrapped here for the benchmark only; the added cost is one ``time.perf_counter`` per trial)."""
    from orchestrator.engine.tracking_callback import MlflowTrialCallback

    original = MlflowTrialCallback.on_trial_complete

    def recording(self: Any, *args: Any, **kwargs: Any) -> None:
        times.append(time.perf_counter())
        original(self, *args, **kwargs)

    MlflowTrialCallback.on_trial_complete = recording  # type: ignore[method-assign]
    try:
        yield
    finally:
        MlflowTrialCallback.on_trial_complete = original  # type: ignore[method-assign]


def phases(t0: float, done: list[float], fit_s: float, slot_s: float, concurrency: int) -> dict[str, float]:
    """Start-up (until the first trial completes, less one trial), steady state (first to last completion,
    against the ideal), and tail (last completion to the end of fit)."""
    done = sorted(done)
    n = len(done)
    steady_ideal = (n - 1) * slot_s / concurrency
    return {
        "first_done_s": done[0] - t0,
        "startup_s": done[0] - t0 - slot_s,
        "steady_s": done[-1] - done[0],
        "steady_ratio_to_ideal": (done[-1] - done[0]) / steady_ideal if steady_ideal else float("nan"),
        "tail_s": t0 + fit_s - done[-1],
    }


def run_orchestrator(space: Path, uri: str, storage: Path, concurrency: int, slot_s: float) -> dict[str, Any]:
    """``run_search`` in this process, on the Ray that is already running."""
    from orchestrator.api import run_search
    from orchestrator.engine.runner import SearchOptions

    lines: list[str] = []
    done: list[float] = []
    options = SearchOptions(concurrency=concurrency, tracking_uri=uri, storage=str(storage), live=False)
    with completion_times(done), common.swallow_stdout():
        t0 = time.perf_counter()
        result = run_search(space, options, echo=lines.append)
        call_s = time.perf_counter() - t0
    fit_start = t0 + call_s - result.wall_s  # close enough: only the summary follows tuner.fit()
    return {
        "fit_s": result.wall_s,
        "call_s": call_s,
        "finished": result.finished,
        "failed": result.failed,
        "best": result.best_value,
        **phases(fit_start, done, result.wall_s, slot_s, concurrency),
    }


def run_plain_tune(
    trials: int, epochs: int, sleep: float, storage: Path, concurrency: int, reuse_actors: bool | None = None
) -> dict[str, Any]:
    """Ray Tune + ``HyperOptSearch`` (defaults), no logging, the same training function."""
    from ray import tune
    from ray.tune.search.hyperopt import HyperOptSearch

    from orchestrator.engine.trainable import ray_trainable

    done: list[float] = []

    class Completions(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            done.append(time.perf_counter())

    param_space = {
        "function": "branin",
        "sleep": sleep,
        "max_epochs": epochs,
        "seed": 0,
        "x": tune.uniform(-5.0, 10.0),
        "y": tune.uniform(0.0, 15.0),
    }
    extra = {} if reuse_actors is None else {"reuse_actors": reuse_actors}
    tuner = tune.Tuner(
        ray_trainable("analytic", 1, 0),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            search_alg=HyperOptSearch(random_state_seed=0),
            num_samples=trials,
            max_concurrent_trials=concurrency,
            **extra,
        ),
        run_config=tune.RunConfig(
            name=f"plain-{reuse_actors}", storage_path=str(storage), verbose=0, callbacks=[Completions()]
        ),
    )
    fit = common.timed_fit(tuner)
    return {
        "fit_s": fit.seconds,
        "finished": len(fit.grid) - fit.errors,
        "failed": fit.errors,
        **phases(fit.started, done, fit.seconds, epochs * sleep, concurrency),
    }


TRACE_SCRIPT = Path(__file__).with_name("startup_trace.py")
SHORT_SLEEP_S = 0.2  # the many-short-trials case: one epoch of this many seconds per trial


def run_cli(
    space: Path, uri: str, storage: Path, concurrency: int, python: str = sys.executable, label: str = "after"
) -> dict[str, Any]:
    """The whole ``orchestrator run`` command in a fresh process of ``python`` (this checkout's, or another's: the
    before side), traced by ``bench/startup_trace.py``: imports, Ray start, search, shutdown; its timeline and the
    driver's work per trial."""
    from bench import startup_trace

    events_file = storage.parent / f"{space.parent.name}-{label}-events.json"
    output = storage.parent / f"{space.parent.name}-{label}-output.txt"
    cmd = [python, str(TRACE_SCRIPT), str(events_file), "--", "run", str(space), "--tracking-uri", uri]
    cmd += ["--storage", str(storage), "--concurrency", str(concurrency), "--no-live"]
    # RAY_ADDRESS=local: without it, `orchestrator run` attaches to any Ray already running on the machine. The
    # process imports its own checkout's orchestrator (the script runs without this folder on its path).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONUNBUFFERED": "1", "RAY_ADDRESS": "local"}
    with output.open("w") as out:
        started = time.time()
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=storage.parent, check=False)
        wall = time.time() - started
    text = output.read_text()
    if code.returncode != 0:
        raise RuntimeError(f"orchestrator run ({label}) failed ({code.returncode}):\n{text[-3000:]}")
    events = json.loads(events_file.read_text())
    timeline = startup_trace.timeline(events, started, started + wall)
    m = re.search(r"(\d+) finished, (\d+) failed in ([\d.]+)s", text)
    fit = (timeline["fit_end_s"] or 0) - (timeline["fit_start_s"] or 0)
    return {
        "python": python,
        "wall_s": wall,
        "fit_s": fit,
        "finished": int(m.group(1)) if m else None,
        "timeline": timeline,
        "driver": startup_trace.driver_work(events),
    }


def cli_sides(before_python: str | None, first: str = "after") -> list[tuple[str, str]]:
    """The (label, python) of each fresh-process run: this checkout, and the before side when asked, ``first`` first."""
    sides = [("after", sys.executable)] + ([("before", before_python)] if before_python else [])
    return sorted(sides, key=lambda side: side[0] != first)


def count_logged(uri: str, study: str) -> dict[str, int]:
    """How many trial runs the server holds for ``study``, and how many ended FINISHED."""
    from orchestrator.tracking.mlflow_store import MlflowStore

    rows = MlflowStore(uri).trials(study)
    return {
        "runs": len(rows),
        "finished": sum(r.status == "FINISHED" for r in rows),
        "with_all_epochs": sum("loss" in r.metrics for r in rows),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--trials", type=int, help="N (default 20 with --quick, else 200)")
    p.add_argument("--epochs", type=int, default=1, help="results per trial (default 1)")
    p.add_argument("--sleep", type=float, default=1.0, help="seconds per epoch (default 1.0)")
    p.add_argument("--no-cli", action="store_true", help="skip timing the whole `orchestrator run` command")
    p.add_argument(
        "--short-trials", type=int, help="the many-short-trials case's N (default 100 with --quick, else 1000)"
    )
    p.add_argument("--no-short", action="store_true", help="skip the many-short-trials case")
    p.add_argument(
        "--before-python",
        help="the Python of another checkout (e.g. /work/main/.venv/bin/python): its `orchestrator run` is timed "
        "beside this one's, taking turns",
    )
    args = common.parse_args(p, argv, sizes={"trials": (20, 200), "short_trials": (100, 1000)})
    n, concurrency = args.trials, common.cpu_count()
    ideal = n * args.epochs * args.sleep / concurrency
    out: dict[str, Any] = {
        "trials": n,
        "epochs": args.epochs,
        "sleep_s": args.sleep,
        "concurrency": concurrency,
        "ideal_s": ideal,
    }
    import ray

    slot_s = args.epochs * args.sleep
    short_n = 0 if args.no_short else args.short_trials
    with common.ray_and_mlflow("overhead", out, concurrency) as (root, server):
        space = write_space(root, "bench_overhead", n, args.epochs, args.sleep)
        print(f"orchestrator: {n} trials, logging to {server.uri} ...", flush=True)
        out["orchestrator"] = run_orchestrator(space, server.uri, root / "ray", concurrency, slot_s)
        out["orchestrator"]["logged"] = count_logged(server.uri, "bench_overhead")
        print("plain Ray Tune + HyperOptSearch, default settings ...", flush=True)
        out["ray_tune"] = run_plain_tune(n, args.epochs, args.sleep, root / "ray", concurrency)
        print("plain Ray Tune + HyperOptSearch, reuse_actors=True ...", flush=True)
        out["ray_tune_reuse"] = run_plain_tune(n, args.epochs, args.sleep, root / "ray", concurrency, True)
        if short_n:
            print(f"many short trials: plain Ray Tune + HyperOptSearch, reuse_actors=True, {short_n} x 0.2 s ...")
            out["short"] = {
                "trials": short_n,
                "sleep_s": SHORT_SLEEP_S,
                "ideal_s": short_n * SHORT_SLEEP_S / concurrency,
                "ray_tune_reuse": run_plain_tune(short_n, 1, SHORT_SLEEP_S, root / "ray", concurrency, True),
            }
        ray.shutdown()  # each command starts a Ray of its own
        if not args.no_cli:
            out["orchestrator_cli_sides"] = {}
            for label, python in cli_sides(args.before_python):
                print(f"the whole `orchestrator run` command ({label}: {python}) ...", flush=True)
                study = f"bench_overhead_cli_{label}"
                side_space = write_space(root, study, n, args.epochs, args.sleep)
                run = run_cli(side_space, server.uri, root / "ray", concurrency, python, label)
                run["logged"] = count_logged(server.uri, study)
                out["orchestrator_cli_sides"][label] = run
            out["orchestrator_cli"] = out["orchestrator_cli_sides"]["after"]
        if short_n:
            out["short"]["orchestrator_cli"] = {}
            for label, python in cli_sides(args.before_python, first="before"):
                print(f"many short trials: `orchestrator run` ({label}) ...", flush=True)
                study = f"bench_short_{label}"
                short_space = write_space(root, study, short_n, 1, SHORT_SLEEP_S)
                run = run_cli(short_space, server.uri, root / "ray", concurrency, python, label)
                run["logged"] = count_logged(server.uri, study)
                out["short"]["orchestrator_cli"][label] = run
    add_ratios(out, args.quick)
    report(out)
    return common.finish("overhead", args.quick, out, args.out)


def add_ratios(out: dict[str, Any], quick: bool) -> None:
    n, ideal, c = out["trials"], out["ideal_s"], out["concurrency"]
    for key in ("orchestrator", "ray_tune", "ray_tune_reuse"):
        fit = out[key]["fit_s"]
        out[key]["ratio_to_ideal"] = fit / ideal
        out[key]["overhead_per_trial_s"] = (fit - ideal) * c / n  # slot-seconds lost per trial
    out["orchestrator"]["call_ratio_to_ideal"] = out["orchestrator"]["call_s"] / ideal
    out["orchestrator_vs_ray_tune"] = out["orchestrator"]["fit_s"] / out["ray_tune"]["fit_s"]
    out["orchestrator_vs_ray_tune_reuse"] = out["orchestrator"]["fit_s"] / out["ray_tune_reuse"]["fit_s"]
    for run in out.get("orchestrator_cli_sides", {}).values():
        run["ratio_to_ideal"] = run["wall_s"] / ideal
        run["fit_ratio_to_ideal"] = run["fit_s"] / ideal
    short = out.get("short")
    if short:
        short["ray_tune_reuse"]["ratio_to_ideal"] = short["ray_tune_reuse"]["fit_s"] / short["ideal_s"]
        for run in short["orchestrator_cli"].values():
            run["ratio_to_ideal"] = run["wall_s"] / short["ideal_s"]
            run["fit_ratio_to_ideal"] = run["fit_s"] / short["ideal_s"]
            run["fit_vs_ray_tune_reuse"] = run["fit_s"] / short["ray_tune_reuse"]["fit_s"]
    ratio = out["orchestrator"]["ratio_to_ideal"]
    goals = QUICK_GOALS if quick else FULL_GOALS
    out["goal"] = {
        "target_ratio": goals["fit"],
        "orchestrator_ratio": ratio,
        "met": ratio <= goals["fit"],
        "orchestrator_steady_ratio": out["orchestrator"]["steady_ratio_to_ideal"],
        "ray_published_ratio": RAY_PUBLISHED,
    }
    if "cli" in goals and "orchestrator_cli" in out:
        cli_ratio = out["orchestrator_cli"]["ratio_to_ideal"]
        out["goal"] |= {"cli_target_ratio": goals["cli"], "cli_ratio": cli_ratio, "cli_met": cli_ratio <= goals["cli"]}


def report(out: dict[str, Any]) -> None:
    o = out["orchestrator"]
    n, c, ideal = out["trials"], out["concurrency"], out["ideal_s"]

    def row(what: str, wall: float, logging: str, r: dict[str, Any] | None = None) -> list[Any]:
        steady = [r["startup_s"], r["steady_ratio_to_ideal"], r["tail_s"]] if r else [None, None, None]
        return [what, wall, wall / ideal, (wall - ideal) * c / n, *steady, logging]

    rows = [
        row("ideal (N x epochs x sleep / concurrency)", ideal, "-"),
        row("plain Ray Tune + HyperOptSearch (defaults), fit", out["ray_tune"]["fit_s"], "none", out["ray_tune"]),
        row(
            "plain Ray Tune + HyperOptSearch, reuse_actors, fit",
            out["ray_tune_reuse"]["fit_s"],
            "none",
            out["ray_tune_reuse"],
        ),
        row("orchestrator, tuner.fit", o["fit_s"], "MLflow server", o),
        row("orchestrator, whole run_search call", o["call_s"], "MLflow server"),
    ]
    for label, run in sorted(out.get("orchestrator_cli_sides", {}).items()):
        rows.append(row(f"`orchestrator run` ({label}), fresh process", run["wall_s"], "MLflow server"))
    title = (
        f"{n} trials x {out['epochs']} epoch(s) x {out['sleep_s']} s, concurrency {c} "
        f"(Ray start-up {out['ray_startup_s']:.1f} s not counted in fit times)"
    )
    headers = ["what", "wall s", "x ideal", "overhead s/trial", "start-up s", "steady x ideal", "tail s", "logging"]
    common.print_table(headers, rows, title)
    logged = o["logged"]
    print(
        f"\nstart-up: until the first trial completes, less one trial's sleep; steady: first to last completion "
        f"vs (N-1) x sleep / concurrency; tail: last completion to the end of fit (the orchestrator flushes MLflow)"
        f"\nMLflow holds {logged['runs']} trial runs of the orchestrator's search ({logged['finished']} FINISHED); "
        f"orchestrator fit / plain Tune fit = {out['orchestrator_vs_ray_tune']:.3f} (defaults), "
        f"{out['orchestrator_vs_ray_tune_reuse']:.3f} (reuse_actors)"
    )
    report_cli(out)
    report_short(out)
    g = out["goal"]
    print(
        f"goal: orchestrator fit <= {g['target_ratio']:.2f} x ideal with logging on: {g['orchestrator_ratio']:.3f} "
        f"({'met' if g['met'] else 'NOT met'}; steady state {g['orchestrator_steady_ratio']:.3f}); "
        f"Ray publishes {g['ray_published_ratio']:.2f} x for 10k trials without logging"
    )
    if "cli_target_ratio" in g:
        print(
            f"goal: a fresh `orchestrator run` <= {g['cli_target_ratio']:.2f} x ideal: {g['cli_ratio']:.3f} "
            f"({'met' if g['cli_met'] else 'NOT met'})"
        )


# The landmarks of a fresh process's timeline, in order: (label, ``startup_trace.timeline`` key)
LANDMARKS = (
    ("imports done (engine)", "imports_done_s"),
    ("ray.init begins", "ray_init_start_s"),
    ("tracking store open", "store_open_end_s"),
    ("warm start read", "warm_start_end_s"),
    ("ray.init done", "ray_init_end_s"),
    ("tuner.fit begins", "fit_start_s"),
    ("first trial's actor started", "first_trial_start_s"),
    ("first trial's first result", "first_result_s"),
    ("last trial complete", "last_complete_s"),
    ("tuner.fit done", "fit_end_s"),
    ("ray.shutdown begins", "shutdown_start_s"),
    ("ray.shutdown done", "shutdown_end_s"),
    ("process ended", "process_end_s"),
)


def report_cli(out: dict[str, Any]) -> None:
    """The fresh processes side by side: seconds from the process's start to each landmark."""
    sides = out.get("orchestrator_cli_sides")
    if not sides:
        return
    labels = sorted(sides, key=lambda label: label != "before")
    rows = [[what, *(sides[label]["timeline"].get(key) for label in labels)] for what, key in LANDMARKS]
    rows.append(["x ideal (process)", *(sides[label]["ratio_to_ideal"] for label in labels)])
    rows.append(["x ideal (tuner.fit)", *(sides[label]["fit_ratio_to_ideal"] for label in labels)])
    title = (
        f"\n`orchestrator run`, fresh process: seconds from its start ({out['trials']} trials, ideal {out['ideal_s']}s)"
    )
    common.print_table(["landmark", *(f"{label} s" for label in labels)], rows, title)


def report_short(out: dict[str, Any]) -> None:
    short = out.get("short")
    if not short:
        return
    plain = short["ray_tune_reuse"]
    rows: list[list[Any]] = [
        ["plain Ray Tune + HyperOptSearch, reuse_actors, fit", plain["fit_s"], plain["ratio_to_ideal"]]
    ]
    rows[0] += [None, None, None, None, None, None]
    sides = short["orchestrator_cli"]
    for label in sorted(sides, key=lambda label: label != "before"):
        run, work = sides[label], sides[label]["driver"]
        rows.append(
            [
                f"`orchestrator run` ({label}), tuner.fit",
                run["fit_s"],
                run["fit_ratio_to_ideal"],
                run["wall_s"],
                work["callbacks_ms_per_trial"],
                work["searcher_ms_per_trial"],
                work["peers_wait_ms_per_trial"],
                work["peers_read_calls"],
                work["peers_read_ms_per_trial"],
            ]
        )
    title = (
        f"\nmany short trials: {short['trials']} x {short['sleep_s']} s at concurrency {out['concurrency']}, "
        f"ideal {short['ideal_s']:.1f} s; the driver's work per trial (ms): every callback of the run (Ray Tune's "
        "loggers too), the searcher as Ray Tune calls it, the suggestions' wait for the study's other live searches; "
        "and the peers thread's reads of the store (every 2 s, off the trials' path)"
    )
    headers = [
        "what",
        "fit s",
        "x ideal",
        "process s",
        "callbacks ms",
        "searcher ms",
        "peers wait ms",
        "peer reads",
        "reads ms (thread)",
    ]
    common.print_table(headers, rows, title)


if __name__ == "__main__":
    main()
