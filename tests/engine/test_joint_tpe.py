"""The joint model of the ``tpe`` searcher (``orchestrator.engine.searchers.joint_tpe``) on fixed observations."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hyperopt import tpe

from orchestrator.engine.backends.hyperopt import Axis, axes, decode, encode
from orchestrator.engine.searchers import joint_tpe
from orchestrator.engine.searchers.joint_tpe import Observation
from orchestrator.spaces import parse_version
from tests.engine.searcher_contract import HEAD

PLANE = [Axis("x", "", 0.0, 1.0), Axis("y", "", 0.0, 1.0)]
CONDITIONAL = parse_version(
    f"{HEAD}params:\n"
    "  optimizer: {choice: [{name: adam}, {name: sgd, momentum: {uniform: [0.0, 0.99]}}]}\n"
    "  lr: {loguniform: [1.0e-5, 1.0]}\n"
    "  layers: {int: [1, 8]}\n"
)


def diagonal_observations() -> list[Observation]:
    """Good trials at (0.1, 0.1) and (0.9, 0.9), bad ones everywhere else, the off-diagonal corners included: each
    coordinate alone is as good at 0.1 as at 0.9, only the pair tells them apart."""
    rng = np.random.default_rng(0)
    good = [(0.1, 0.1), (0.9, 0.9), (0.12, 0.1), (0.9, 0.88)]
    bad = [(0.1, 0.9), (0.9, 0.1), (0.12, 0.9), (0.9, 0.12)] + [tuple(rng.uniform(0, 1, 2)) for _ in range(20)]
    points = [(p, 0.0) for p in good] + [(p, 1.0 + abs(p[0] - p[1])) for p in bad]
    return [Observation({"x": [x], "y": [y]}, loss) for (x, y), loss in points]


def test_the_kernel_widths_are_hyperopts_mapped_back_to_each_observation() -> None:
    values = np.array([3.0, 1.0, 2.0, 2.0, 4.5])
    sigmas = joint_tpe._continuous_kernels(values, 0.0, 5.0, 1.0)
    _, sorted_mus, sorted_sigmas = tpe.adaptive_parzen_normal(values, 1.0, 2.5, 5.0, 25)
    assert len(sigmas) == len(values) + 1 and sigmas[-1] == 5.0  # each observation's, then the prior's
    assert sorted(zip(sorted_mus, sorted_sigmas, strict=True)) == sorted(zip([*values, 2.5], sigmas, strict=True))
    assert sigmas[1] == pytest.approx(1.0) and sigmas[4] == pytest.approx(1.5)  # 1.0: next to 2.0; 4.5: to 3.0
    assert joint_tpe._continuous_kernels(np.array([0.2]), 0.0, 1.0, 1.0).tolist() == [0.5, 1.0]
    assert joint_tpe._continuous_kernels(np.array([]), 0.0, 1.0, 1.0).tolist() == [1.0]


def test_a_grid_takes_one_width_by_scotts_rule_and_only_ranges_over_positions_are_grids() -> None:
    n, dims, low, high = 10, 5, -0.5, 9.5
    widths = joint_tpe._grid_kernels(n, dims, low, high)
    assert widths[:-1].tolist() == pytest.approx([0.2 * n ** (-1 / 9) * 10.0] * n) and widths[-1] == 10.0
    assert joint_tpe._grid_kernels(0, 1, 0.0, 1.0).tolist() == [1.0]  # the prior alone
    version = parse_version(
        f"{HEAD}params:\n"
        "  depth: {int: [1, 8]}\n"
        "  width: {quniform: [16, 128, 16]}\n"
        "  lr: {loguniform: [1.0e-5, 1.0]}\n"
        "  dropout: {uniform: [0.0, 0.5]}\n"
        "  act: {choice: [relu, gelu]}\n"
    )
    grids = {a.label: a.grid for a in axes(version.params)}
    assert grids == {"depth": True, "width": True, "lr": False, "dropout": False, "act": False}


def test_on_a_grid_a_candidate_is_judged_by_its_position_not_the_gap_it_was_drawn_in() -> None:
    """Bad trials at every position alike, the good ones at position 8: the grid's one width suggests 8. With
    hyperopt's neighbour widths the bad density is spikes at the positions (many observations share each), a draw
    between two of them scores high whatever position it rounds to, and the suggestions drift to the edge."""
    good = [Observation({"k": [8.0]}, 0.0)] * 3 + [Observation({"k": [2.0]}, 0.1)]
    bad = [Observation({"k": [float(k)]}, 1.0) for _ in range(6) for k in range(11)]

    def picks(grid: bool) -> int:
        axis = [Axis("k", "", -0.5, 10.5, grid=grid)]
        return sum(round(joint_tpe.suggest(axis, good + bad, 4, seed)["k"][0]) == 8 for seed in range(60))

    assert picks(grid=True) >= 55
    assert picks(grid=False) <= 30  # the rule before: position 8 in 15 of 60


def test_candidates_follow_the_good_pairs_where_a_univariate_model_cannot() -> None:
    """Nearly every joint suggestion lies near the diagonal (a candidate drawn from the prior component may win);
    hyperopt's ``tpe.suggest`` (each label on its own) picks x and y apart and lands off it far more often."""
    observations = diagonal_observations()
    joint = [joint_tpe.suggest(PLANE, observations, 4, seed) for seed in range(30)]
    assert sum(abs(v["x"][0] - v["y"][0]) > 0.3 for v in joint) <= 2
    assert all(0.0 <= v["x"][0] <= 1.0 and 0.0 <= v["y"][0] <= 1.0 for v in joint)

    version = parse_version(f"{HEAD}params:\n  x: {{uniform: [0.0, 1.0]}}\n  y: {{uniform: [0.0, 1.0]}}\n")
    from hyperopt import JOB_STATE_DONE, STATUS_OK, Domain, Trials

    from orchestrator.engine.backends.hyperopt import to_hyperopt, trial_misc

    domain = Domain(lambda _: 0.0, to_hyperopt(version.params))
    trials = Trials()
    trials._dynamic_trials = [
        {
            "tid": i,
            "misc": trial_misc(i, dict(o.vals)),
            "state": JOB_STATE_DONE,
            "result": {"loss": o.loss, "status": STATUS_OK},
        }
        for i, o in enumerate(observations)
    ]
    trials.refresh()
    gamma = (4 - 0.5) / math.sqrt(len(observations))  # the same 4 good trials
    univariate = [
        tpe.suggest([100], domain, trials, seed, n_startup_jobs=0, gamma=gamma)[0]["misc"]["vals"] for seed in range(30)
    ]
    assert sum(abs(v["x"][0] - v["y"][0]) > 0.3 for v in univariate) >= 6


def test_the_same_observations_and_seed_give_the_same_suggestion() -> None:
    observations = diagonal_observations()
    assert joint_tpe.suggest(PLANE, observations, 4, 7) == joint_tpe.suggest(PLANE, observations, 4, 7)
    assert joint_tpe.suggest(PLANE, observations, 4, 7) != joint_tpe.suggest(PLANE, observations, 4, 8)


def test_a_conditional_space_is_drawn_group_by_group_and_decodes() -> None:
    """The top level (optimizer, lr, layers) is one group, sgd's momentum another, modelled on the trials that
    took sgd; the best trials are sgd with momentum near 0.9, lr near 1e-2 and 3 layers."""
    space = CONDITIONAL.params
    assert [(a.label, a.group, a.options, a.log) for a in axes(space)] == [
        ("optimizer", "", 2, False),
        ("optimizer[1].momentum", "optimizer[1].", 0, False),
        ("lr", "", 0, True),
        ("layers", "", 0, False),
    ]
    rng = np.random.default_rng(3)
    observations = []
    for _ in range(60):
        sgd = bool(rng.integers(2))
        lr, layers = 10 ** rng.uniform(-5, 0), int(rng.integers(1, 9))
        config = {"optimizer": {"name": "sgd", "momentum": float(rng.uniform(0, 0.99))} if sgd else {"name": "adam"}}
        config |= {"lr": lr, "layers": layers}
        momentum = config["optimizer"].get("momentum", 0.0)
        loss = (0.0 if sgd else 0.3) + (math.log10(lr) + 2) ** 2 / 4 + (momentum - 0.9) ** 2 + 0.05 * (layers - 3) ** 2
        observations.append(Observation(encode(space, config), loss))
    suggestions = [decode(space, joint_tpe.suggest(axes(space), observations, 6, seed)) for seed in range(20)]
    assert all(space.contains(c) is None for c in suggestions)
    sgd = [c for c in suggestions if c["optimizer"]["name"] == "sgd"]
    assert len(sgd) >= 15
    assert np.median([c["optimizer"]["momentum"] for c in sgd]) > 0.6
    assert np.median([math.log10(c["lr"]) for c in suggestions]) == pytest.approx(-2, abs=1.0)


def test_no_observation_of_a_group_draws_it_from_its_prior() -> None:
    space = CONDITIONAL.params
    adam_only = [Observation(encode(space, {"optimizer": {"name": "adam"}, "lr": 1e-3, "layers": 2}), 0.5)] * 3
    vals = joint_tpe.suggest(axes(space), adam_only, 1, 0)
    assert 0.0 <= vals["optimizer[1].momentum"][0] <= 0.99  # drawn, in its range, should sgd be chosen
    assert space.contains(decode(space, vals)) is None


def test_a_suggestion_from_a_thousand_observations_takes_milliseconds() -> None:
    """The searcher fits on at most 1,000 observations (``HyperoptSearcher.model_trials``): the model's cost there.
    About 10 ms on 2 cores; the bound leaves room for a loaded machine."""
    rng = np.random.default_rng(0)
    eight = [Axis(f"x{i}", "", 0.0, 1.0) for i in range(6)] + [Axis("c", "", options=4), Axis("d", "", options=3)]
    observations = [
        Observation({**{f"x{i}": [float(v)] for i, v in enumerate(rng.uniform(size=6))}, "c": [1], "d": [2]}, float(u))
        for u in rng.uniform(size=1000)
    ]
    joint_tpe.suggest(eight, observations, 8, 0)
    t0 = time.perf_counter()
    for seed in range(5):
        joint_tpe.suggest(eight, observations, 8, seed)
    assert (time.perf_counter() - t0) / 5 < 0.25
