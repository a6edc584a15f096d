"""MO-ASHA (``engine.pareto_asha``): rungs promote by non-dominated sorting, infeasible trials last, as
``plan.asha_scheduler`` makes it for a space of several objectives or with constraints."""

from __future__ import annotations

import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from orchestrator.engine.pareto import crowding
from orchestrator.engine.pareto_asha import ParetoAsha, ParetoBracket, promoted, rung_order
from orchestrator.engine.plan import asha_scheduler, asha_settings
from orchestrator.spaces import parse_version
from orchestrator.spaces.version import Metric, Schedule
from tests.engine.searcher_contract import HEAD, HEAD_MO, ZDT_PARAMS

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP

# A rung with reduction factor 3, trials in the order they reach it: (name, f1 loss, f2 loss, violation), and what
# each is told. ceil(n / 3) of the n trials recorded so far continue, by rung_order: feasible first, then the front,
# within a front the larger hypervolume contribution (each loss scaled to [0, 1] over the rung, reference 1.1), then
# arrival.
RUNG_TABLE = [
    ("a", 0.5, 0.5, 0.0, CONTINUE),  # the first: alone at the rung
    ("b", 0.6, 0.6, 0.0, STOP),  # dominated by a; 1 of 2 continues
    ("c", 0.2, 0.9, 0.0, STOP),  # on the front with a; scaled a (0.75, 0) owns 0.35, c (0, 1) 0.075; 1 of 3
    ("d", 0.9, 0.1, 0.0, CONTINUE),  # front a, c, d: a owns 0.286, d 0.05, c 0.043: d second of the 2 of 4 kept
    ("e", 0.4, 0.4, 0.0, CONTINUE),  # dominates a and b; in the middle of c, d, e it owns the most (0.446): first of 2
    ("f", 0.0, 0.0, 0.5, STOP),  # dominates everything but breaks a constraint: last of 6
    ("g", 0.1, 0.05, 0.0, CONTINUE),  # dominates every feasible trial: first of 7, 3 kept
]


def test_promotion_on_a_hand_made_rung_table() -> None:
    bracket = ParetoBracket(1, 9, 3, 0)
    recorded: dict[str, tuple[float, ...]] = {}
    for name, f1, f2, violation, told in RUNG_TABLE:
        point = (f1, f2, violation)
        assert bracket.on_result(SimpleNamespace(trial_id=name), 1, point) == told, name
        recorded[name] = point
        assert promoted(recorded, name, 3) == (told == CONTINUE), name
    # every trial is recorded at rung 1 once, whatever it was told; none reached rung 3
    rung_one = dict(bracket._rungs)[1]
    rung_three = dict(bracket._rungs)[3]
    assert list(rung_one) == [row[0] for row in RUNG_TABLE] and rung_three == {}


def test_the_knee_outranks_the_ends_of_a_front() -> None:
    """Crowding (NSGA-II) would keep the two ends first; a rung keeps the trial that owns the most of the volume."""
    front = [(0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.2, 0.2, 0.0)]  # cheapest, most accurate, the knee
    assert crowding([p[:2] for p in front])[2] < math.inf
    assert rung_order(front) == [2, 0, 1]  # the ends own 0.2 x 0.1 each (arrival breaks the tie), the knee 0.8 x 0.8
    recorded = {name: point for name, point in zip("abc", front, strict=True)}
    assert [promoted(recorded, name, 3) for name in "abc"] == [False, False, True]


def test_the_first_places_are_the_same_when_only_the_cut_front_is_ordered() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        points = [(*map(float, rng.integers(0, 6, 3)), float(rng.choice([0.0, 0.0, 0.0, 0.5]))) for _ in range(n)]
        for cut in range(1, n + 1):
            assert set(rung_order(points, cut)[:cut]) == set(rung_order(points)[:cut])


def test_a_trial_is_judged_once_per_rung_at_its_first_result_past_it() -> None:
    bracket = ParetoBracket(1, 9, 3, 0)
    assert bracket.on_result(SimpleNamespace(trial_id="a"), 1, (0.5, 0.5, 0.0)) == CONTINUE
    assert bracket.on_result(SimpleNamespace(trial_id="b"), 1, (0.1, 0.1, 0.0)) == CONTINUE
    # a again at epoch 2: below rung 3, already judged at 1: nothing to decide
    assert bracket.on_result(SimpleNamespace(trial_id="a"), 2, (9.0, 9.0, 0.0)) == CONTINUE
    # a reaches rung 3 at epoch 4 (its first result past it): judged there, alone: continues
    assert bracket.on_result(SimpleNamespace(trial_id="a"), 4, (0.4, 0.4, 0.0)) == CONTINUE
    assert list(dict(bracket._rungs)[3]) == ["a"]


def test_a_result_without_finite_objectives_stops_the_trial_unrecorded() -> None:
    bracket = ParetoBracket(1, 9, 3, 0)
    assert bracket.on_result(SimpleNamespace(trial_id="nan"), 1, None) == STOP
    assert dict(bracket._rungs)[1] == {}


def mo_asha(text: str, constraints: str = "") -> ParetoAsha:
    version = parse_version(f"{HEAD_MO}schedule: {text}\n{constraints}{ZDT_PARAMS}")
    scheduler = asha_scheduler(version.schedule, version.goals, version.constraints)
    assert isinstance(scheduler, ParetoAsha)
    scheduler.set_search_properties(version.metric.name, version.metric.mode)
    return scheduler


def test_the_scheduler_reads_every_objective_and_constraint_from_results() -> None:
    asha = mo_asha("{max_epochs: 9, grace_period: 1, reduction_factor: 3}", "constraints: {cost: {max: 1.0}}\n")
    trials = [SimpleNamespace(trial_id=name) for name in "abcd"]
    for trial in trials:
        asha.on_trial_add(None, trial)
    results = {  # loss is f1 (min), f2 (min), cost constrained to <= 1
        "a": {"loss": 0.5, "f2": 0.5, "cost": 0.5},
        "b": {"loss": 0.1, "f2": 0.1, "cost": 2.0},  # dominates a, breaks the constraint
        "c": {"loss": 0.4, "f2": float("nan"), "cost": 0.5},  # an objective not finite
        "d": {"loss": 0.3, "f2": 0.3, "cost": 0.5},  # dominates a
    }
    told = {t.trial_id: asha.on_trial_result(None, t, {**results[t.trial_id], "training_iteration": 1}) for t in trials}
    assert told == {"a": CONTINUE, "b": STOP, "c": STOP, "d": CONTINUE}
    # without every objective Ray's rule holds: no decision
    e = SimpleNamespace(trial_id="e")
    asha.on_trial_add(None, e)
    assert asha.on_trial_result(None, e, {"loss": 0.0, "training_iteration": 1}) == CONTINUE
    # at max_epochs a trial stops, as with ASHA
    assert asha.on_trial_result(None, trials[0], {**results["a"], "training_iteration": 9}) == STOP
    assert pickle.loads(pickle.dumps(asha))._brackets[0]._rungs[-1][1].keys() == {"a", "b", "d"}


def test_brackets_are_as_with_one_objective() -> None:
    """With ``schedule.brackets`` > 1 the brackets and their proportions are ``HyperbandAsha``'s; each stops trials
    from its own first rung on."""
    asha = mo_asha("{max_epochs: 27, grace_period: 1, reduction_factor: 3, brackets: 4}")
    single = asha_scheduler(parse_version(f"{HEAD}schedule: {{max_epochs: 27, brackets: 4}}\n{ZDT_PARAMS}").schedule)
    assert [[m for m, _ in b._rungs] for b in asha._brackets] == [[m for m, _ in b._rungs] for b in single._brackets]
    assert asha._cycle == single._cycle


def test_one_objective_promotes_as_ashas_top_fraction() -> None:
    """One objective through the same rule: the decisions agree with Ray's ASHA on all but borderline arrivals (ASHA
    interpolates a percentile of the trials before one; this counts places among all of them)."""
    schedule = Schedule(max_epochs=9, grace_period=1, reduction_factor=3)
    ours = ParetoAsha(schedule, (Metric("loss", "min"),), (), **asha_settings(schedule))
    ray = ASHAScheduler(**asha_settings(schedule))
    for s in (ours, ray):
        s.set_search_properties("loss", "min")
    rng = np.random.default_rng(0)
    agree = 0
    for i in range(300):
        trial = SimpleNamespace(trial_id=f"t{i}")
        result = {"loss": float(rng.normal()), "training_iteration": 1}
        ours.on_trial_add(None, trial)
        ray.on_trial_add(None, trial)
        agree += ours.on_trial_result(None, trial, result) == ray.on_trial_result(None, trial, result)
    assert agree >= 285, agree


@pytest.mark.parametrize("n", [1, 2, 3, 4, 10, 30])
def test_the_share_kept_is_one_in_reduction_factor(n: int) -> None:
    recorded = {f"t{i}": (float(i), 0.0) for i in range(n)}  # one objective, in order of arrival: best first
    kept = [name for name in recorded if promoted(recorded, name, 3)]
    assert len(kept) == math.ceil(n / 3) and kept == list(recorded)[: len(kept)]
