"""Search at scale: ASHA-aware TPE, concurrent suggestions with a liar, TPE with many carried trials.

Three parts, each side by side in one run, medians over seeds, searchers driven through their Ray Tune
``Searcher`` API in-process (no cluster):

* **multi-fidelity**: problems where early ranking misleads. The analytic crossing curves
  (``learning_curve``: a high learning rate starts fast and plateaus high, a low one starts slow and ends best,
  ASHA grace 1, reduction 3, 27 epochs: rungs 1, 3, 9) and the ConvNet on digits at a small budget (real
  training, cached curves: ``bench.convnet_curves``). Every ASHA method runs with the schedule's
  ``max_brackets()`` brackets (asynchronous Hyperband) and with one (Ray's default), fed by hand:
  fidelity-aware ``tpe`` and ``optuna_tpe`` (no repeats: ``search.repeats`` false), ``tpe`` with repeats
  allowed, both searchers as before (every trial final, repeats allowed) and random search under the
  product's scheduler (``plan.asha_scheduler``: Ray Tune's ``ASHAScheduler``, trials joining the brackets in
  Hyperband's proportions), Ray's ``HyperOptSearch`` under Ray's own ``ASHAScheduler`` (its random bracket
  draw); beside them Optuna TPE + ``HyperbandPruner``. Best final loss (at max_epochs) after N trials, trials
  one at a time, and the share of seeds that reached the bar (on the ConvNet grid, its best configuration);
  ours is fidelity-aware ``tpe`` with brackets. Goal: ours at least as good as ``ISSUE_COMPARATORS``. With
  one bracket no searcher gets a slow starter past rung 1, whatever it suggests.
* **parallel**: concurrency 8 (eight trials pending; the oldest finishes, the next is suggested) against
  sequential suggestion, on Branin, Hartmann-6 and the conditional space of ``bench.search_quality``, for
  each ``search.liar``. Goal: best-after-N within 5% of the gap to random of sequential, and better than
  the liar off. ``tpe`` counts running trials towards its start-up phase, as hyperopt does
  (``SpaceSearcher.in_startup``): its first ``startup_trials`` suggestions are random at any concurrency;
  so does ``optuna_tpe`` with a liar, whose sampler sees each running trial as completed with the lie
  (``optuna.PendingAwareTPESampler``). Medians of best-after-N are noisy, so
  each gap lost comes with an 80% bootstrap interval over the seeds (``gap_lost_interval``);
  ``--parallel-seeds`` runs this part with more seeds than the others (50 seeds x 60 trials: about 15 minutes
  on 2 cores), ``--parallel-searchers`` for some of the searchers only.
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
PARTS = ("multifidelity", "parallel", "latency", "prior_quality")  # what ``--parts`` picks from, in run order
PARALLEL_GOAL = 0.05  # of the gap between sequential and random
GAP_RESAMPLES = 2000  # bootstrap resamples of the seeds for the interval of the gap lost


def median_of(bests: Sequence[float]) -> float:
    return float(np.median(bests))


# --------------------------------------------------------------------------- multi-fidelity

MF_PARAMS: dict[str, Any] = {
    "lr": {"loguniform": [1.0e-4, 1.0]},
    "depth": {"int": [1, 8]},
    "dropout": {"uniform": [0.0, 0.5]},
}
MF_SCHEDULE = {"scheduler": "asha", "max_epochs": 27, "grace_period": 1, "reduction_factor": 3}
Curve = Callable[[Mapping[str, Any], int], float]  # (values, epochs trained) -> loss after them


def learning_curve(c: Mapping[str, Any], epoch: int) -> float:
    """Loss after ``epoch`` epochs: from 1 down to a plateau, ``plateau + (1 - plateau) * exp(-epoch / tau)``.

    ``u = log10(lr)``: the plateau is lowest near u = -2.7 (with depth 5 and dropout 0.2), the time constant
    ``tau = 0.3 * 10**(-u/2)`` grows as lr falls (0.3 epochs at lr 1, 9.5 at 1e-3). After one epoch the best
    trials have u near -0.7; after 27 the best have u near -2.5: early ranking misleads."""
    u = math.log10(c["lr"])
    plateau = 0.05 + 0.06 * (u + 2.7) ** 2 + 0.02 * (c["depth"] - 5) ** 2 / 9 + 0.1 * (c["dropout"] - 0.2) ** 2
    tau = 0.3 * 10 ** (-u / 2)
    return plateau + (1 - plateau) * math.exp(-epoch / tau)


@dataclasses.dataclass(frozen=True)
class FidelityProblem:
    """A space, its ASHA schedule (``brackets`` left to the benchmark) and every config's loss after each epoch."""

    name: str
    params: Mapping[str, Any]
    schedule: Mapping[str, Any]
    curve: Curve
    reference: float  # the best final loss known: the bar a search is measured against
    reference_label: str

    def version(self, brackets: int) -> StudyVersion:
        return make_version(self.name.replace(" ", "_"), self.params, schedule={**self.schedule, "brackets": brackets})


def crossing_curves() -> FidelityProblem:
    """The analytic problem: ``learning_curve`` over ``MF_PARAMS``; the bar is the best of 20,000 random configs."""
    version = make_version("mf_crossing", MF_PARAMS, schedule=MF_SCHEDULE)
    rng = np.random.default_rng(0)
    best = min(learning_curve(sample_config(version.params, rng), MF_SCHEDULE["max_epochs"]) for _ in range(20000))
    return FidelityProblem("crossing curves", MF_PARAMS, MF_SCHEDULE, learning_curve, best, "best of 20,000 random")


@dataclasses.dataclass
class FidelityTrace:
    """One search under ASHA: the epochs spent, and each trial that ran to the end as (epochs spent by then,
    its final loss)."""

    finals: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    epochs: int = 0

    @property
    def best(self) -> float:
        return min((loss for _, loss in self.finals), default=math.inf)

    def best_within(self, epochs: int) -> float:
        """The best final loss reached within ``epochs`` epochs of training (inf when none was)."""
        return min((loss for spent, loss in self.finals if spent <= epochs), default=math.inf)


class Asha:
    """The product's scheduler (``plan.asha_scheduler``: Ray Tune's ``ASHAScheduler``; with brackets, trials join
    them in Hyperband's proportions, ``engine.brackets``) or, ``stock``, Ray's own ``ASHAScheduler`` as a user
    gets it (a random draw of each trial's bracket), fed by hand, one trial at a time. Ray draws a bracket from
    numpy's global generator: seeded per trial here (and the generator's state put back), so a search's brackets
    are the same for every method under the stock scheduler."""

    def __init__(self, version: StudyVersion, seed: int, stock: bool = False):
        from ray.tune.schedulers import ASHAScheduler

        from orchestrator.engine.plan import asha_scheduler, asha_settings

        s = version.schedule
        self._scheduler = ASHAScheduler(**asha_settings(s), brackets=s.brackets) if stock else asha_scheduler(s)
        self._scheduler.set_search_properties("loss", "min")
        self._seed = seed
        self._added = 0

    def add(self, trial_id: str) -> SimpleNamespace:
        trial = SimpleNamespace(trial_id=trial_id)
        state = np.random.get_state()
        np.random.seed([self._seed, self._added])
        try:
            self._scheduler.on_trial_add(None, trial)
        finally:
            np.random.set_state(state)
        self._added += 1
        return trial

    def stops(self, trial: SimpleNamespace, epoch: int, loss: float) -> bool:
        from ray.tune.schedulers import TrialScheduler

        result = {"training_iteration": epoch, "loss": loss}
        return self._scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP

    def remove(self, trial: SimpleNamespace) -> None:
        self._scheduler.on_trial_remove(None, trial)


def asha_search(
    searcher: Searcher, version: StudyVersion, curve: Curve, n: int, seed: int, stock: bool = False
) -> FidelityTrace:
    """``n`` trials one at a time: each reports every epoch until ASHA (``Asha``, ``stock`` or the product's) stops
    it or it reaches max_epochs."""
    asha, trace, max_epochs = Asha(version, seed, stock), FidelityTrace(), version.schedule.max_epochs
    for i in range(n):
        trial_id = f"t{i}"
        config = searcher.suggest(trial_id)
        trial = asha.add(trial_id)
        values = {k: config[k] for k in version.params.params}
        for epoch in range(1, max_epochs + 1):
            result = {"loss": curve(values, epoch), "training_iteration": epoch}
            searcher.on_trial_result(trial_id, result)
            if asha.stops(trial, epoch, result["loss"]) or epoch == max_epochs:
                break
        asha.remove(trial)
        trace.epochs += epoch
        if epoch == max_epochs:
            trace.finals.append((trace.epochs, result["loss"]))
        searcher.on_trial_complete(trial_id, result)
    return trace


def ray_hyperopt_search(version: StudyVersion, seed: int) -> Searcher:
    """Ray's own ``HyperOptSearch`` over the product's hyperopt expression (its values are the product's)."""
    from ray.tune.search.hyperopt import HyperOptSearch

    from orchestrator.engine.backends.hyperopt import to_hyperopt

    return HyperOptSearch(
        space=to_hyperopt(version.params),
        metric="loss",
        mode="min",
        n_initial_points=version.search.startup_trials,
        random_state_seed=seed,
    )


def optuna_hyperband(version: StudyVersion, curve: Curve, n: int, seed: int) -> FidelityTrace:
    """Optuna TPE with its ``HyperbandPruner`` (the schedule's budgets), the study driven as Optuna documents."""
    import optuna

    from orchestrator.engine.backends import optuna as optuna_backend

    s = version.schedule
    pruner = optuna.pruners.HyperbandPruner(
        min_resource=s.grace_period, max_resource=s.max_epochs, reduction_factor=s.reduction_factor
    )
    # The pruner puts a trial in a bracket by a hash of the study's name and the trial's number: a name of the
    # seed's, not Optuna's random one, makes the brackets (and so the run) the same for the same seed.
    study = optuna.create_study(
        study_name=f"hyperband-seed-{seed}", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner
    )
    trace = FidelityTrace()

    def objective(trial: Any) -> float:
        values = optuna_backend.sample(version.params, trial)
        for epoch in range(1, s.max_epochs + 1):
            loss = curve(values, epoch)
            trial.report(loss, epoch)
            trace.epochs += 1
            if epoch < s.max_epochs and trial.should_prune():
                raise optuna.TrialPruned()
        trace.finals.append((trace.epochs, loss))
        return loss

    study.optimize(objective, n_trials=n)
    return trace


OURS = "tpe, fidelity-aware"
BEFORE = {"fidelity_aware": False}, {"repeats": True}  # the searchers before budgets and before avoiding repeats
# name -> (algorithm, searcher class settings, search settings)
ASHA_METHODS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    OURS: ("tpe", {}, {}),
    "tpe, fidelity-aware, repeats allowed": ("tpe", {}, {"repeats": True}),
    "tpe, every trial final, repeats allowed (before)": ("tpe", *BEFORE),
    "optuna_tpe, fidelity-aware": ("optuna_tpe", {}, {}),
    "optuna_tpe, every trial final, repeats allowed (before)": ("optuna_tpe", *BEFORE),
    "Ray HyperOptSearch": ("ray_hyperopt", {}, {}),
    "random": ("random", {}, {}),
}
HYPERBAND = "Optuna TPE + HyperbandPruner"
# What the goal compares ours with (each ASHA one with either bracket count): today's tpe, Ray's own HyperOptSearch
# under its ASHAScheduler, Optuna TPE with its Hyperband pruner. ``as_good_as_every_searcher`` adds optuna_tpe's rows.
ISSUE_COMPARATORS = ("tpe, every trial final, repeats allowed (before)", "Ray HyperOptSearch", HYPERBAND)


def asha_method(name: str, version: StudyVersion, curve: Curve) -> Callable[[int, int], FidelityTrace]:
    algorithm, attributes, search = ASHA_METHODS[name]
    if algorithm == "ray_hyperopt":  # Ray's method as a user gets it: its searcher under its own scheduler
        return lambda n, seed: asha_search(ray_hyperopt_search(version, seed), version, curve, n, seed, stock=True)
    cls = variant(algorithm, **attributes)
    searched = with_search(version, algorithm=algorithm, **search)
    return lambda n, seed: asha_search(cls(searched, [], seed=seed), version, curve, n, seed)


ASHA_ROW = "{method} + ASHA, {brackets}"  # a row of ``fidelity_methods``: an ASHA method and its brackets


def method_of(row: str) -> str:
    """The method a row of ``fidelity_methods`` runs, without its brackets: ``ASHA_METHODS``' name, or HYPERBAND."""
    return row.split(ASHA_ROW.format(method="", brackets=""))[0]


def fidelity_methods(problem: FidelityProblem) -> dict[str, Callable[[int, int], FidelityTrace]]:
    """Every ASHA method under asynchronous Hyperband (the schedule's ``max_brackets()``) and under one bracket
    (Ray's default), and Optuna's Hyperband."""
    one = problem.version(1)
    many = problem.version(one.schedule.max_brackets())
    methods = {}
    for version, brackets in ((many, f"{many.schedule.brackets} brackets"), (one, "1 bracket")):
        for name in ASHA_METHODS:
            methods[ASHA_ROW.format(method=name, brackets=brackets)] = asha_method(name, version, problem.curve)
    methods[HYPERBAND] = lambda n, seed: optuna_hyperband(one, problem.curve, n, seed)
    return methods


def fidelity_problems(quick: bool) -> list[FidelityProblem]:
    """The crossing curves, then the ConvNet on digits (``bench.convnet_curves``: real training, cached)."""
    from bench import convnet_curves

    convnet = convnet_curves.problem(quick)
    return [
        crossing_curves(),
        FidelityProblem(
            "convnet digits",
            convnet.params,
            convnet.schedule,
            convnet.curve,
            convnet.optimum,
            "best of the grid, trained to the end",
        ),
    ]


def multifidelity(problem: FidelityProblem, n: int, seeds: int) -> dict[str, Any]:
    """Best final loss after ``n`` trials per method; and within the epochs ours spent (seed by seed), since the
    methods train different numbers of epochs for the same trials. Ours: fidelity-aware ``tpe`` under
    asynchronous Hyperband; the goal: its median is at most every other method's (random left out)."""
    traces, seconds = {}, {}
    for name, run in fidelity_methods(problem).items():
        t0 = time.perf_counter()
        traces[name] = [run(n, seed) for seed in range(seeds)]
        seconds[name] = time.perf_counter() - t0
        print(
            f"  {problem.name}: {name}: median {median_of([t.best for t in traces[name]]):.4g} ({seconds[name]:.0f} s)",
            flush=True,
        )
    ours = next(name for name in traces if method_of(name) == OURS and "1 bracket" not in name)
    budgets = [t.epochs for t in traces[ours]]
    methods = {}
    for name, ts in traces.items():
        same_epochs = median_of([t.best_within(e) for t, e in zip(ts, budgets, strict=True)])
        # On a grid (ConvNet digits) a median only says whether half the seeds reached the best: the share that did.
        at_reference = float(np.mean([t.best <= problem.reference + 1e-12 for t in ts]))
        methods[name] = {
            **summarize([t.best for t in ts]),
            "epochs": statistics.median(t.epochs for t in ts),
            "median_within_same_epochs": same_epochs,
            "at_reference": at_reference,
            "seconds": seconds[name],
        }
    named = [m for m in methods if method_of(m) in ISSUE_COMPARATORS]
    searchers = [m for m in methods if m != ours and not m.startswith(("random", OURS))]

    def at_least_as_good(others: list[str], measure: str) -> bool:
        return all(methods[ours][measure] <= methods[m][measure] for m in others)

    return {
        "problem": problem.name,
        "trials": n,
        "seeds": seeds,
        "ours": ours,
        "reference": problem.reference,
        "reference_label": problem.reference_label,
        "methods": methods,
        "goal_met": at_least_as_good(named, "median"),
        "goal_met_same_epochs": at_least_as_good(named, "median_within_same_epochs"),
        "as_good_as_every_searcher": at_least_as_good(searchers, "median"),
    }


# --------------------------------------------------------------------------- parallel suggestions


def concurrent_search(
    cls: type[SpaceSearcher], version: StudyVersion, objective: Objective, n: int, seed: int, concurrency: int
) -> float:
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
    "optuna_tpe x8 liar mean": ("optuna_tpe", 8, "mean"),
    "optuna_tpe x8 liar best": ("optuna_tpe", 8, "best"),
    "optuna_tpe x8 liar off": ("optuna_tpe", 8, "off"),
    "random": ("random", 1, "worst"),
}


def gap_lost(parallel: np.ndarray, sequential: np.ndarray, random: np.ndarray) -> float:
    """The fraction of the gap between the medians of random and sequential search that parallel search loses."""
    seq, rand = np.median(sequential), np.median(random)
    return float((np.median(parallel) - seq) / (rand - seq)) if rand != seq else 0.0


def gap_lost_interval(parallel: np.ndarray, sequential: np.ndarray, random: np.ndarray) -> tuple[float, float]:
    """The 10th and 90th percentiles of ``gap_lost`` over bootstrap resamples of the seeds, each method's on its
    own (their seeds are not paired): how far the seeds' noise alone moves it."""
    rng = np.random.default_rng(0)
    methods = (parallel, sequential, random)
    lost = [gap_lost(*(b[rng.integers(len(b), size=len(b))] for b in methods)) for _ in range(GAP_RESAMPLES)]
    low, high = np.percentile(lost, [10, 90])
    return float(low), float(high)


PARALLEL_SEARCHERS = ("tpe", "optuna_tpe")  # the searchers whose parallel suggestions the goal judges


def parallel_problem(
    problem: Problem, n: int, seeds: int, searchers: Sequence[str] = PARALLEL_SEARCHERS
) -> dict[str, Any]:
    methods, bests = {}, {}
    for name, (algorithm, concurrency, liar) in PARALLEL_METHODS.items():
        if algorithm not in (*searchers, "random"):
            continue
        version = with_search(problem.version, algorithm=algorithm, liar=liar)
        cls = searcher_class(algorithm)
        runs = [concurrent_search(cls, version, problem.objective, n, seed, concurrency) for seed in range(seeds)]
        methods[name], bests[name] = summarize(runs), np.array(runs)
    goals = {}
    for algorithm in searchers:
        compared = (bests[f"{algorithm} x8 liar worst"], bests[f"{algorithm} sequential"], bests["random"])
        lost = gap_lost(*compared)
        worst, off = methods[f"{algorithm} x8 liar worst"]["median"], methods[f"{algorithm} x8 liar off"]["median"]
        goals[algorithm] = {
            "gap_lost": lost,
            "gap_lost_80pct": gap_lost_interval(*compared),
            "within_5pct": lost <= PARALLEL_GOAL,
            "better_than_off": worst <= off,
        }
    return {"optimum": problem.optimum, "methods": methods, "goal": goals}


def parallel(n: int, seeds: int, searchers: Sequence[str] = PARALLEL_SEARCHERS) -> dict[str, Any]:
    return {
        "trials": n,
        "seeds": seeds,
        "concurrency": 8,
        "problems": {p.name: parallel_problem(p, n, seeds, searchers) for p in analytic_problems()},
    }


# --------------------------------------------------------------------------- many priors

# How ``tpe`` fits with many carried trials: on a selection (now), or on every one of them (before the selection).
MODELS: dict[str, dict[str, Any]] = {"now": {}, "before": {"model_trials": None}}
# Latency also of today's selection with the model ``tpe`` had before its joint one (``bench.tabular.TPE_BEFORE``).
UNIVARIATE = "now, univariate model"
LATENCY_MODELS: dict[str, dict[str, Any]] = {**MODELS, UNIVARIATE: {"model": "univariate", "good_fraction": None}}


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
        searchers = {label: variant("tpe", **attrs)(version, prior, seed=1) for label, attrs in LATENCY_MODELS.items()}
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
        out[problem.name] = {
            **{label: summarize(b) for label, b in bests.items()},
            "gap_lost": (med["now"] - med["before"]) / gap if gap else 0.0,
        }
    return {"prior_trials": n_prior, "trials": n, "seeds": seeds, "problems": out}


# --------------------------------------------------------------------------- driver


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--seeds", type=int, help="seeds per method (default 10 quick, 20 full)")
    p.add_argument("--mf-trials", type=int, help="trials per multi-fidelity search (default 30 quick, 60 full)")
    p.add_argument("--parallel-trials", type=int, help="trials per parallel search (default 30 quick, 60 full)")
    p.add_argument("--parallel-seeds", type=int, help="seeds per parallel method (default: --seeds)")
    p.add_argument(
        "--parallel-searchers",
        type=lambda text: tuple(text.split(",")),
        default=PARALLEL_SEARCHERS,
        help=f"searchers of the parallel part, comma-separated, random always beside them (default "
        f"{','.join(PARALLEL_SEARCHERS)})",
    )
    p.add_argument("--prior-trials", type=int, help="carried trials for the quality check (2500 quick, 5000 full)")
    p.add_argument("--suggestions", type=int, help="suggestions per latency / quality run (default 8 quick, 20 full)")
    p.add_argument(
        "--latency-priors",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=LATENCY_PRIORS,
        help="carried trials to time suggestions at (default 1000,5000,10000)",
    )
    p.add_argument(
        "--parts",
        type=lambda text: tuple(text.split(",")),
        default=PARTS,
        help=f"which parts to run, comma-separated (default all: {','.join(PARTS)}); the latency part "
        "wants a quiet machine, the others count trials, not seconds",
    )
    args = common.parse_args(
        p,
        argv,
        sizes={
            "seeds": (10, 20),
            "mf_trials": (30, 60),
            "parallel_trials": (30, 60),
            "prior_trials": (2500, 5000),
            "suggestions": (8, 20),
        },
    )
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        p.error(f"--parts: unknown {', '.join(sorted(unknown))}; expected some of {', '.join(PARTS)}")
    if not set(args.parallel_searchers) <= set(PARALLEL_SEARCHERS):
        p.error(f"--parallel-searchers: expected some of {', '.join(PARALLEL_SEARCHERS)}")
    out: dict[str, Any] = {}
    if "multifidelity" in args.parts:
        out["multifidelity"] = {}
        for problem in fidelity_problems(args.quick):
            print(f"multi-fidelity, {problem.name}: {args.seeds} seeds x {args.mf_trials} trials ...", flush=True)
            out["multifidelity"][problem.name] = multifidelity(problem, args.mf_trials, args.seeds)
    if "parallel" in args.parts:
        parallel_seeds = args.parallel_seeds or args.seeds
        print(f"parallel: {parallel_seeds} seeds x {args.parallel_trials} trials, concurrency 8 ...", flush=True)
        out["parallel"] = parallel(args.parallel_trials, parallel_seeds, args.parallel_searchers)
    if "latency" in args.parts:
        print("TPE suggestion latency with many carried trials ...", flush=True)
        out["latency_ms"] = latency(args.suggestions, args.latency_priors)
    if "prior_quality" in args.parts:
        print(f"quality after {args.prior_trials} carried trials ...", flush=True)
        out["prior_quality"] = prior_quality(args.prior_trials, args.suggestions, args.seeds)
    out["goal"] = goal(out)
    report(out)
    return common.finish("search_at_scale", args.quick, out, args.out)


def goal(out: dict[str, Any]) -> dict[str, Any]:
    """Each goal of the parts that ran."""
    goals: dict[str, Any] = {}
    if "multifidelity" in out:
        mf = out["multifidelity"]
        goals["fidelity_aware_at_least_as_good_as_every_other"] = {k: v["goal_met"] for k, v in mf.items()}
        goals["fidelity_aware_at_least_as_good_for_the_same_epochs"] = {
            k: v["goal_met_same_epochs"] for k, v in mf.items()
        }
        goals["fidelity_aware_at_least_as_good_as_every_searcher"] = {
            k: v["as_good_as_every_searcher"] for k, v in mf.items()
        }
    if "parallel" in out:
        par = out["parallel"]["problems"]
        goals["parallel_within_5pct_of_sequential"] = {
            k: {a: g["within_5pct"] for a, g in v["goal"].items()} for k, v in par.items()
        }
        goals["parallel_liar_better_than_off"] = {
            k: {a: g["better_than_off"] for a, g in v["goal"].items()} for k, v in par.items()
        }
    if "latency_ms" in out:
        lat = out["latency_ms"]
        goals["latency_met"] = {n: lat[str(n)]["now"] <= ms for n, ms in LATENCY_GOAL_MS.items() if str(n) in lat}
    return goals


def report(out: dict[str, Any]) -> None:
    for mf in out.get("multifidelity", {}).values():
        columns = {
            "median best final": "median",
            "q1": "q1",
            "q3": "q3",
            "mean": "mean",
            "seeds at the bar": "at_reference",
            "median epochs": "epochs",
            "same epochs as ours": "median_within_same_epochs",
            "seconds": "seconds",
        }
        common.print_table(
            ["method", *columns],
            [[name, *(m[key] for key in columns.values())] for name, m in mf["methods"].items()],
            f"multi-fidelity, {mf['problem']}: best final loss after {mf['trials']} trials, {mf['seeds']} seeds "
            f"({mf['reference_label']}: {mf['reference']:.4g}); ours: {mf['ours']}",
        )
    par = out.get("parallel", {"problems": {}})
    for name, res in par["problems"].items():
        rows = [[method, m["median"], m["q1"], m["q3"]] for method, m in res["methods"].items()]
        goals = "; ".join(
            f"{a}: {g['gap_lost']:+.1%} of the gap to random lost (80% of resampled seeds: "
            f"{g['gap_lost_80pct'][0]:+.0%} to {g['gap_lost_80pct'][1]:+.0%})"
            for a, g in res["goal"].items()
        )
        common.print_table(
            ["method", "median best", "q1", "q3"],
            rows,
            f"parallel, {name} (optimum {res['optimum']}): best after {par['trials']} trials, "
            f"{par['seeds']} seeds; liar worst at x8: {goals}",
        )
    if "latency_ms" in out:
        report_latency(out["latency_ms"])
    if "prior_quality" in out:
        report_prior_quality(out["prior_quality"])
    print()
    for key, value in out["goal"].items():
        print(f"goal {key}: {value}")


def report_latency(lat: dict[str, dict[str, float]]) -> None:
    common.print_table(
        ["carried trials", "now ms", "before ms", "before / now", f"{UNIVARIATE} ms"],
        [[int(n), v["now"], v["before"], v["before"] / v["now"], v.get(UNIVARIATE)] for n, v in lat.items()],
        f"tpe suggestion latency (median), fitting on a selection of {HyperoptSearcher.model_trials:,} "
        "(now) or on all (before); and now with the univariate model tpe had before its joint one",
    )


def report_prior_quality(pq: dict[str, Any]) -> None:
    common.print_table(
        ["problem", "now median", "before median", "random median", "gap to random lost"],
        [
            [name, r["now"]["median"], r["before"]["median"], r["random"]["median"], r["gap_lost"]]
            for name, r in pq["problems"].items()
        ],
        f"quality with {pq['prior_trials']:,} carried trials: best of {pq['trials']} suggestions, {pq['seeds']} seeds",
    )


if __name__ == "__main__":
    main()
