"""Several objectives: how much of the true front's hypervolume each searcher's trials reach, side by side.

The measure is the hypervolume ratio: the hypervolume of the found set (every trial that finished, as losses)
divided by that of the true front, both after normalising each objective to [0, 1] over the true front (its best
value 0, its worst 1) and with the reference point (1.1, 1.1) in that scale (points beyond it add nothing). 1 means
the found set dominates all that the front does; medians over seeds (10 quick, 50 full: the ConvNet table's
ratios take few values, and at 20 seeds a median moved by up to 0.06 between seed sets), trials one at a time,
searchers driven through the Ray Tune ``Searcher`` API in-process (no cluster), the hypervolume the product's
(``orchestrator.engine.pareto.hypervolume``).

Problems:

* **ZDT1** (Zitzler, Deb and Thiele 2000) in three variables x, y, z in [0, 1] (``trainables.analytic.zdt1``):
  ``f1 = x``, ``g = 1 + 9 (y + z) / 2``, ``f2 = g (1 - sqrt(f1 / g))``, both minimised; the front ``f2 = 1 -
  sqrt(f1)`` sampled at 2,001 points. (In six variables no method's median reached the reference box in 50 trials.)
* **branches**: ``trainables.analytic.branch_objectives``, a conditional space of our own (a choice of two options
  with their own parameters; the front is option a's below f1 = 0.3 and option b's above, so a search must keep both
  options and tune each); the front sampled at 4,001 points (``branch_front``).
* **ConvNet digits**: the 144 configurations of ``bench.convnet_curves`` (real training, cached curves, 9 epochs) as
  a table: validation accuracy (max) at the last epoch against the number of parameters (min), computed from each
  configuration by the product's measurement (``trainables.measure.network_costs``, no training); the true front is
  the non-dominated set of the whole table. FIFO, every trial to 9 epochs.
* **ConvNet digits + ASHA**: the same table with early stopping (grace 1, reduction 3: rungs 1 and 3): ``tpe``,
  ``optuna_tpe`` and random under MO-ASHA (``plan.asha_scheduler`` with both objectives: rungs promote by
  non-dominated sorting, then hypervolume contribution), ``tpe`` under the MO-ASHA it replaced (crowding within a
  front: ``bench.mo_asha_crowding``), under ASHA on the first objective alone (Ray's ASHA on val_accuracy; the
  searcher still models both) and FIFO, against Optuna's multi-objective TPE and NSGA-II (FIFO: Optuna cannot prune
  a study of several objectives). Each method spends the same epochs (N x 9); the found set at an epoch budget is
  every trial that reached the last epoch within it. Ratios at a quarter, half and all of the epochs. Why a ratio is
  what it is: the table's front has 4 distinct points, each with its share of the front's hypervolume that no other
  point covers (``MoProblem.volume_shares``) and the places its configurations take among those of their size after
  each rung's epoch (``rung_places``); per method, the share of seeds whose found set holds each point
  (``MoProblem.reached``), and within half the epochs how many trials of a front point's configurations started and
  how many of them the scheduler stopped early (``front_trials``).

Methods: ``tpe`` (the default: each trial's front, then ParEGO's random Chebyshev weights, feeding the joint TPE),
``tpe before`` (the same searcher with the rule it replaced: ParEGO on losses scaled by their minimum and maximum,
``bench.parego_minmax``), ``optuna_tpe`` (Optuna's multivariate TPE on several objectives, through the product's
searcher), ``random``, Optuna's own multi-objective TPE (``TPESampler`` defaults, seeded: independent sampling, as
Optuna documents it for several objectives) and NSGA-II (``NSGAIISampler`` defaults, seeded), both over the product's
Optuna view of the space.

Goals: ``tpe``'s median ratio at least Optuna's multi-objective TPE's on every problem (ASHA: ``tpe`` + MO-ASHA against
Optuna's TPE at the same epochs); ``tpe`` + MO-ASHA with half the epochs at least ``tpe`` FIFO's ratio with all of
them. The ConvNet table's ratios take few values, so a median moves in steps: ``--seeds 200`` for a finer
comparison (28 minutes on 2 busy cores).

Then the cost of MO-ASHA's cut itself: one judgement at a rung whose 50, 100 or 200 trials are all one front (the
worst case: every member's hypervolume contribution is measured), in two and three objectives (``rung_cost``).
A last part times what a warm start pays for costs it must compute (``engine.costs.fill_costs``): 1,000 carried trials
of the shipped ``convnet_digits/v1`` space (1,000 random configurations) carried into a version that names ``params``,
then one that names ``latency_ms``, measured in local processes (a search measures in Ray tasks); and again from the
cache.

    python -m bench.multi_objective --quick    # 10 seeds, 50 analytic trials: about 10 minutes on 2 busy cores
    python -m bench.multi_objective            # 50 seeds, 100 analytic trials: about 15 minutes
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cached_property
from types import SimpleNamespace
from typing import Any

import numpy as np

from bench import common
from bench.search_quality import variant, with_search
from bench.spacetools import make_version, sample_config
from orchestrator.engine.pareto import fronts, hypervolume
from orchestrator.engine.searchers import searcher_class
from orchestrator.spaces import StudyVersion

REFERENCE = (1.1, 1.1)  # in the normalised objectives (the true front's best 0, worst 1)
TPE_BEFORE = "tpe before"  # tpe with the rule it used before 2026-12-07 (``bench.parego_minmax``)
OURS = ("tpe", TPE_BEFORE, "optuna_tpe", "random")
OPTUNA_TPE = "Optuna multi-objective TPE"
NSGA2 = "Optuna NSGA-II"
METHODS = (*OURS, OPTUNA_TPE, NSGA2)
Metrics = dict[str, float]


# --------------------------------------------------------------------------- problems


@dataclasses.dataclass(frozen=True)
class MoProblem:
    """Objectives over a space, what a trial with given values reports (per epoch with ``curve``), the true front."""

    name: str
    version: StudyVersion
    evaluate: Callable[[Mapping[str, Any]], Metrics]
    front: tuple[tuple[float, ...], ...]  # the true front, as losses
    curve: Callable[[Mapping[str, Any], int], Metrics] | None = None  # metrics after an epoch (tabular only)
    # tabular only: per distinct front point, each configuration at it and its place at each rung (``rung_places``)
    front_configs: tuple[dict[str, Any], ...] = ()

    def losses(self, metrics: Mapping[str, float]) -> tuple[float, ...]:
        return tuple(goal.loss(metrics[goal.name]) for goal in self.version.goals)

    @cached_property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        points = np.asarray(self.front)
        return points.min(axis=0), points.max(axis=0)

    def normalised(self, points: Sequence[Sequence[float]]) -> list[tuple[float, ...]]:
        low, high = self.bounds
        span = np.where(high > low, high - low, 1.0)
        return [tuple(((np.asarray(p) - low) / span).tolist()) for p in points]

    @cached_property
    def true_volume(self) -> float:
        return hypervolume(self.normalised(self.front), REFERENCE)

    def ratio(self, points: Sequence[Sequence[float]]) -> float:
        """Hypervolume of ``points`` (losses) over the true front's, normalised, reference (1.1, 1.1)."""
        return hypervolume(self.normalised(points), REFERENCE) / self.true_volume

    @cached_property
    def front_points(self) -> tuple[tuple[float, ...], ...]:
        """The true front's distinct points (several configurations of a table may share one), in order."""
        return tuple(sorted(set(self.front)))

    def volume_shares(self) -> list[float]:
        """Per distinct front point, the share of the true front's hypervolume that no other front point covers:
        what a found set loses of the ratio when it lacks that point and has the others."""
        points = self.front_points
        return [1.0 - self.ratio([q for q in points if q != p]) for p in points]

    def reached(self, points: Sequence[Sequence[float]]) -> list[bool]:
        """Per distinct front point, whether a point of ``points`` (losses) is at least as good in every objective."""
        return [any(all(a <= b for a, b in zip(q, p, strict=True)) for q in points) for p in self.front_points]


def zdt1(values: Mapping[str, Any]) -> Metrics:
    from trainables.analytic import zdt1 as objectives

    f1, f2 = objectives(float(values["x"]), float(values["y"]), float(values["z"]))
    return {"f1": f1, "f2": f2}


def zdt1_problem() -> MoProblem:
    params = {name: {"uniform": [0.0, 1.0]} for name in ("x", "y", "z")}
    version = make_version("zdt1", params, objectives=[("f1", "min"), ("f2", "min")])
    front = tuple((t, 1.0 - math.sqrt(t)) for t in np.linspace(0.0, 1.0, 2001).tolist())
    return MoProblem("ZDT1", version, zdt1, front)


BRANCH_PARAMS: dict[str, Any] = {
    "branch": {
        "choice": [
            {"kind": "a", "t": {"uniform": [0.0, 1.0]}, "s": {"uniform": [0.0, 1.0]}},
            {"kind": "b", "t": {"uniform": [0.0, 1.0]}, "s": {"uniform": [0.0, 1.0]}, "d": {"int": [1, 5]}},
        ]
    }
}


def branches(values: Mapping[str, Any]) -> Metrics:
    from trainables.analytic import branch_objectives

    f1, f2 = branch_objectives(values["branch"])
    return {"f1": f1, "f2": f2}


def branches_problem() -> MoProblem:
    from trainables.analytic import branch_front

    version = make_version("branches", BRANCH_PARAMS, objectives=[("f1", "min"), ("f2", "min")])
    return MoProblem("branches (conditional)", version, branches, tuple(branch_front(2001)))


def convnet_problem(quick: bool) -> MoProblem:
    """The ConvNet table: accuracy from the cached curves, parameters from each configuration's network."""
    from bench import convnet_curves
    from trainables.measure import network_costs

    grid = convnet_curves.problem(False, progress=None)  # the full grid, cached (quick and full alike)
    table = grid.table
    fixed = convnet_curves.study().fixed
    params = [
        network_costs("convnet", {**fixed, **config, "max_epochs": 1, "seed": 0}, ("params",))["params"]
        for config in table.configs
    ]
    accuracy = table.history["val_accuracy"]

    def curve(values: Mapping[str, Any], epoch: int) -> Metrics:
        i = table.index(values)
        return {"val_accuracy": float(accuracy[i, epoch - 1]), "params": params[i]}

    def evaluate(values: Mapping[str, Any]) -> Metrics:
        return curve(values, table.max_epochs)

    schedule = {**convnet_curves.CONVNET_SCHEDULE, "max_epochs": table.max_epochs}
    version = make_version(
        "convnet_mo",
        grid.params,
        trainable="convnet",
        objectives=[("val_accuracy", "max"), ("params", "min")],
        schedule=schedule,
    )
    everything = [(-float(accuracy[i, -1]), params[i]) for i in range(len(table.configs))]
    front = tuple(everything[i] for i in fronts(everything)[0])
    problem = MoProblem("ConvNet digits (accuracy, parameters)", version, evaluate, front, curve)
    places = rung_places(accuracy, params, version.schedule.asha_milestones())
    front_configs = tuple(
        {"point": list(point), "configs": [places[i] for i, p in enumerate(everything) if p == point]}
        for point in problem.front_points
    )
    return dataclasses.replace(problem, front_configs=front_configs)


def rung_places(accuracy: np.ndarray, params: Sequence[float], milestones: Sequence[float]) -> list[dict[str, Any]]:
    """Per configuration of the table: its place by accuracy among the configurations of its size (1 = the most
    accurate; ties share the better place) after each rung's epoch and at the last: how well early rungs see it."""
    sizes = np.asarray(params)
    epochs = [math.ceil(m) for m in milestones] + [accuracy.shape[1]]
    out = []
    for i in range(len(sizes)):
        peers = accuracy[sizes == sizes[i]]
        out.append(
            {
                "of": len(peers),
                "place_at_epoch": {e: 1 + int((peers[:, e - 1] > accuracy[i, e - 1]).sum()) for e in epochs},
            }
        )
    return out


# --------------------------------------------------------------------------- one search (FIFO)


def our_searcher(method: str, version: StudyVersion, seed: int) -> Any:
    """The product's searcher of ``method`` over ``version`` (``tpe before``: ``tpe`` with the old scalarisation)."""
    if method == TPE_BEFORE:
        from bench.parego_minmax import scalarize

        cls, method = variant("tpe", scalarize=staticmethod(scalarize)), "tpe"
    else:
        cls = searcher_class(method)
    return cls(with_search(version, algorithm=method), [], seed=seed)


def run_ours(problem: MoProblem, algorithm: str, n: int, seed: int) -> list[tuple[float, ...]]:
    """``n`` trials of the product's searcher ``algorithm``; each trial's losses in order."""
    version = problem.version
    searcher = our_searcher(algorithm, version, seed)
    out = []
    for i in range(n):
        config = searcher.suggest(f"t{i}")
        metrics = problem.evaluate({k: config[k] for k in version.params.params})
        searcher.on_trial_complete(f"t{i}", metrics)
        out.append(problem.losses(metrics))
    return out


def run_optuna(problem: MoProblem, method: str, n: int, seed: int) -> list[tuple[float, ...]]:
    """``n`` trials of Optuna's own multi-objective TPE or NSGA-II over the product's Optuna view of the space."""
    import optuna

    from orchestrator.engine.backends import optuna as optuna_backend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (
        optuna.samplers.TPESampler(seed=seed) if method == OPTUNA_TPE else optuna.samplers.NSGAIISampler(seed=seed)
    )
    study = optuna.create_study(directions=["minimize"] * len(problem.version.goals), sampler=sampler)
    out: list[tuple[float, ...]] = []

    def objective(trial: Any) -> tuple[float, ...]:
        losses = problem.losses(problem.evaluate(optuna_backend.sample(problem.version.params, trial)))
        out.append(losses)
        return losses

    study.optimize(objective, n_trials=n)
    return out


def run_method(problem: MoProblem, method: str, n: int, seed: int) -> list[tuple[float, ...]]:
    return run_ours(problem, method, n, seed) if method in OURS else run_optuna(problem, method, n, seed)


# --------------------------------------------------------------------------- with early stopping


FIFO, MO_ASHA, FIRST_ASHA = "FIFO", "MO-ASHA", "ASHA on the first objective"
MO_ASHA_BEFORE = "MO-ASHA by crowding"  # the cut before 2026-12-07 (``bench.mo_asha_crowding``), tpe only


class Scheduler:
    """The product's scheduler fed by hand: MO-ASHA (``plan.asha_scheduler`` with the objectives), MO-ASHA with the
    cut it made before (``bench.mo_asha_crowding``), Ray's ASHA on the first objective (``plan.asha_scheduler`` of
    the schedule alone) or none (FIFO)."""

    def __init__(self, version: StudyVersion, kind: str):
        from bench.mo_asha_crowding import CrowdingAsha
        from orchestrator.engine.plan import asha_scheduler, asha_settings

        self.kind = kind
        if kind == MO_ASHA:
            self._scheduler = asha_scheduler(version.schedule, version.goals, version.constraints)
        elif kind == MO_ASHA_BEFORE:
            settings = asha_settings(version.schedule)
            self._scheduler = CrowdingAsha(version.schedule, version.goals, version.constraints, **settings)
        elif kind == FIRST_ASHA:
            self._scheduler = asha_scheduler(version.schedule)
        else:
            self._scheduler = None
        if self._scheduler is not None:
            self._scheduler.set_search_properties(version.metric.name, version.metric.mode)

    def add(self, trial_id: str) -> SimpleNamespace:
        trial = SimpleNamespace(trial_id=trial_id)
        if self._scheduler is not None:
            self._scheduler.on_trial_add(None, trial)
        return trial

    def stops(self, trial: SimpleNamespace, result: dict[str, Any]) -> bool:
        from ray.tune.schedulers import TrialScheduler

        if self._scheduler is None:
            return False
        return self._scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP

    def remove(self, trial: SimpleNamespace) -> None:
        if self._scheduler is not None:
            self._scheduler.on_trial_remove(None, trial)


def run_with_epochs(
    problem: MoProblem,
    method: str,
    kind: str,
    epochs: int,
    seed: int,
    started: list[tuple[int, int, tuple]] | None = None,
) -> list[tuple[int, tuple]]:
    """Trials one at a time until ``epochs`` epochs are spent: each trial that reached the last epoch as (epochs
    spent when it ended, its losses). Optuna's methods run FIFO (``kind`` ignored). ``started``, when given,
    receives every trial as (epochs spent when it ended, the epochs it ran, its losses after the last epoch)."""
    assert problem.curve is not None
    version = problem.version
    max_epochs = version.schedule.max_epochs
    if method not in OURS:
        finals = run_optuna(problem, method, epochs // max_epochs, seed)
        out = [((i + 1) * max_epochs, losses) for i, losses in enumerate(finals)]
        if started is not None:
            started.extend((spent, max_epochs, losses) for spent, losses in out)
        return out
    searcher = our_searcher(method, version, seed)
    scheduler = Scheduler(version, kind)
    spent, out, i = 0, [], 0
    while spent < epochs:
        trial_id = f"t{i}"
        i += 1
        config = searcher.suggest(trial_id)
        values = {k: config[k] for k in version.params.params}
        trial = scheduler.add(trial_id)
        for epoch in range(1, max_epochs + 1):
            result = {**problem.curve(values, epoch), "training_iteration": epoch}
            searcher.on_trial_result(trial_id, result)
            if scheduler.stops(trial, result) or epoch == max_epochs:
                break
        scheduler.remove(trial)
        spent += epoch
        searcher.on_trial_complete(trial_id, result)
        if epoch == max_epochs:
            out.append((spent, problem.losses(result)))
        if started is not None:
            started.append((spent, epoch, problem.losses(problem.evaluate(values))))
    return out


def front_trials(problem: MoProblem, ran: Sequence[tuple[int, tuple]]) -> list[list[int]]:
    """Per distinct front point: how many trials of ``ran`` ((the epochs it ran, its losses after the last epoch))
    are a configuration at that point, and how many of those were stopped before the last epoch."""
    points, last = problem.front_points, problem.version.schedule.max_epochs
    out = [[0, 0] for _ in points]
    for epochs_run, final in ran:
        if final in points:
            row = out[points.index(final)]
            row[0] += 1
            row[1] += epochs_run < last
    return out


# --------------------------------------------------------------------------- the parts


def _job(args: tuple[str, str, str, int, int, bool]) -> tuple[str, str, int, Any]:
    """One search in a worker process: (part, method, seed, result)."""
    part, method, kind, n, seed, quick = args
    common.quiet_libraries()
    problem = problems(quick)[part]
    t0 = time.process_time()
    if kind == "":
        found = run_method(problem, method, n, seed)
        return (
            part,
            method,
            seed,
            {"ratio": problem.ratio(found), "half": problem.ratio(found[: n // 2]), "cpu_s": time.process_time() - t0},
        )
    started: list[tuple[int, int, tuple]] = []
    finals = run_with_epochs(problem, method, kind, n, seed, started)
    within = {str(budget): [p for spent, p in finals if spent <= budget] for budget in budgets(n)}
    ran = {str(budget): [(e, final) for spent, e, final in started if spent <= budget] for budget in budgets(n)}
    label = method if method not in OURS else f"{method} + {kind}"
    return (
        part,
        label,
        seed,
        {
            "at_epochs": {k: problem.ratio(found) for k, found in within.items()},
            "reached_at_epochs": {k: problem.reached(found) for k, found in within.items()},
            "front_trials_at_epochs": {k: front_trials(problem, trials) for k, trials in ran.items()},
            "cpu_s": time.process_time() - t0,
        },
    )


def budgets(epochs: int) -> tuple[int, int, int]:
    return (epochs // 4, epochs // 2, epochs)


_PROBLEMS: dict[bool, dict[str, MoProblem]] = {}


def problems(quick: bool) -> dict[str, MoProblem]:
    if quick not in _PROBLEMS:
        convnet = convnet_problem(quick)
        _PROBLEMS[quick] = {
            "zdt1": zdt1_problem(),
            "branches": branches_problem(),
            "convnet": convnet,
            "convnet_asha": convnet,
        }
    return _PROBLEMS[quick]


def plan_jobs(args: Any) -> list[tuple[str, str, str, int, int, bool]]:
    jobs = []
    for part in ("zdt1", "branches"):
        jobs += [(part, m, "", args.trials, s, args.quick) for m in METHODS for s in range(args.seeds)]
    jobs += [("convnet", m, "", args.convnet_trials, s, args.quick) for m in METHODS for s in range(args.seeds)]
    epochs = args.convnet_trials * 9
    asha_methods = [
        (m, k)
        for m in OURS
        for k in (MO_ASHA, FIRST_ASHA, FIFO)
        if not (m in ("random", TPE_BEFORE) and k == FIRST_ASHA)
    ]
    asha_methods.insert(1, ("tpe", MO_ASHA_BEFORE))
    asha_methods += [(OPTUNA_TPE, FIFO), (NSGA2, FIFO)]
    jobs += [("convnet_asha", m, k, epochs, s, args.quick) for m, k in asha_methods for s in range(args.seeds)]
    return jobs


def summarise(results: list[tuple[str, str, int, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part, label, seed, value in results:
        out.setdefault(part, {}).setdefault(label, {})[seed] = value
    summary: dict[str, Any] = {}
    for part, by_label in out.items():
        rows = {}
        for label, by_seed in by_label.items():
            values = [by_seed[s] for s in sorted(by_seed)]
            if "ratio" in values[0]:
                ratios = [v["ratio"] for v in values]
                rows[label] = {
                    "median": statistics.median(ratios),
                    "q25": float(np.quantile(ratios, 0.25)),
                    "q75": float(np.quantile(ratios, 0.75)),
                    "median_at_half_trials": statistics.median(v["half"] for v in values),
                    "ratios": ratios,
                    "cpu_s_per_search": statistics.median(v["cpu_s"] for v in values),
                }
            else:
                keys = list(values[0]["at_epochs"])
                rows[label] = {
                    "median_at_epochs": {k: statistics.median(v["at_epochs"][k] for v in values) for k in keys},
                    "ratios_at_epochs": {k: [v["at_epochs"][k] for v in values] for k in keys},
                    # per distinct front point (``MoProblem.front_points``): the share of seeds whose found set has it
                    "reached_share_at_epochs": {
                        k: np.mean([v["reached_at_epochs"][k] for v in values], axis=0).tolist() for k in keys
                    },
                    # per distinct front point, over all seeds: [trials at it started, of them stopped early]
                    "front_trials_at_epochs": {
                        k: np.sum([v["front_trials_at_epochs"][k] for v in values], axis=0).tolist() for k in keys
                    },
                    "cpu_s_per_search": statistics.median(v["cpu_s"] for v in values),
                }
        summary[part] = rows
    return summary


def goals(summary: dict[str, Any], epochs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"tpe_at_least_optuna_motpe": {}, "mo_asha_half_epochs": {}}
    for part in ("zdt1", "branches", "convnet"):
        ours, theirs = summary[part]["tpe"]["median"], summary[part][OPTUNA_TPE]["median"]
        out["tpe_at_least_optuna_motpe"][part] = {"tpe": ours, OPTUNA_TPE: theirs, "met": ours >= theirs}
    asha = summary["convnet_asha"]
    full, half = str(epochs), str(epochs // 2)
    ours = asha[f"tpe + {MO_ASHA}"]["median_at_epochs"][full]
    theirs = asha[OPTUNA_TPE]["median_at_epochs"][full]
    out["tpe_at_least_optuna_motpe"]["convnet_asha"] = {
        "tpe + MO-ASHA": ours,
        OPTUNA_TPE: theirs,
        "met": ours >= theirs,
    }
    for method, kind in (
        ("tpe", MO_ASHA),
        ("tpe", MO_ASHA_BEFORE),
        (TPE_BEFORE, MO_ASHA),
        ("optuna_tpe", MO_ASHA),
        ("random", MO_ASHA),
    ):
        at_half = asha[f"{method} + {kind}"]["median_at_epochs"][half]
        fifo = asha[f"{method} + {FIFO}"]["median_at_epochs"][full]
        out["mo_asha_half_epochs"][method if kind == MO_ASHA else f"{method}, {kind}"] = {
            f"MO-ASHA at {half} epochs": at_half,
            f"FIFO at {full} epochs": fifo,
            "met": at_half >= fifo,
        }
    out["met"] = (
        all(v["met"] for v in out["tpe_at_least_optuna_motpe"].values()) and out["mo_asha_half_epochs"]["tpe"]["met"]
    )
    return out


def convnet_front(problem: MoProblem) -> list[dict[str, Any]]:
    """The ConvNet table's distinct front points (in ``MoProblem.front_points`` order, the order of every
    ``reached_share_at_epochs`` list): accuracy, parameters, share of the hypervolume, its configurations' places."""
    return [
        {"accuracy": -row["point"][0], "params": row["point"][1], "volume_share": share, "configs": row["configs"]}
        for row, share in zip(problem.front_configs, problem.volume_shares(), strict=True)
    ]


# --------------------------------------------------------------------------- what a rung's cut costs


RUNG_FRONTS = (50, 100, 200)  # trials at a rung, all on one front: the worst case of the contribution order


def rung_cost(sizes: Sequence[int] = RUNG_FRONTS) -> dict[str, dict[str, float]]:
    """Seconds one MO-ASHA judgement (``pareto_asha.promoted``, reduction factor 3) takes at a rung of ``n`` trials
    that are all one front, in two and three objectives (points on a circle's and a sphere's quarter, seeded): the
    cut falls inside the front, so every member's hypervolume contribution is measured."""
    from orchestrator.engine.pareto_asha import promoted

    rng = np.random.default_rng(0)
    out: dict[str, dict[str, float]] = {}
    for dims in (2, 3):
        row = {}
        for n in sizes:
            directions = np.abs(rng.normal(size=(n, dims)))
            points = directions / np.linalg.norm(directions, axis=1, keepdims=True)
            recorded = {f"t{i}": (*map(float, p), 0.0) for i, p in enumerate(points)}
            t0 = time.perf_counter()
            promoted(recorded, f"t{n - 1}", 3)
            row[str(n)] = time.perf_counter() - t0
        out[f"{dims} objectives"] = row
    return out


# --------------------------------------------------------------------------- costs of carried trials


def carried_costs(n: int = 1000) -> dict[str, Any]:
    """Seconds ``fill_costs`` takes for ``n`` carried trials of ``convnet_digits/v1`` (random configurations) carried
    into a version naming ``params``, then one naming ``latency_ms``; each again from the cache."""
    from bench import convnet_curves
    from orchestrator.engine import costs
    from orchestrator.spaces.carry import carry
    from orchestrator.spaces.trials import RecordedTrial
    from orchestrator.spaces.version import Metric
    from trainables.costs import computable

    v1 = convnet_curves.study()
    rng = np.random.default_rng(0)
    trials = [RecordedTrial(sample_config(v1.params, rng), 0.9, version=1) for _ in range(n)]
    out: dict[str, Any] = {"trials": n, "workers": os.cpu_count()}
    for cost in ("params", "latency_ms"):
        v2 = dataclasses.replace(v1, version=2, parent=1, objectives=(v1.metric, Metric(cost, "min")))
        costs.CACHE.clear()
        row = {}
        for attempt in ("measured", "cached"):
            report = carry(trials, v2, computable(v2.trainable))
            t0 = time.perf_counter()
            costs.fill_costs(report, v2, lambda _: None)
            row[f"{attempt}_s"] = time.perf_counter() - t0
            row["configurations"] = len({repr(sorted(t[0].items())) for t in report.carried})
            row["carried"] = len(report.carried)
        out[cost] = row
    return out


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--seeds", type=int, help="seeds per method (quick 10, full 50)")
    p.add_argument("--trials", type=int, help="trials per analytic search (quick 50, full 100)")
    p.add_argument("--convnet-trials", type=int, help="FIFO trials on the ConvNet table; ASHA gets their epochs (30)")
    p.add_argument("--jobs", type=int, default=min(2, common.cpu_count()), help="worker processes")
    p.add_argument("--carried", type=int, default=1000, help="carried trials whose costs are timed (0: skip)")
    args = common.parse_args(p, argv, {"seeds": (10, 50), "trials": (50, 100), "convnet_trials": (30, 30)})
    problems(args.quick)  # trains or reads the ConvNet curves once, before the workers fork
    jobs = plan_jobs(args)
    print(f"{len(jobs)} searches on {args.jobs} processes ...", flush=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(_job, jobs, chunksize=4))
    summary = summarise(results)
    epochs = args.convnet_trials * 9
    figures: dict[str, Any] = {
        "reference_point": list(REFERENCE),
        "normalisation": "each objective scaled to [0, 1] over the true front (its best 0, its worst 1)",
        "seeds": args.seeds,
        "trials": {"analytic": args.trials, "convnet": args.convnet_trials, "convnet_asha_epochs": epochs},
        "true_front_points": {name: len(problem.front) for name, problem in problems(args.quick).items()},
        "convnet_front": convnet_front(problems(args.quick)["convnet_asha"]),
        "problems": summary,
        "goal": goals(summary, epochs),
        "searches_s": time.perf_counter() - started,
        "rung_cost_s": rung_cost(),
    }
    if args.carried:
        figures["carried_costs"] = carried_costs(args.carried)
    report(figures)
    return common.finish("multi_objective", args.quick, figures, args.out)


def report(figures: dict[str, Any]) -> None:
    problems_ = figures["problems"]
    for part, title in (
        ("zdt1", "ZDT1, 3 variables"),
        ("branches", "branches (conditional)"),
        ("convnet", "ConvNet digits: accuracy against parameters, FIFO"),
    ):
        rows = [
            [label, r["median"], r["q25"], r["q75"], r["median_at_half_trials"], r["cpu_s_per_search"]]
            for label, r in problems_[part].items()
        ]
        common.print_table(
            ["method", "median ratio", "q25", "q75", "median at half the trials", "CPU s"],
            rows,
            f"{title}: hypervolume / true front's ({figures['seeds']} seeds)",
        )
    epochs = figures["trials"]["convnet_asha_epochs"]
    keys = [str(b) for b in budgets(epochs)]
    rows = [
        [label, *(r["median_at_epochs"][k] for k in keys), r["cpu_s_per_search"]]
        for label, r in problems_["convnet_asha"].items()
    ]
    common.print_table(
        ["method", *(f"{k} epochs" for k in keys), "CPU s"],
        rows,
        "ConvNet digits with early stopping: median ratio within the epochs",
    )
    report_front(figures)
    goal = figures["goal"]
    rows = [
        [part, *(v for k, v in g.items() if k != "met"), g["met"]]
        for part, g in goal["tpe_at_least_optuna_motpe"].items()
    ]
    common.print_table(["problem", "tpe", OPTUNA_TPE, "met"], rows, "goal: tpe >= Optuna's multi-objective TPE")
    rows = [[m, *(v for k, v in g.items() if k != "met"), g["met"]] for m, g in goal["mo_asha_half_epochs"].items()]
    common.print_table(
        ["searcher", "MO-ASHA, half the epochs", "FIFO, all", "met"], rows, "goal: MO-ASHA with half the epochs >= FIFO"
    )
    common.print_table(
        ["objectives", *(f"front of {n}" for n in RUNG_FRONTS)],
        [[k, *row.values()] for k, row in figures["rung_cost_s"].items()],
        "seconds of one MO-ASHA judgement at a rung whose trials are all one front",
    )
    if "carried_costs" in figures:
        c = figures["carried_costs"]
        rows = [
            [cost, c[cost]["carried"], c[cost]["configurations"], c[cost]["measured_s"], c[cost]["cached_s"]]
            for cost in ("params", "latency_ms")
        ]
        common.print_table(
            ["cost named", "carried trials", "configurations", "measured s", "from the cache s"],
            rows,
            f"costs of {c['trials']} carried trials computed without training ({c['workers']} CPUs)",
        )


def report_front(figures: dict[str, Any]) -> None:
    """Which of the ConvNet table's front points each method's found set holds, and how early rungs place them."""
    front = figures["convnet_front"]
    rows = [
        [
            f"{point['params']:.0f}",
            point["accuracy"],
            point["volume_share"],
            "; ".join(
                ", ".join(f"{place} at epoch {e}" for e, place in c["place_at_epoch"].items()) + f" (of {c['of']})"
                for c in point["configs"]
            ),
        ]
        for point in front
    ]
    common.print_table(
        ["parameters", "accuracy", "share of the volume", "each configuration's place among its size's"],
        rows,
        "ConvNet digits: the true front's points",
    )
    epochs = figures["trials"]["convnet_asha_epochs"]
    rows = []
    for label, r in figures["problems"]["convnet_asha"].items():
        for k in (str(epochs // 2), str(epochs)):
            rows.append([label, k, *r["reached_share_at_epochs"][k]])
    common.print_table(
        ["method", "epochs", *(f"{p['params']:.0f} params" for p in front)],
        rows,
        "ConvNet digits with early stopping: share of seeds whose found set holds each front point",
    )
    half = str(epochs // 2)
    rows = [
        [label, *(f"{started} / {stopped}" for started, stopped in r["front_trials_at_epochs"][half])]
        for label, r in figures["problems"]["convnet_asha"].items()
    ]
    common.print_table(
        ["method", *(f"{p['params']:.0f} params" for p in front)],
        rows,
        f"within {half} epochs, all seeds: trials of a front point's configurations started / stopped early",
    )


if __name__ == "__main__":
    main()
