"""Search quality: best value after N trials, median and IQR over seeds, orchestrator TPE vs random vs Optuna.

Methods, all on the same space definitions (the orchestrator's ``StudyVersion``):

* ``orchestrator TPE``: the ``tpe`` searcher (``HyperoptSearcher``) driven in-process (suggest -> evaluate ->
  on_trial_complete), as the space file configures it (``search.startup_trials``, default 10);
* ``random``: the same searcher with ``search.algorithm: random``;
* ``orchestrator optuna_tpe``: the ``optuna_tpe`` searcher (``OptunaSearcher``), the same way;
* ``optuna TPE``: ``optuna.samplers.TPESampler(seed=seed)`` with default settings, sampling the product's
  define-by-run view of the space (``orchestrator.engine.backends.optuna``);
* ``hyperopt variants``: the orchestrator's searcher with other TPE settings (``n_startup_jobs``, ``gamma``,
  ``n_EI_candidates``, ``prior_weight``), passed to ``hyperopt.tpe.suggest`` through a subclass's
  ``tpe_settings``;
* ``refine + restart``: the team workflow. v1 for N/2 trials, then v2 proposed by the product's refine
  (``orchestrator.evolution.refining.refine_trials``, default ``RefineOptions``: what ``orchestrator space
  refine`` does) from those trials, warm-started with the v1 trials that fit (``orchestrator.spaces.carry``),
  for N/2 more; when refine proposes no change, the restart continues v1. Compared with one cold search of N
  trials (``orchestrator TPE``): the ``refine_restart`` goal, met when its median best is at least as good.

The ``refine`` part (issue 25; ``--parts refine``) measures refine's decisions, with the rule it replaced
(``bench.refine_topk``, today's top-K rule kept for the benchmark) side by side on the same trials:

* **decisions**: four cases (``refine_cases``): an optimum just beyond a bound beside a parameter with a
  wider range that dominates, an optimum inside a wide log range, the conditional problem (optimum in the
  sgd branch), a parameter without effect. For each, ``--refine-seeds`` (20) searches of 15 and 30
  orchestrator-TPE trials; per seed, whether the proposal widened the bound that should widen, cut a range
  so that it excludes the optimum (for the optimum beyond a bound: moved that bound inwards), left the
  parameter without effect alone (``judge``). Goals: widened in >= 80 % of seeds at 30 trials, the optimum
  excluded in <= 5 % at both sizes in every case.
* **restart**: refine + restart with each rule, the restart with v1 unchanged (a second warm-started search
  of v1: what refine + restart is when refine changes nothing) and the cold search, on the three problems,
  median best over the first 10 and the first 30 seeds (``--restart-seeds``). How decisive such a median is
  (``restart_chance``): where the seeds run hold at least two disjoint blocks of a seed count (``--restart-seeds
  10,30,100``), the share of blocks in which each restart's median is at most the cold search's; the restart with
  v1 unchanged is the cold search in distribution (a warm-started restart suggests what continuing would, given
  its seed), so its share is what chance alone gives the goal; and a two-sided Mann-Whitney p over all the seeds.
* **cost**: seconds ``refine_trials`` takes on 100 and 1,000 random trials of Hartmann-6 and of the
  conditional space.

Problems: Branin (optimum 0.397887), Hartmann-6 (-3.32237), a conditional space (optimizer adam/sgd with a
momentum only under sgd, log-uniform lr, int layers; optimum 0), and in full mode the ConvNet-digits space
(``search_spaces/convnet_digits/v1.yaml``, 2 epochs, loss = 1 - best validation accuracy; N=12, 3 seeds: a trial
takes 5-30 s on 2 CPU cores, so this part alone runs for 30-60 minutes there).

    python -m bench.search_quality --quick     # 10 seeds, N=50, three analytic problems; and the refine part
    python -m bench.search_quality             # 20 seeds, more variants, plus ConvNet-digits (long on 2 cores)
    python -m bench.search_quality --parts refine   # refine's decisions, restarts and cost only
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench import common
from bench.refine_topk import refine_topk
from bench.spacetools import make_version, sample_config
from orchestrator.engine.searchers import searcher_class
from orchestrator.evolution.refining import refine_trials
from orchestrator.spaces import Metric, StudyVersion, load_version
from orchestrator.spaces.carry import carry
from orchestrator.spaces.refine import RefineError, RefineOptions
from orchestrator.spaces.trials import RecordedTrial
from orchestrator.spaces.writer import dump

if TYPE_CHECKING:
    from orchestrator.engine.searchers.base import SpaceSearcher

Objective = Callable[[Mapping[str, Any]], float]
ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- problems


def branin(c: Mapping[str, Any]) -> float:
    b, k, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    x, y = c["x"], c["y"]
    return (y - b * x**2 + k * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
HARTMANN_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
HARTMANN_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6_at(x: np.ndarray) -> np.ndarray:
    """Hartmann-6 at points ``x`` (..., 6) in [0, 1]^6, one value per point."""
    return -(HARTMANN_ALPHA * np.exp(-(HARTMANN_A * (x[..., None, :] - HARTMANN_P) ** 2).sum(axis=-1))).sum(axis=-1)


def hartmann6(c: Mapping[str, Any]) -> float:
    return float(hartmann6_at(np.array([c[f"x{i}"] for i in range(1, 7)])))


def conditional(c: Mapping[str, Any]) -> float:
    """Optimum 0 at sgd, lr = 10**-1.5, momentum 0.9, layers 3; adam's best is 0.3 (at lr = 1e-3)."""
    lr, layers, opt = math.log10(c["lr"]), c["layers"], c["optimizer"]
    depth = 0.05 * (layers - 3) ** 2
    if opt["name"] == "adam":
        return 0.3 + ((lr + 3) / 2) ** 2 + depth
    return ((lr + 1.5) / 2) ** 2 + 2 * (opt["momentum"] - 0.9) ** 2 + depth


@dataclass
class Problem:
    name: str
    version: StudyVersion
    objective: Objective
    optimum: float | None


def analytic_problems() -> list[Problem]:
    hart = {f"x{i}": {"uniform": [0.0, 1.0]} for i in range(1, 7)}
    cond = {
        "optimizer": {"choice": [{"name": "adam"}, {"name": "sgd", "momentum": {"uniform": [0.0, 0.99]}}]},
        "lr": {"loguniform": [1.0e-5, 1.0]},
        "layers": {"int": [1, 8]},
    }
    branin_space = {"x": {"uniform": [-5.0, 10.0]}, "y": {"uniform": [0.0, 15.0]}}
    return [
        Problem("branin", make_version("q_branin", branin_space), branin, 0.397887),
        Problem("hartmann6", make_version("q_hartmann6", hart), hartmann6, -3.32237),
        Problem("conditional", make_version("q_conditional", cond), conditional, 0.0),
    ]


class ListReporter:
    """A ``trainables.Reporter`` that keeps the reported metrics in memory (no checkpoints, no resume)."""

    def __init__(self) -> None:
        self.metrics: list[dict[str, float]] = []

    def report(self, metrics: Mapping[str, float], checkpoint_dir: str | None = None) -> None:
        self.metrics.append(dict(metrics))

    def restore_dir(self) -> str | None:
        return None


def convnet_problem(epochs: int = 2) -> Problem:
    """The shipped ConvNet-digits space, ``epochs`` epochs per trial, loss = 1 - best validation accuracy."""
    v = load_version(ROOT / "search_spaces" / "convnet_digits" / "v1.yaml")
    schedule = dataclasses.replace(v.schedule, max_epochs=epochs)
    v = dataclasses.replace(v, metric=Metric("loss", "min"), schedule=schedule)

    def objective(config: Mapping[str, Any]) -> float:
        from trainables import create

        train = create("convnet")

        reporter = ListReporter()
        train({**v.fixed, **config, "max_epochs": epochs, "cpus": common.cpu_count()}, reporter)
        return 1.0 - max(m["val_accuracy"] for m in reporter.metrics)

    return Problem("convnet_digits", v, objective, None)


# --------------------------------------------------------------------------- methods


@dataclass
class Trace:
    """One search: the configs tried and their losses, in order."""

    configs: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.losses)


def variant(algorithm: str, **attributes: Any) -> type[SpaceSearcher]:
    """The searcher of ``algorithm`` with class settings changed (``tpe_settings``, ``fidelity_aware``, ...)."""
    base = searcher_class(algorithm)
    return type(f"{base.__name__}Variant", (base,), attributes)


def tuned_tpe(**settings: Any) -> type[SpaceSearcher] | None:
    """The orchestrator's TPE searcher calling ``tpe.suggest`` with extra keyword settings (gamma, ...)."""
    if not settings:
        return None
    return variant("tpe", tpe_settings={**searcher_class("tpe").tpe_settings, **settings})


def with_search(version: StudyVersion, **search: Any) -> StudyVersion:
    return dataclasses.replace(version, search=dataclasses.replace(version.search, **search))


def run_searcher(
    version: StudyVersion,
    objective: Objective,
    n: int,
    seed: int,
    prior: Sequence[tuple[dict[str, Any], float]] = (),
    searcher_cls: type[SpaceSearcher] | None = None,
) -> Trace:
    """Drive the space's searcher (``search.algorithm`` from the registry, or ``searcher_cls``) in-process."""
    searcher = (searcher_cls or searcher_class(version.search.algorithm))(version, list(prior), seed=seed)
    trace = Trace()
    for i in range(n):
        config = searcher.suggest(f"t{i}")
        values = {k: config[k] for k in version.params.params}
        loss = objective(values)
        searcher.on_trial_complete(f"t{i}", {version.metric.name: loss})
        trace.configs.append(values)
        trace.losses.append(loss)
    return trace


def run_optuna(version: StudyVersion, objective: Objective, n: int, seed: int, **sampler: Any) -> Trace:
    """Optuna's TPE, default settings unless ``sampler`` says otherwise (Optuna 5 defaults to multivariate),
    over the product's view of the space (``orchestrator.engine.backends.optuna``)."""
    import optuna

    from orchestrator.engine.backends import optuna as optuna_backend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed, **sampler))
    trace = Trace()

    def evaluate(trial: Any) -> float:
        values = optuna_backend.sample(version.params, trial)
        loss = objective(values)
        trace.configs.append(values)
        trace.losses.append(loss)
        return loss

    study.optimize(evaluate, n_trials=n)
    return trace


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[[Problem, int, int], Trace]


def searcher_method(name: str, startup: int | None = None, algorithm: str = "tpe", **tpe: Any) -> Method:
    def run(problem: Problem, n: int, seed: int) -> Trace:
        version = with_search(problem.version, algorithm=algorithm)
        if startup is not None:
            version = with_search(version, startup_trials=startup)
        return run_searcher(version, problem.objective, n, seed, searcher_cls=tuned_tpe(**tpe))

    return Method(name, run)


REFINE_RESTART = "refine + restart"
COLD = "orchestrator TPE"  # the cold search refine + restart is compared with: the same searcher, all N trials
RESTART_SEED_OFFSET = 7919  # the restarted search's seed: seed + this, so v2's draws differ from v1's


def refine_restart(problem: Problem, n: int, seed: int, rule: str = "model") -> Trace:
    """v1 for n/2 trials, v2 from ``refine`` warm-started with the v1 trials that fit it, n/2 more."""
    first = n // 2
    v1 = problem.version
    t1 = run_searcher(v1, problem.objective, first, seed)
    v2 = refined_version(v1, t1, rule)
    report = carry(
        (RecordedTrial(c, loss, version=v1.version) for c, loss in zip(t1.configs, t1.losses, strict=True)), v2
    )
    t2 = run_searcher(v2, problem.objective, n - first, seed + RESTART_SEED_OFFSET, prior=report.carried)
    return Trace(t1.configs + t2.configs, t1.losses + t2.losses)


MODEL_RULE, TOPK_RULE = "model", "top-K"  # refine's rule now (the product's), and before issue 25 (bench copy)
REFINE_OPTIONS = RefineOptions()  # the model rule's options: the defaults (``--narrow-p`` changes one for a trial)
UNCHANGED = "v1 unchanged"  # the restart alone: a second search of v1, warm-started, as when refine changes nothing


def refined_version(v1: StudyVersion, trace: Trace, rule: str = MODEL_RULE) -> StudyVersion:
    """What ``orchestrator space refine`` would propose from ``trace``'s trials; ``v1`` when it proposes nothing.

    ``rule`` is the product's (``refine_trials``: rank, model, rules; ``REFINE_OPTIONS``), the top-K rule
    it replaced (``bench.refine_topk``), or ``UNCHANGED`` (v1 as it is). The losses are the metric's values: every
    problem here minimises a metric named ``loss``.
    """
    trials = [
        RecordedTrial(c, loss, version=v1.version, run_id=f"t{i:04d}")
        for i, (c, loss) in enumerate(zip(trace.configs, trace.losses, strict=True))
    ]
    if rule == UNCHANGED:
        return v1
    try:
        if rule == TOPK_RULE:
            return refine_topk(v1, trials).version
        return refine_trials(v1, trials, REFINE_OPTIONS).version
    except RefineError:  # too few trials, or nothing worth changing: the restart goes on with v1
        return v1


BASE_METHODS = [
    searcher_method("orchestrator TPE"),
    searcher_method("orchestrator optuna_tpe", algorithm="optuna_tpe"),
    searcher_method("random", algorithm="random"),
    Method("optuna TPE", lambda p, n, s: run_optuna(p.version, p.objective, n, s)),
    Method(REFINE_RESTART, refine_restart),
]
QUICK_VARIANTS = [
    Method("optuna TPE univariate", lambda p, n, s: run_optuna(p.version, p.objective, n, s, multivariate=False)),
    searcher_method("hyperopt startup=20", startup=20),
    searcher_method("hyperopt startup=3", startup=3),
    searcher_method("hyperopt startup=5 EI=100", startup=5, n_EI_candidates=100),
]
FULL_VARIANTS = [
    *QUICK_VARIANTS,
    searcher_method("hyperopt startup=5", startup=5),
    searcher_method("hyperopt EI=100", n_EI_candidates=100),
    searcher_method("hyperopt gamma=0.1", gamma=0.1),
    searcher_method("hyperopt prior_weight=0.5", prior_weight=0.5),
    searcher_method("hyperopt startup=3 EI=100", startup=3, n_EI_candidates=100),
]


# --------------------------------------------------------------------------- refine decision quality (issue 25)

REFINE_SIZES = (15, 30)  # orchestrator TPE trials before refine (``--refine-sizes``)
RULES = (MODEL_RULE, TOPK_RULE)


@dataclass(frozen=True)
class RefineCase:
    """A space, its objective and what a right proposal does.

    ``holds_optimum(v2)``: v2 still holds the best configuration v1's ranges allow (for an optimum beyond a bound,
    the point on that bound: narrowing that side moves away from the optimum); ``widened(v2)``: the bound that
    should widen did (``None`` when none should); ``no_effect``: top-level parameters that do not change the loss.
    """

    name: str
    what: str
    version: StudyVersion
    objective: Objective
    holds_optimum: Callable[[StudyVersion], bool]
    widened: Callable[[StudyVersion], bool] | None = None
    no_effect: tuple[str, ...] = ()


def refine_cases() -> list[RefineCase]:
    beyond = make_version(
        "r_beyond", {"x": {"uniform": [1.0, 2.0], "limits": [0.0, 10.0]}, "y": {"uniform": [-10.0, 10.0]}}
    )
    inside = make_version("r_inside", {"lr": {"loguniform": [1.0e-5, 1.0]}, "y": {"uniform": [0.0, 1.0]}})
    no_effect = make_version(
        "r_no_effect",
        {"x": {"uniform": [0.0, 1.0]}, "y": {"uniform": [-5.0, 5.0]}, "z": {"uniform": [0.0, 10.0]}},
    )
    conditional_version = analytic_problems()[2].version

    def holds(config: Mapping[str, Any]) -> Callable[[StudyVersion], bool]:
        return lambda v: v.params.contains(config) is None

    return [
        RefineCase(
            "beyond a bound",
            "x in [1, 2] (limits [0, 10]) with its optimum at 0.3, beside y in [-10, 10] that dominates: "
            "(x - 0.3)^2 + 0.1 (y - 2)^2",
            beyond,
            lambda c: (c["x"] - 0.3) ** 2 + 0.1 * (c["y"] - 2.0) ** 2,
            holds({"x": 1.0, "y": 2.0}),
            lambda v: v.params.params["x"].low < 1.0,
        ),
        RefineCase(
            "inside a wide range",
            "lr log-uniform in [1e-5, 1] with its optimum at 1e-3, beside y in [0, 1]: "
            "((log10 lr + 3) / 2)^2 + (y - 0.7)^2",
            inside,
            lambda c: ((math.log10(c["lr"]) + 3.0) / 2.0) ** 2 + (c["y"] - 0.7) ** 2,
            holds({"lr": 1.0e-3, "y": 0.7}),
        ),
        RefineCase(
            "one branch of a conditional space",
            "the conditional problem: optimum 0 with sgd (lr 10^-1.5, momentum 0.9, layers 3); adam's best is 0.3",
            conditional_version,
            conditional,
            holds({"optimizer": {"name": "sgd", "momentum": 0.9}, "lr": 10**-1.5, "layers": 3}),
        ),
        RefineCase(
            "a parameter without effect",
            "z in [0, 10] changes nothing, beside x in [0, 1] and y in [-5, 5]: 4 (x - 0.3)^2 + 0.1 (y - 1)^2",
            no_effect,
            lambda c: 4.0 * (c["x"] - 0.3) ** 2 + 0.1 * (c["y"] - 1.0) ** 2,
            lambda v: v.params.contains({"x": 0.3, "y": 1.0, "z": v.params.params["z"].low}) is None,
            no_effect=("z",),
        ),
    ]


def case_trace(case: RefineCase, n: int, seed: int) -> Trace:
    """The trials refine reads: n trials of the orchestrator's TPE (``tpe``, as the space configures it)."""
    return run_searcher(case.version, case.objective, n, seed)


def judge(case: RefineCase, v2: StudyVersion) -> dict[str, bool | None]:
    """What one proposal did: widened the bound it should, kept the optimum, left parameters without effect alone."""
    return {
        "proposed": v2 is not case.version,
        "widened": None if case.widened is None else case.widened(v2),
        "excludes_optimum": not case.holds_optimum(v2),
        "left_alone": None
        if not case.no_effect
        else all(v2.params.params[name] == case.version.params.params[name] for name in case.no_effect),
    }


def decision_quality(cases: Sequence[RefineCase], seeds: int, sizes: Sequence[int] = REFINE_SIZES) -> dict[str, Any]:
    """Per case, trials before refine and rule: the share of seeds with each outcome of ``judge``."""
    out: dict[str, Any] = {}
    for case in cases:
        per_size: dict[str, Any] = {}
        for n in sizes:
            verdicts: dict[str, list[dict[str, bool | None]]] = {rule: [] for rule in RULES}
            example: dict[str, str] = {}
            for seed in range(seeds):
                trace = case_trace(case, n, seed)
                for rule in RULES:
                    v2 = refined_version(case.version, trace, rule)
                    verdicts[rule].append(judge(case, v2))
                    if seed == 0:
                        example[rule] = v2.notes if v2 is not case.version else "(no proposal)"
            per_size[str(n)] = {
                rule: {**shares(verdicts[rule]), "per_seed": verdicts[rule], "seed_0": example[rule]} for rule in RULES
            }
        out[case.name] = {"what": case.what, "sizes": per_size}
    return out


def shares(verdicts: Sequence[Mapping[str, bool | None]]) -> dict[str, float | None]:
    """The share of seeds where each outcome holds (``None`` where the outcome does not apply)."""
    out: dict[str, float | None] = {}
    for key in ("proposed", "widened", "excludes_optimum", "left_alone"):
        values = [v[key] for v in verdicts if v[key] is not None]
        out[key] = sum(map(bool, values)) / len(values) if values else None
    return out


def decision_goal(quality: Mapping[str, Any]) -> dict[str, Any]:
    """The issue's goals for the model rule: widened >= 80 % at the largest size (30 trials) where a bound should
    widen; excludes the optimum <= 5 % at every size in every case; the top-K rule's figures beside it."""
    sizes = list(next(iter(quality.values()))["sizes"])
    largest = sizes[-1]
    widen_at_30 = {
        rule: [
            c["sizes"][largest][rule]["widened"]
            for c in quality.values()
            if c["sizes"][largest][rule]["widened"] is not None
        ]
        for rule in RULES
    }
    worst_exclusion = {
        rule: max(c["sizes"][n][rule]["excludes_optimum"] for c in quality.values() for n in sizes) for rule in RULES
    }
    return {
        rule: {
            "widened_at_30": min(widen_at_30[rule]),
            "widened_met": min(widen_at_30[rule]) >= 0.8,
            "worst_excludes_optimum": worst_exclusion[rule],
            "excludes_met": worst_exclusion[rule] <= 0.05,
        }
        for rule in RULES
    }


def restart_quality(seeds: Sequence[int], n: int) -> dict[str, Any]:
    """refine + restart with each rule against one cold search of n trials, per problem, median best over the first
    ``s`` seeds for each ``s`` in ``seeds`` (the same searches: seeds 0..s-1); beside them the restart alone, v1
    unchanged (what refine + restart is when refine proposes nothing)."""
    most = max(seeds)
    out: dict[str, Any] = {}
    for problem in analytic_problems():
        bests = {
            COLD: [run_searcher(problem.version, problem.objective, n, seed).best for seed in range(most)],
            **{rule: [refine_restart(problem, n, seed, rule).best for seed in range(most)] for rule in RULES},
            UNCHANGED: [refine_restart(problem, n, seed, UNCHANGED).best for seed in range(most)],
        }
        out[problem.name] = {
            str(s): {
                **{name: summarize(values[:s]) for name, values in bests.items()},
                "met": {rule: float(np.median(bests[rule][:s])) <= float(np.median(bests[COLD][:s])) for rule in RULES},
            }
            for s in seeds
        }
        out[problem.name]["bests"] = bests
        out[problem.name]["chance"] = restart_chance(bests, seeds)
    return out


def restart_chance(bests: Mapping[str, Sequence[float]], seeds: Sequence[int]) -> dict[str, Any]:
    """How decisive the goal's comparison is: for each ``s`` in ``seeds`` that fits at least twice in the seeds run,
    the share of disjoint blocks of ``s`` seeds in which each restart's median best is at most the cold search's
    (``UNCHANGED`` is the same search as the cold one in distribution, so its share is what chance gives the goal),
    and over all the seeds the two-sided Mann-Whitney p of each restart against the cold search."""
    from scipy.stats import mannwhitneyu

    most = len(bests[COLD])
    restarts = [*RULES, UNCHANGED]
    blocks: dict[str, Any] = {}
    for s in seeds:
        starts = range(0, most - s + 1, s)
        if len(starts) < 2:
            continue
        blocks[str(s)] = {
            "blocks": len(starts),
            **{
                name: sum(
                    float(np.median(bests[name][i : i + s])) <= float(np.median(bests[COLD][i : i + s])) for i in starts
                )
                / len(starts)
                for name in restarts
            },
        }
    p_values = {
        name: float(mannwhitneyu(bests[name], bests[COLD], alternative="two-sided").pvalue) for name in restarts
    }
    return {"share_of_blocks_met": blocks, "mann_whitney_p": p_values, "seeds": most}


def refine_cost(sizes: Sequence[int]) -> dict[str, Any]:
    """Seconds ``refine_trials`` (rank, model, rules) takes on n random trials of Hartmann-6 and of the conditional
    space: the best of 3 runs, and the first (which imports numpy and scikit-learn)."""
    out: dict[str, Any] = {}
    for problem in (analytic_problems()[1], analytic_problems()[2]):
        rng = np.random.default_rng(0)
        for n in sizes:
            configs = [sample_config(problem.version.params, rng) for _ in range(n)]
            trials = [RecordedTrial(c, problem.objective(c), run_id=f"t{i:05d}") for i, c in enumerate(configs)]
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                with contextlib.suppress(RefineError):  # nothing to change is an answer too
                    refine_trials(problem.version, trials)
                times.append(time.perf_counter() - t0)
            out[f"{problem.name} {n}"] = {"best_s": min(times), "first_s": times[0]}
    return out


REFINE_PARTS = ("decisions", "restart", "cost")  # ``--parts refine`` runs all three


def run_refine_part(
    parts: set[str],
    refine_seeds: int,
    sizes: Sequence[int],
    restart_seeds: Sequence[int],
    n: int,
    cost_trials: Sequence[int],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "decisions" in parts:
        print(f"refine decisions: {len(refine_cases())} cases x {list(sizes)} trials x {refine_seeds} seeds ...")
        out["decisions"] = decision_quality(refine_cases(), refine_seeds, sizes)
        out["decision_goal"] = decision_goal(out["decisions"])
        report_decisions(out)
    if "restart" in parts:
        print(f"refine + restart ({n // 2} + {n - n // 2}) vs cold ({n}): {max(restart_seeds)} seeds ...", flush=True)
        out["restart"], out["restart_trials"] = restart_quality(restart_seeds, n), n
        report_restarts(out)
    if "cost" in parts:
        print("refine cost ...", flush=True)
        out["cost"] = refine_cost(cost_trials)
        common.print_table(
            ["trials", "best of 3 (s)", "first (s)"],
            [[k, v["best_s"], v["first_s"]] for k, v in out["cost"].items()],
            "refine_trials (rank, model, rules) on random trials",
        )
    return out


def report_decisions(out: Mapping[str, Any]) -> None:
    rows = []
    for name, case in out["decisions"].items():
        for n, per_rule in case["sizes"].items():
            for rule in RULES:
                s = per_rule[rule]
                rows.append([name, int(n), rule, s["widened"], s["excludes_optimum"], s["left_alone"], s["proposed"]])
    first = next(iter(out["decisions"].values()))["sizes"]
    seeds = len(next(iter(first.values()))[MODEL_RULE]["per_seed"])
    common.print_table(
        ["case", "trials", "rule", "widened", "excludes optimum", "no-effect left alone", "proposed"],
        rows,
        f"refine decisions: share of {seeds} seeds (model = now, top-K = before, same trials)",
    )
    for rule, g in out["decision_goal"].items():
        print(
            f"goal, {rule} rule: widened at 30 trials {g['widened_at_30']:.0%} (>= 80 %: "
            f"{'met' if g['widened_met'] else 'NOT met'}); worst share excluding the optimum "
            f"{g['worst_excludes_optimum']:.0%} (<= 5 %: {'met' if g['excludes_met'] else 'NOT met'})"
        )


def report_restarts(out: Mapping[str, Any]) -> None:
    rows = []
    for name, res in out["restart"].items():
        for s, at in res.items():
            if s in ("bests", "chance"):
                continue
            rows.append(
                [
                    name,
                    int(s),
                    at[MODEL_RULE]["median"],
                    at[TOPK_RULE]["median"],
                    at[UNCHANGED]["median"],
                    at[COLD]["median"],
                    "met" if at["met"][MODEL_RULE] else "NOT met",
                    "met" if at["met"][TOPK_RULE] else "NOT met",
                ]
            )
    n = out["restart_trials"]
    headers = ["problem", "seeds", "restart, model", "restart, top-K", "restart, v1 unchanged", "cold"]
    common.print_table(
        [*headers, "goal, model", "goal, top-K"],
        rows,
        f"refine + restart ({n // 2} + {n - n // 2}) vs one cold search of {n}: median best",
    )
    rows = []
    for name, res in out["restart"].items():
        chance = res["chance"]
        for s, shares in chance["share_of_blocks_met"].items():
            rows.append([name, f"{shares['blocks']} x {s}", *(shares[r] for r in (*RULES, UNCHANGED))])
        rows.append([name, f"p, {chance['seeds']} seeds", *(chance["mann_whitney_p"][r] for r in (*RULES, UNCHANGED))])
    common.print_table(
        ["problem", "blocks x seeds", "model", "top-K", "v1 unchanged (chance)"],
        rows,
        "how often a median over disjoint blocks of seeds meets the goal (restart <= cold); Mann-Whitney p, all seeds",
    )


# --------------------------------------------------------------------------- statistics and driver


def summarize(bests: Sequence[float]) -> dict[str, float]:
    q1, med, q3 = np.percentile(bests, [25, 50, 75])
    return {
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(q3 - q1),
        "mean": statistics.fmean(bests),
        "seeds": len(bests),
    }


def evaluate_method(method: Method, problem: Problem, n: int, seeds: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    bests = [method.run(problem, n, seed).best for seed in range(seeds)]
    return {**summarize(bests), "bests": bests, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--seeds", type=int, help="seeds per method and problem (default 10 quick, 20 full)")
    p.add_argument("--trials", type=int, default=50, help="N, trials per search (default 50)")
    p.add_argument("--convnet-trials", type=int, default=12, help="N for ConvNet-digits (full mode; default 12)")
    p.add_argument("--convnet-seeds", type=int, default=3, help="seeds for ConvNet-digits (full mode; default 3)")
    p.add_argument("--convnet-epochs", type=int, default=2, help="epochs per ConvNet trial (full mode; default 2)")
    p.add_argument("--no-variants", action="store_true", help="skip the hyperopt setting variants")
    p.add_argument(
        "--parts",
        default="search,refine",
        help="comma-separated: search (the methods), refine (= decisions,restart,cost: refine's part)",
    )
    p.add_argument("--refine-seeds", type=int, default=20, help="seeds per refine case and size (default 20)")
    p.add_argument("--refine-sizes", default="15,30", help="TPE trials before refine, comma-separated (15,30)")
    p.add_argument(
        "--restart-seeds", default="10,30", help="refine + restart vs cold over the first S seeds, each S (10,30)"
    )
    p.add_argument("--cost-trials", default="100,1000", help="trial counts refine's cost is measured at (100,1000)")
    p.add_argument("--narrow-p", type=float, help="RefineOptions.narrow_p for the model rule (default: the product's)")
    args = p.parse_args(argv)
    common.quiet_libraries()
    global REFINE_OPTIONS
    REFINE_OPTIONS = RefineOptions() if args.narrow_p is None else RefineOptions(narrow_p=args.narrow_p)
    parts = set(args.parts.split(","))
    seeds = args.seeds or (10 if args.quick else 20)
    variants = [] if args.no_variants else QUICK_VARIANTS if args.quick else FULL_VARIANTS
    out: dict[str, Any] = {
        "trials": args.trials,
        "seeds": seeds,
        "problems": {},
        "refine_options": vars(REFINE_OPTIONS),
    }
    if "search" in parts:
        for problem in analytic_problems():
            print(
                f"{problem.name}: {len(BASE_METHODS) + len(variants)} methods x {seeds} seeds x {args.trials} "
                "trials ...",
                flush=True,
            )
            out["problems"][problem.name] = run_problem(problem, [*BASE_METHODS, *variants], args.trials, seeds)
        if not args.quick:
            problem = convnet_problem(args.convnet_epochs)
            print(f"{problem.name}: {args.convnet_seeds} seeds x {args.convnet_trials} trials ...", flush=True)
            out["problems"][problem.name] = run_problem(problem, BASE_METHODS, args.convnet_trials, args.convnet_seeds)
        out["example_v2"] = example_v2(analytic_problems()[2], args.trials)
        out["goal"] = goal(out)
        report(out)
    if "refine" in parts:
        parts |= set(REFINE_PARTS)
    if parts & set(REFINE_PARTS):
        restart_seeds = [int(s) for s in args.restart_seeds.split(",")]
        cost_trials = [int(s) for s in args.cost_trials.split(",")]
        sizes = [int(s) for s in args.refine_sizes.split(",")]
        out["refine"] = run_refine_part(parts, args.refine_seeds, sizes, restart_seeds, args.trials, cost_trials)
    return common.finish("search_quality", args.quick, out, args.out)


def run_problem(problem: Problem, methods: Sequence[Method], n: int, seeds: int) -> dict[str, Any]:
    res: dict[str, Any] = {"optimum": problem.optimum, "trials": n, "methods": {}}
    for method in methods:
        res["methods"][method.name] = evaluate_method(method, problem, n, seeds)
    return res


def example_v2(problem: Problem, n: int) -> str:
    """The space file refine + restart searched after v1 for seed 0 (for the record): refine's v2 with its notes,
    or v1 when refine proposed no change."""
    return dump(refined_version(problem.version, run_searcher(problem.version, problem.objective, n // 2, 0)))


def goal(out: dict[str, Any]) -> dict[str, Any]:
    """Per problem, on median best values: orchestrator TPE at least as good as Optuna TPE, and refine + restart
    at least as good as one cold search of the same total budget (``refine_restart``)."""
    result = {}
    for name, res in out["problems"].items():
        m = res["methods"]
        ours, optuna = m[COLD]["median"], m["optuna TPE"]["median"]
        restarted = m[REFINE_RESTART]["median"]
        ours_optuna = m["orchestrator optuna_tpe"]["median"]
        hyperopt_variants = [k for k in m if k == COLD or k.startswith("hyperopt")]
        best_variant = min(hyperopt_variants, key=lambda k: m[k]["median"])
        result[name] = {
            "orchestrator": ours,
            "optuna": optuna,
            "met": ours <= optuna,
            "orchestrator_optuna_tpe": ours_optuna,
            "optuna_tpe_met": ours_optuna <= optuna,
            "best_hyperopt_setting": best_variant,
            "best_hyperopt_median": m[best_variant]["median"],
            "best_hyperopt_met": m[best_variant]["median"] <= optuna,
            "refine_restart": {"median": restarted, "cold": ours, "met": restarted <= ours},
        }
    return result


def report(out: dict[str, Any]) -> None:
    for name, res in out["problems"].items():
        rows = []
        for method, s in res["methods"].items():
            gap = None if res["optimum"] is None else s["median"] - res["optimum"]
            rows.append([method, s["median"], gap, s["q1"], s["q3"], s["iqr"], s["seconds"]])
        title = (
            f"{name}: best value after {res['trials']} trials over {next(iter(res['methods'].values()))['seeds']} "
            f"seeds (optimum {res['optimum']})"
        )
        common.print_table(["method", "median best", "median - optimum", "q1", "q3", "IQR", "seconds"], rows, title)
    print()
    for name, g in out["goal"].items():
        print(
            f"goal on {name}: orchestrator TPE {g['orchestrator']:.4g} vs Optuna TPE {g['optuna']:.4g}: "
            f"{'met' if g['met'] else 'NOT met'}; best hyperopt setting tried: {g['best_hyperopt_setting']} "
            f"{g['best_hyperopt_median']:.4g} ({'met' if g['best_hyperopt_met'] else 'NOT met'}); "
            f"search.algorithm optuna_tpe {g['orchestrator_optuna_tpe']:.4g} "
            f"({'met' if g['optuna_tpe_met'] else 'NOT met'})"
        )
    report_refine_restart(out)


def report_refine_restart(out: dict[str, Any]) -> None:
    """refine + restart and the cold search side by side, per problem, with the goal's verdict."""
    n, seeds = out["trials"], out["seeds"]

    def spread(s: Mapping[str, float]) -> str:
        return f"[{s['q1']:.4g}, {s['q3']:.4g}]"

    rows = []
    for name, res in out["problems"].items():
        restarted, cold = res["methods"][REFINE_RESTART], res["methods"][COLD]
        verdict = "met" if out["goal"][name]["refine_restart"]["met"] else "NOT met"
        rows.append([name, restarted["median"], spread(restarted), cold["median"], spread(cold), verdict])
    title = (
        f"{REFINE_RESTART} ({n // 2} + {n - n // 2} trials) vs one cold search of {n} ({COLD}): "
        f"median best [q1, q3] over {seeds} seeds"
    )
    common.print_table(["problem", REFINE_RESTART, "[q1, q3]", "cold", "[q1, q3]", "goal"], rows, title)


if __name__ == "__main__":
    main()
