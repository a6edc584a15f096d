"""Search at scale: ASHA-aware TPE, concurrent suggestions with a liar, TPE with many carried trials.

Three parts, each side by side in one run, medians over seeds, searchers driven through their Ray Tune
``Searcher`` API in-process (no cluster):

* **multi-fidelity**: an analytic objective whose learning curves cross (``learning_curve``: a high learning
  rate starts fast and plateaus high, a low one starts slow and ends best), ASHA (grace 1, reduction 3, 27
  epochs: rungs 1, 3, 9) run by Ray Tune's own ASHA bracket (``ray.tune.schedulers.async_hyperband._Bracket``,
  what ``ASHAScheduler`` uses) fed by hand. Best final loss (at 27 epochs) after N trials for fidelity-aware
  ``tpe`` and ``optuna_tpe``, the same searchers treating every trial as final (as before budgets), Ray's
  ``HyperOptSearch`` + ASHA, Optuna TPE + ``HyperbandPruner`` (a study of its own) and random + ASHA.
  Trials run one at a time. The ConvNet-digits variant is not here.
* **parallel**: concurrency 8 (eight trials pending; the oldest finishes, the next is suggested) against
  sequential suggestion, on Branin, Hartmann-6 and the conditional space of ``bench.search_quality``, for
  each ``search.liar``. Goal: best-after-N within 5% of the gap to random of sequential, and better than
  the liar off.
* **many priors**: ``tpe`` suggestion latency with 1,000 / 5,000 / 10,000 carried trials, fitting on a
  selection of 1,000 (``HyperoptSearcher.model_trials``, now) against all of them (before); and the quality
  cost: best of N suggestions after P random carried trials on the same three problems, both ways.

    python -m bench.search_at_scale --quick    # under 3 minutes on 2 cores
    python -m bench.search_at_scale            # more seeds and trials
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from bench import common, warmstart
from bench.search_quality import Problem, analytic_problems, summarize, variant, with_search
from bench.spacetools import make_version, sample_config
from orchestrator.engine.searchers import searcher_class
from orchestrator.engine.searchers.hyperopt import HyperoptSearcher
from orchestrator.spaces import StudyVersion

if TYPE_CHECKING:
    from ray.tune.search import Searcher

    from orchestrator.engine.searchers.base import SpaceSearcher

Objective = Callable[[Mapping[str, Any]], float]
LATENCY_PRIORS = (1000, 5000, 10000)
LATENCY_GOAL_MS = {5000: 50.0, 10000: 100.0}
PARALLEL_GOAL = 0.05  # of the gap between sequential and random


def median_of(bests: Sequence[float]) -> float:
    return float(np.median(bests))


# --------------------------------------------------------------------------- multi-fidelity

MF_PARAMS: dict[str, Any] = {
    "lr": {"loguniform": [1.0e-4, 1.0]},
    "depth": {"int": [1, 8]},
    "dropout": {"uniform": [0.0, 0.5]},
}
MF_SCHEDULE = {"scheduler": "asha", "max_epochs": 27, "grace_period": 1, "reduction_factor": 3}


def learning_curve(c: Mapping[str, Any], epoch: int) -> float:
    """Loss after ``epoch`` epochs: from 1 down to a plateau, ``plateau + (1 - plateau) * exp(-epoch / tau)``.

    ``u = log10(lr)``: the plateau is lowest near u = -2.7 (with depth 5 and dropout 0.2), the time constant
    ``tau = 0.3 * 10**(-u/2)`` grows as lr falls (0.3 epochs at lr 1, 9.5 at 1e-3). After one epoch the best
    trials have u near -0.7; after 27 the best have u near -2.5: early ranking misleads."""
    u = math.log10(c["lr"])
    plateau = 0.05 + 0.06 * (u + 2.7) ** 2 + 0.02 * (c["depth"] - 5) ** 2 / 9 + 0.1 * (c["dropout"] - 0.2) ** 2
    tau = 0.3 * 10 ** (-u / 2)
    return plateau + (1 - plateau) * math.exp(-epoch / tau)


@dataclasses.dataclass
class FidelityTrace:
    """One search under ASHA: the epochs spent, and each trial that ran to the end as (epochs spent by then,
    its final loss)."""

    finals: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    epochs: int = 0

    @property
    def best(self) -> float:
        return min(loss for _, loss in self.finals)

    def best_within(self, epochs: int) -> float:
        """The best final loss reached within ``epochs`` epochs of training (inf when none was)."""
        return min((loss for spent, loss in self.finals if spent <= epochs), default=math.inf)


class Asha:
    """Ray Tune's ASHA decisions (its ``_Bracket``, one bracket as ``ASHAScheduler`` makes by default)."""

    def __init__(self, schedule: Mapping[str, Any]):
        from ray.tune.schedulers import TrialScheduler
        from ray.tune.schedulers.async_hyperband import _Bracket

        self._stop = TrialScheduler.STOP
        self._bracket = _Bracket(schedule["grace_period"], schedule["max_epochs"], schedule["reduction_factor"], s=0)

    def stops(self, trial_id: str, epoch: int, loss: float) -> bool:
        return self._bracket.on_result(SimpleNamespace(trial_id=trial_id), epoch, -loss) == self._stop  # min mode


def asha_search(searcher: Searcher, version: StudyVersion, n: int) -> FidelityTrace:
    """``n`` trials one at a time: each reports every epoch until ASHA stops it or it reaches max_epochs."""
    asha, trace, max_epochs = Asha(MF_SCHEDULE), FidelityTrace(), MF_SCHEDULE["max_epochs"]
    for i in range(n):
        trial_id = f"t{i}"
        config = searcher.suggest(trial_id)
        values = {k: config[k] for k in version.params.params}
        for epoch in range(1, max_epochs + 1):
            result = {"loss": learning_curve(values, epoch), "training_iteration": epoch}
            searcher.on_trial_result(trial_id, result)
            if asha.stops(trial_id, epoch, result["loss"]) or epoch == max_epochs:
                break
        trace.epochs += epoch
        if epoch == max_epochs:
            trace.finals.append((trace.epochs, result["loss"]))
        searcher.on_trial_complete(trial_id, result)
    return trace


def ray_hyperopt_search(version: StudyVersion, seed: int) -> Searcher:
    """Ray's own ``HyperOptSearch`` over the product's hyperopt expression (its values are the product's)."""
    from ray.tune.search.hyperopt import HyperOptSearch

    from orchestrator.engine.backends.hyperopt import to_hyperopt

    return HyperOptSearch(space=to_hyperopt(version.params), metric="loss", mode="min",
                          n_initial_points=version.search.startup_trials, random_state_seed=seed)  # fmt: skip


def optuna_hyperband(version: StudyVersion, n: int, seed: int) -> FidelityTrace:
    """Optuna TPE with its ``HyperbandPruner`` (same budgets as ASHA), the study driven as Optuna documents."""
    import optuna

    from orchestrator.engine.backends import optuna as optuna_backend

    s = MF_SCHEDULE
    pruner = optuna.pruners.HyperbandPruner(min_resource=s["grace_period"], max_resource=s["max_epochs"],
                                            reduction_factor=s["reduction_factor"])  # fmt: skip
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    trace = FidelityTrace()

    def objective(trial: Any) -> float:
        values = optuna_backend.sample(version.params, trial)
        for epoch in range(1, s["max_epochs"] + 1):
            loss = learning_curve(values, epoch)
            trial.report(loss, epoch)
            trace.epochs += 1
            if epoch < s["max_epochs"] and trial.should_prune():
                raise optuna.TrialPruned()
        trace.finals.append((trace.epochs, loss))
        return loss

    study.optimize(objective, n_trials=n)
    return trace


def fidelity_methods(version: StudyVersion) -> dict[str, Callable[[int, int], FidelityTrace]]:
    def ours(algorithm: str, **attributes: Any) -> Callable[[int, int], FidelityTrace]:
        cls = variant(algorithm, **attributes)
        return lambda n, seed: asha_search(cls(with_search(version, algorithm=algorithm), [], seed=seed), version, n)

    return {
        "tpe, fidelity-aware": ours("tpe"),
        "tpe, every trial final (before)": ours("tpe", fidelity_aware=False),
        "optuna_tpe, fidelity-aware": ours("optuna_tpe"),
        "optuna_tpe, every trial final (before)": ours("optuna_tpe", fidelity_aware=False),
        "Ray HyperOptSearch + ASHA": lambda n, seed: asha_search(ray_hyperopt_search(version, seed), version, n),
        "Optuna TPE + HyperbandPruner": lambda n, seed: optuna_hyperband(version, n, seed),
        "random + ASHA": ours("random"),
    }


def multifidelity(n: int, seeds: int) -> dict[str, Any]:
    """Best final loss after ``n`` trials per method; and within the epochs fidelity-aware ``tpe`` spent (seed by
    seed), since Optuna's Hyperband brackets train far more epochs for the same trials."""
    version = make_version("mf_crossing", MF_PARAMS, schedule=MF_SCHEDULE)
    rng = np.random.default_rng(0)
    reference = min(learning_curve(sample_config(version.params, rng), MF_SCHEDULE["max_epochs"]) for _ in range(20000))
    traces, seconds = {}, {}
    for name, run in fidelity_methods(version).items():
        t0 = time.perf_counter()
        traces[name] = [run(n, seed) for seed in range(seeds)]
        seconds[name] = time.perf_counter() - t0
    ours = "tpe, fidelity-aware"
    budgets = [t.epochs for t in traces[ours]]
    methods = {}
    for name, ts in traces.items():
        same_epochs = median_of([t.best_within(e) for t, e in zip(ts, budgets, strict=True)])
        methods[name] = {**summarize([t.best for t in ts]), "epochs": statistics.median(t.epochs for t in ts),
                         "median_within_same_epochs": same_epochs, "seconds": seconds[name]}  # fmt: skip
    others = [m for m in methods if m != ours and not m.startswith("random")]
    return {"trials": n, "seeds": seeds, "best_of_20000_random": reference, "methods": methods,
            "goal_met": all(methods[ours]["median"] <= methods[m]["median"] for m in others),
            "goal_met_same_epochs": all(methods[ours]["median_within_same_epochs"]
                                        <= methods[m]["median_within_same_epochs"] for m in others)}  # fmt: skip


# --------------------------------------------------------------------------- parallel suggestions


def concurrent_search(cls: type[SpaceSearcher], version: StudyVersion, objective: Objective, n: int, seed: int,
                      concurrency: int) -> float:  # fmt: skip
    """Best of ``n`` trials with ``concurrency`` pending at each suggestion (the oldest finishes first)."""
    searcher = cls(version, [], seed=seed)
    pending: deque[tuple[str, dict[str, Any]]] = deque()
    best, suggested = math.inf, 0
    while suggested < n or pending:
        while suggested < n and len(pending) < concurrency:
            config = searcher.suggest(f"t{suggested}")
            pending.append((f"t{suggested}", {k: config[k] for k in version.params.params}))
            suggested += 1
        trial_id, values = pending.popleft()
        loss = objective(values)
        searcher.on_trial_complete(trial_id, {"loss": loss})
        best = min(best, loss)
    return best


PARALLEL_METHODS: dict[str, tuple[str, int, str]] = {  # name -> (algorithm, concurrency, liar)
    "tpe sequential": ("tpe", 1, "worst"),
    "tpe x8 liar worst": ("tpe", 8, "worst"),
    "tpe x8 liar mean": ("tpe", 8, "mean"),
    "tpe x8 liar best": ("tpe", 8, "best"),
    "tpe x8 liar off": ("tpe", 8, "off"),
    "optuna_tpe sequential": ("optuna_tpe", 1, "worst"),
    "optuna_tpe x8 liar worst": ("optuna_tpe", 8, "worst"),
    "optuna_tpe x8 liar off": ("optuna_tpe", 8, "off"),
    "random": ("random", 1, "worst"),
}


def parallel_problem(problem: Problem, n: int, seeds: int) -> dict[str, Any]:
    methods = {}
    for name, (algorithm, concurrency, liar) in PARALLEL_METHODS.items():
        version = with_search(problem.version, algorithm=algorithm, liar=liar)
        cls = searcher_class(algorithm)
        bests = [concurrent_search(cls, version, problem.objective, n, seed, concurrency) for seed in range(seeds)]
        methods[name] = summarize(bests)
    goals = {}
    for algorithm in ("tpe", "optuna_tpe"):
        seq, rand = methods[f"{algorithm} sequential"]["median"], methods["random"]["median"]
        worst, off = methods[f"{algorithm} x8 liar worst"]["median"], methods[f"{algorithm} x8 liar off"]["median"]
        lost = (worst - seq) / (rand - seq) if rand != seq else 0.0
        goals[algorithm] = {"gap_lost": lost, "within_5pct": lost <= PARALLEL_GOAL, "better_than_off": worst <= off}
    return {"optimum": problem.optimum, "methods": methods, "goal": goals}


def parallel(n: int, seeds: int) -> dict[str, Any]:
    return {"trials": n, "seeds": seeds, "concurrency": 8,
            "problems": {p.name: parallel_problem(p, n, seeds) for p in analytic_problems()}}  # fmt: skip


# --------------------------------------------------------------------------- many priors

# How ``tpe`` fits with many carried trials: on a selection (now), or on every one of them (before the selection).
MODELS: dict[str, dict[str, Any]] = {"now": {}, "before": {"model_trials": None}}


def random_prior(version: StudyVersion, objective: Objective, n: int, seed: int) -> list[tuple[dict[str, Any], float]]:
    rng = np.random.default_rng([seed, n])
    return [(c, objective(c)) for c in (sample_config(version.params, rng) for _ in range(n))]


def timed_suggestion(searcher: SpaceSearcher, objective: Objective, trial_id: str) -> tuple[float, float]:
    """Milliseconds of one suggestion, and its loss (the trial completed with it)."""
    t0 = time.perf_counter()
    config = searcher.suggest(trial_id)
    ms = (time.perf_counter() - t0) * 1000
    loss = objective({key: config[key] for key in searcher.version.params.params})
    searcher.on_trial_complete(trial_id, {"loss": loss})
    return ms, loss


def latency(k: int, sizes: Sequence[int] = LATENCY_PRIORS) -> dict[str, dict[str, float]]:
    """Median ``tpe`` suggestion ms at each prior size, now and before (``bench.warmstart``'s 8-parameter space),
    the two searchers taking turns so that other load on the machine weighs on both alike."""
    version = warmstart.study_version(0)
    out: dict[str, dict[str, float]] = {}
    for n in sizes:
        prior = random_prior(version, warmstart.loss_of, n, 0)
        searchers = {label: variant("tpe", **attrs)(version, prior, seed=1) for label, attrs in MODELS.items()}
        times: dict[str, list[float]] = {label: [] for label in searchers}
        for j in range(k):
            for label, searcher in searchers.items():
                times[label].append(timed_suggestion(searcher, warmstart.loss_of, f"s{j}")[0])
        out[str(n)] = {label: statistics.median(t) for label, t in times.items()}
    return out


def prior_quality(n_prior: int, n: int, seeds: int) -> dict[str, Any]:
    """Best of ``n`` suggestions after ``n_prior`` random carried trials: now, before, and random suggestions."""
    out: dict[str, Any] = {}
    for problem in analytic_problems():
        bests: dict[str, list[float]] = {"now": [], "before": [], "random": []}
        for seed in range(seeds):
            prior = random_prior(problem.version, problem.objective, n_prior, seed)
            runs = [(label, "tpe", attrs) for label, attrs in MODELS.items()] + [("random", "random", {})]
            for label, algorithm, attrs in runs:
                searcher = variant(algorithm, **attrs)(with_search(problem.version, algorithm=algorithm), prior, seed)
                bests[label].append(min(timed_suggestion(searcher, problem.objective, f"s{j}")[1] for j in range(n)))
        med = {label: median_of(b) for label, b in bests.items()}
        gap = med["random"] - med["before"]
        out[problem.name] = {**{label: summarize(b) for label, b in bests.items()},
                             "gap_lost": (med["now"] - med["before"]) / gap if gap else 0.0}  # fmt: skip
    return {"prior_trials": n_prior, "trials": n, "seeds": seeds, "problems": out}


# --------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--seeds", type=int, help="seeds per method (default 10 quick, 20 full)")
    p.add_argument("--mf-trials", type=int, help="trials per multi-fidelity search (default 30 quick, 60 full)")
    p.add_argument("--parallel-trials", type=int, help="trials per parallel search (default 30 quick, 60 full)")
    p.add_argument("--prior-trials", type=int, help="carried trials for the quality check (2500 quick, 5000 full)")
    p.add_argument("--suggestions", type=int, help="suggestions per latency / quality run (default 8 quick, 20 full)")
    p.add_argument(
        "--latency-priors",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=LATENCY_PRIORS,
        help="carried trials to time suggestions at (default 1000,5000,10000)",
    )
    args = common.parse_args(p, argv, sizes={
        "seeds": (10, 20), "mf_trials": (30, 60), "parallel_trials": (30, 60), "prior_trials": (2500, 5000),
        "suggestions": (8, 20),
    })  # fmt: skip
    out: dict[str, Any] = {}
    print(f"multi-fidelity: {args.seeds} seeds x {args.mf_trials} trials ...", flush=True)
    out["multifidelity"] = multifidelity(args.mf_trials, args.seeds)
    print(f"parallel: {args.seeds} seeds x {args.parallel_trials} trials, concurrency 8 ...", flush=True)
    out["parallel"] = parallel(args.parallel_trials, args.seeds)
    print("TPE suggestion latency with many carried trials ...", flush=True)
    out["latency_ms"] = latency(args.suggestions, args.latency_priors)
    print(f"quality after {args.prior_trials} carried trials ...", flush=True)
    out["prior_quality"] = prior_quality(args.prior_trials, args.suggestions, args.seeds)
    out["goal"] = goal(out)
    report(out)
    return common.finish("search_at_scale", args.quick, out, args.out)


def goal(out: dict[str, Any]) -> dict[str, Any]:
    par = out["parallel"]["problems"]
    return {
        "fidelity_aware_at_least_as_good_as_every_other": out["multifidelity"]["goal_met"],
        "fidelity_aware_at_least_as_good_for_the_same_epochs": out["multifidelity"]["goal_met_same_epochs"],
        "parallel_within_5pct_of_sequential": {k: {a: g["within_5pct"] for a, g in v["goal"].items()}
                                               for k, v in par.items()},
        "parallel_liar_better_than_off": {k: {a: g["better_than_off"] for a, g in v["goal"].items()}
                                          for k, v in par.items()},
        "latency_met": {n: out["latency_ms"][str(n)]["now"] <= ms for n, ms in LATENCY_GOAL_MS.items()
                        if str(n) in out["latency_ms"]},
    }  # fmt: skip


def report(out: dict[str, Any]) -> None:
    mf = out["multifidelity"]
    common.print_table(
        ["method", "median best final", "q1", "q3", "median epochs", "same epochs as ours", "seconds"],
        [
            [name, m["median"], m["q1"], m["q3"], m["epochs"], m["median_within_same_epochs"], m["seconds"]]
            for name, m in mf["methods"].items()
        ],
        f"multi-fidelity (crossing curves, ASHA 1/3/9/27): best final loss after {mf['trials']} trials, "
        f"{mf['seeds']} seeds (best of 20,000 random: {mf['best_of_20000_random']:.4g})",
    )
    par = out["parallel"]
    for name, res in par["problems"].items():
        rows = [[method, m["median"], m["q1"], m["q3"]] for method, m in res["methods"].items()]
        goals = "; ".join(f"{a}: {g['gap_lost']:+.1%} of the gap to random lost" for a, g in res["goal"].items())
        common.print_table(["method", "median best", "q1", "q3"], rows,
                           f"parallel, {name} (optimum {res['optimum']}): best after {par['trials']} trials, "
                           f"{par['seeds']} seeds; liar worst at x8: {goals}")  # fmt: skip
    lat = out["latency_ms"]
    common.print_table(
        ["carried trials", "now ms", "before ms", "before / now"],
        [[int(n), v["now"], v["before"], v["before"] / v["now"]] for n, v in lat.items()],
        f"tpe suggestion latency (median), fitting on a selection of {HyperoptSearcher.model_trials:,} "
        "(now) or on all (before)",
    )
    pq = out["prior_quality"]
    common.print_table(
        ["problem", "now median", "before median", "random median", "gap to random lost"],
        [[name, r["now"]["median"], r["before"]["median"], r["random"]["median"], r["gap_lost"]]
         for name, r in pq["problems"].items()],
        f"quality with {pq['prior_trials']:,} carried trials: best of {pq['trials']} suggestions, {pq['seeds']} seeds",
    )  # fmt: skip
    print()
    for key, value in out["goal"].items():
        print(f"goal {key}: {value}")


if __name__ == "__main__":
    main()
