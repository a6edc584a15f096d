"""Logging cost per reported result: the orchestrator's MLflow callback vs Ray's ``MLflowLoggerCallback``.

The same small Ray Tune experiment (K trials x M results each, a trainable that reports every ``pause``
seconds) runs three times on one local Ray against one real ``mlflow server``:

* no logging callback (the baseline);
* ``orchestrator.engine.tracking_callback.MlflowTrialCallback`` (nested runs, the driver only enqueues; a
  background thread sends batches through ``AsyncTrialLogger``);
* ``ray.air.integrations.mlflow.MLflowLoggerCallback`` (on the driver, one HTTP call per value).

Reported: (wall - wall without logging) / results, and the driver-side time spent inside each callback's
hooks (per-result hooks, and the end of the experiment, where the orchestrator waits for its queue to drain),
plus a check that every trial's metrics reached the server.

    python -m bench.logging --quick     # K=6 trials x M=10 results
    python -m bench.logging             # K=20 x M=25
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common
from bench.spacetools import make_version

HOOKS = ("setup", "on_trial_start", "on_trial_result", "on_trial_complete", "on_experiment_end")


def reporting_trainable(config: dict[str, Any]) -> None:
    """Reports ``results`` times, ``pause`` seconds apart: loss, accuracy and the 1-based epoch."""
    from ray import tune

    for epoch in range(1, int(config["results"]) + 1):
        time.sleep(float(config["pause"]))
        tune.report({"loss": config["x"] / epoch, "accuracy": 1 - config["x"] / epoch, "epoch": epoch})


class HookTimer:
    """Mixin: accumulates the wall time spent in each Tune callback hook of the class it precedes in the MRO."""

    def _timed(self, hook: str, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return getattr(super(), hook)(*args, **kwargs)
        finally:
            seconds = self.__dict__.setdefault("hook_s", {})
            seconds[hook] = seconds.get(hook, 0.0) + time.perf_counter() - t0

    def setup(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("setup", *args, **kwargs)

    def on_trial_start(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("on_trial_start", *args, **kwargs)

    def on_trial_result(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("on_trial_result", *args, **kwargs)

    def on_trial_complete(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("on_trial_complete", *args, **kwargs)

    def on_experiment_end(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("on_experiment_end", *args, **kwargs)


def orchestrator_callback(uri: str, root: Path) -> Any:
    """``MlflowTrialCallback`` under a parent run, as ``run_search`` sets it up (study ``bench_logging``)."""
    from orchestrator.engine.tracking_callback import MlflowTrialCallback
    from orchestrator.tracking import schema
    from orchestrator.tracking.async_logger import SpillFile
    from orchestrator.tracking.mlflow_store import MlflowStore

    class TimedMlflowTrialCallback(HookTimer, MlflowTrialCallback):
        pass

    version = make_version("bench_logging", {"x": {"uniform": [0.0, 1.0]}}, trainable="analytic")
    store = MlflowStore(uri)
    experiment = store.experiment_id(version.study)
    assert experiment is not None
    search_tags = {schema.KIND: schema.SEARCH_RUN, schema.STUDY: version.study}
    parent = store.create_run(experiment, "bench_logging parent", search_tags, {})
    return TimedMlflowTrialCallback(version, uri, experiment, parent, SpillFile.local(root / "spill.jsonl"))


def ray_callback(uri: str) -> Any:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class TimedMLflowLoggerCallback(HookTimer, MLflowLoggerCallback):
        pass

    return TimedMLflowLoggerCallback(tracking_uri=uri, experiment_name="bench_logging_ray", save_artifact=False)


def run_experiment(
    name: str, trials: int, results: int, pause: float, storage: Path, callback: Any | None
) -> dict[str, Any]:
    from ray import tune

    tuner = tune.Tuner(
        reporting_trainable,
        param_space={"x": tune.uniform(0.1, 1.0), "results": results, "pause": pause},
        tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=common.cpu_count(), reuse_actors=True),
        run_config=tune.RunConfig(
            name=name, storage_path=str(storage), verbose=0, callbacks=[callback] if callback is not None else None
        ),
    )
    fit = common.timed_fit(tuner)
    hooks = dict(getattr(callback, "hook_s", {})) if callback is not None else {}
    return {"wall_s": fit.seconds, "errors": fit.errors, "hook_s": hooks}


def count_values(uri: str, experiment: str, keys: tuple[str, ...]) -> dict[str, int]:
    """Runs in ``experiment`` and how many logged steps of each key they hold together."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = [r for r in client.search_runs([exp.experiment_id]) if "loss" in r.data.metrics] if exp else []
    counts = {"runs": len(runs)}
    for key in keys:
        counts[key] = sum(len(client.get_metric_history(r.info.run_id, key)) for r in runs)
    return counts


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--trials", type=int, help="K (default 6 quick, 20 full)")
    p.add_argument("--results", type=int, help="M results per trial (default 10 quick, 25 full)")
    p.add_argument("--pause", type=float, default=0.05, help="seconds between results (default 0.05)")
    args = common.parse_args(p, argv, sizes={"trials": (6, 20), "results": (10, 25)})
    k, m = args.trials, args.results
    out: dict[str, Any] = {"trials": k, "results_per_trial": m, "results": k * m, "pause_s": args.pause, "runs": {}}
    with common.ray_and_mlflow("logging", out, common.cpu_count()) as (root, server):
        setups: list[tuple[str, Callable[[], Any]]] = [
            ("none", lambda: None),
            ("orchestrator", lambda: orchestrator_callback(server.uri, root)),
            ("ray MLflowLoggerCallback", lambda: ray_callback(server.uri)),
        ]
        run_experiment("warm-up", 2, 1, 0.0, root / "ray", None)  # worker start-up and imports, untimed
        for name, make in setups:
            print(f"{k} trials x {m} results, logging: {name} ...", flush=True)
            out["runs"][name] = run_experiment(name.split()[0], k, m, args.pause, root / "ray", make())
        out["logged"] = {
            "orchestrator": count_values(server.uri, "bench_logging", ("loss", "accuracy")),
            "ray MLflowLoggerCallback": count_values(server.uri, "bench_logging_ray", ("loss", "accuracy")),
        }
    add_costs(out)
    report(out)
    return common.finish("logging", args.quick, out, args.out)


def add_costs(out: dict[str, Any]) -> None:
    base, n = out["runs"]["none"]["wall_s"], out["results"]
    for r in out["runs"].values():
        r["cost_per_result_ms"] = (r["wall_s"] - base) / n * 1000
        hooks = r["hook_s"]
        r["per_result_hook_ms"] = hooks.get("on_trial_result", 0.0) / n * 1000
        r["driver_hook_s"] = sum(hooks.values())
    o, ray_ = out["runs"]["orchestrator"], out["runs"]["ray MLflowLoggerCallback"]
    out["ray_over_orchestrator_hook_time"] = ray_["per_result_hook_ms"] / max(o["per_result_hook_ms"], 1e-6)


def report(out: dict[str, Any]) -> None:
    rows = []
    for name, r in out["runs"].items():
        h = r["hook_s"]
        logged = out.get("logged", {}).get(name, {})
        rows.append(
            [
                name,
                r["wall_s"],
                r["cost_per_result_ms"],
                r["per_result_hook_ms"],
                h.get("on_trial_start"),
                h.get("on_trial_complete"),
                h.get("on_experiment_end"),
                r["driver_hook_s"],
                logged.get("loss"),
            ]
        )
    title = (
        f"{out['trials']} trials x {out['results_per_trial']} results ({out['results']} results, one every "
        f"{out['pause_s']} s per trial), real mlflow server"
    )
    headers = [
        "logging",
        "wall s",
        "cost ms/result",
        "on_result ms/result",
        "trial start s",
        "trial end s",
        "experiment end s",
        "all hooks s",
        "loss values on server",
    ]
    common.print_table(headers, rows, title)
    print(
        f"\ncost ms/result = (wall - wall without logging) / results (noise: a few 100 ms of wall over all "
        f"results); hook columns: driver time inside the callback's hooks, summed. Per result, Ray's callback "
        f"holds the driver {out['ray_over_orchestrator_hook_time']:.0f}x as long as the orchestrator's."
    )


if __name__ == "__main__":
    main()
