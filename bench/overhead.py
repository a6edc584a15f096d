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

    python -m bench.overhead --quick      # N=20 one-second trials
    python -m bench.overhead              # N=200
"""

from __future__ import annotations

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

GOAL_RATIO = 1.10  # orchestrator with logging on, fit time / ideal
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


def run_cli(space: Path, uri: str, storage: Path, concurrency: int) -> dict[str, Any]:
    """The whole ``orchestrator run`` command in a fresh process: imports, Ray start, search, shutdown."""
    cmd = [
        str(Path(sys.executable).parent / "orchestrator"),
        "run",
        str(space),
        "--tracking-uri",
        uri,
        "--storage",
        str(storage),
        "--concurrency",
        str(concurrency),
        "--no-live",
    ]
    # RAY_ADDRESS=local: without it, `orchestrator run` attaches to any Ray already running on the machine
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_ADDRESS": "local"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        raise RuntimeError(f"orchestrator run failed ({proc.returncode}):\n{tail}")
    m = re.search(r"(\d+) finished, (\d+) failed in ([\d.]+)s", proc.stdout)
    fit = float(m.group(3)) if m else None
    return {"wall_s": wall, "fit_s": fit, "finished": int(m.group(1)) if m else None}


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
    args = common.parse_args(p, argv, sizes={"trials": (20, 200)})
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
    with common.ray_and_mlflow("overhead", out, concurrency) as (root, server):
        space = write_space(root, "bench_overhead", n, args.epochs, args.sleep)
        print(f"orchestrator: {n} trials, logging to {server.uri} ...", flush=True)
        out["orchestrator"] = run_orchestrator(space, server.uri, root / "ray", concurrency, slot_s)
        out["orchestrator"]["logged"] = count_logged(server.uri, "bench_overhead")
        print("plain Ray Tune + HyperOptSearch, default settings ...", flush=True)
        out["ray_tune"] = run_plain_tune(n, args.epochs, args.sleep, root / "ray", concurrency)
        print("plain Ray Tune + HyperOptSearch, reuse_actors=True ...", flush=True)
        out["ray_tune_reuse"] = run_plain_tune(n, args.epochs, args.sleep, root / "ray", concurrency, True)
        ray.shutdown()  # the CLI starts a Ray of its own
        if not args.no_cli:
            print("the whole `orchestrator run` command ...", flush=True)
            space = write_space(root, "bench_overhead_cli", n, args.epochs, args.sleep)
            out["orchestrator_cli"] = run_cli(space, server.uri, root / "ray", concurrency)
            out["orchestrator_cli"]["logged"] = count_logged(server.uri, "bench_overhead_cli")
    add_ratios(out)
    report(out)
    return common.finish("overhead", args.quick, out, args.out)


def add_ratios(out: dict[str, Any]) -> None:
    n, ideal, c = out["trials"], out["ideal_s"], out["concurrency"]
    for key in ("orchestrator", "ray_tune", "ray_tune_reuse"):
        fit = out[key]["fit_s"]
        out[key]["ratio_to_ideal"] = fit / ideal
        out[key]["overhead_per_trial_s"] = (fit - ideal) * c / n  # slot-seconds lost per trial
    out["orchestrator"]["call_ratio_to_ideal"] = out["orchestrator"]["call_s"] / ideal
    out["orchestrator_vs_ray_tune"] = out["orchestrator"]["fit_s"] / out["ray_tune"]["fit_s"]
    out["orchestrator_vs_ray_tune_reuse"] = out["orchestrator"]["fit_s"] / out["ray_tune_reuse"]["fit_s"]
    if "orchestrator_cli" in out:
        out["orchestrator_cli"]["ratio_to_ideal"] = out["orchestrator_cli"]["wall_s"] / ideal
    ratio = out["orchestrator"]["ratio_to_ideal"]
    out["goal"] = {
        "target_ratio": GOAL_RATIO,
        "orchestrator_ratio": ratio,
        "met": ratio <= GOAL_RATIO,
        "orchestrator_steady_ratio": out["orchestrator"]["steady_ratio_to_ideal"],
        "ray_published_ratio": RAY_PUBLISHED,
    }


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
    if "orchestrator_cli" in out:
        rows.append(row("`orchestrator run`, fresh process", out["orchestrator_cli"]["wall_s"], "MLflow server"))
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
    g = out["goal"]
    print(
        f"goal: orchestrator fit <= {g['target_ratio']:.2f} x ideal with logging on: {g['orchestrator_ratio']:.3f} "
        f"({'met' if g['met'] else 'NOT met'}; steady state {g['orchestrator_steady_ratio']:.3f}); "
        f"Ray publishes {g['ray_published_ratio']:.2f} x for 10k trials without logging"
    )


if __name__ == "__main__":
    main()
