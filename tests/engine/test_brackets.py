"""Asynchronous Hyperband's bracket allocation (``engine.brackets``), as ``plan.asha_scheduler`` makes it."""

from __future__ import annotations

import math
import pickle
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from orchestrator.engine.brackets import HyperbandAsha, bracket_sizes, weighted_cycle
from orchestrator.engine.plan import asha_scheduler
from orchestrator.spaces import parse_version
from orchestrator.spaces.version import Schedule
from tests.engine.searcher_contract import HEAD, QUADRATIC_PARAMS


def schedule_of(text: str) -> Schedule:
    return parse_version(f"{HEAD}schedule: {text}\n{QUADRATIC_PARAMS}").schedule


def scheduler(text: str) -> ASHAScheduler:
    asha = asha_scheduler(schedule_of(text))
    asha.set_search_properties("loss", "min")
    return asha


def brackets_joined(asha: ASHAScheduler, n: int, first: int = 0) -> list[int]:
    """The bracket index of each of ``n`` new trials (ids from ``first`` on), removed again after joining."""
    joined = []
    for i in range(first, first + n):
        trial = SimpleNamespace(trial_id=f"t{i}")
        asha.on_trial_add(None, trial)
        joined.append(asha._brackets.index(asha._trial_info[trial.trial_id]))
        asha.on_trial_remove(None, trial)
    return joined


@pytest.mark.parametrize(
    ("text", "sizes"),
    [
        ("{max_epochs: 27, brackets: 4}", (27, 12, 6, 4)),  # Li et al.'s table for eta 3, s_max 3
        ("{max_epochs: 27, brackets: 2}", (14, 6)),
        ("{max_epochs: 9, brackets: 3}", (9, 5, 3)),
        ("{max_epochs: 10, brackets: 4}", (27, 12, 6, 4)),  # rungs 1, 3, 9 below 10: as for 27
        ("{max_epochs: 40, grace_period: 4, reduction_factor: 2, brackets: 3}", (10, 6, 4)),  # rungs 4, 8, 16, 32
    ],
)
def test_bracket_sizes_give_every_bracket_the_same_budget(text: str, sizes: tuple[int, ...]) -> None:
    assert bracket_sizes(schedule_of(text)) == sizes


@pytest.mark.parametrize(
    "text",
    [
        "{max_epochs: 27, brackets: 4}",
        "{max_epochs: 10, brackets: 4}",
        "{max_epochs: 40, grace_period: 4, reduction_factor: 2, brackets: 5}",
    ],
)
def test_bracket_sizes_count_the_rungs_where_rays_brackets_stop_trials(text: str) -> None:
    s = schedule_of(text)
    stopping = [sum(math.ceil(m) < s.max_epochs for m, _ in b._rungs) for b in scheduler(text)._brackets]
    assert stopping[-1] == 0
    assert bracket_sizes(s) == tuple(math.ceil(s.brackets * s.reduction_factor**r / (r + 1)) for r in stopping)


def test_a_cycle_holds_each_bracket_its_size_spread_out() -> None:
    sizes = (27, 12, 6, 4)
    cycle = weighted_cycle(sizes)
    assert Counter(cycle) == dict(enumerate(sizes))
    for bracket, size in enumerate(sizes):
        places = [i for i, b in enumerate(cycle) if b == bracket]
        gaps = np.diff([*places, places[0] + len(cycle)])  # around the cycle
        assert gaps.max() <= -(-len(cycle) // size) + 1, (bracket, gaps)


def test_new_trials_join_the_brackets_in_hyperbands_proportions() -> None:
    """Over whole cycles the counts are exact; the bracket that never stops a trial gets 8%, not Ray's 3%."""
    asha = scheduler("{max_epochs: 27, brackets: 4}")
    assert isinstance(asha, HyperbandAsha)
    joined = Counter(brackets_joined(asha, 49 * 3))
    assert [joined[b] for b in range(4)] == [81, 36, 18, 12]

    stock = ASHAScheduler(max_t=27, grace_period=1, reduction_factor=3, brackets=4, metric="loss", mode="min")
    np.random.seed(0)
    ray_joined = Counter(brackets_joined(stock, 49 * 20))
    assert ray_joined[3] / (49 * 20) < 0.05 < 12 / 147  # Ray's e**rungs weights: ~3% in the never-stopping bracket


def test_the_allocation_is_deterministic_and_leaves_numpys_generator_alone() -> None:
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    first = brackets_joined(scheduler("{max_epochs: 27, brackets: 4}"), 60)
    assert np.array_equal(np.random.get_state()[1], before)
    assert brackets_joined(scheduler("{max_epochs: 27, brackets: 4}"), 60) == first


def test_one_bracket_is_rays_stock_scheduler() -> None:
    asha = asha_scheduler(schedule_of("{max_epochs: 27}"))
    assert type(asha) is ASHAScheduler and len(asha._brackets) == 1
    assert (asha._max_t, asha._reduction_factor, asha._time_attr) == (27, 3.0, "training_iteration")


def test_the_bracket_a_trial_joins_decides_where_it_can_be_stopped() -> None:
    """Under the first bracket a worse trial stops at epoch 1; under the last it is never stopped early."""
    asha = scheduler("{max_epochs: 27, brackets: 4}")
    cycle = weighted_cycle(bracket_sizes(schedule_of("{max_epochs: 27, brackets: 4}")))
    stopped_at = {}
    for i, bracket in enumerate(cycle[: cycle.index(3) + 1]):
        trial = SimpleNamespace(trial_id=f"t{i}")
        asha.on_trial_add(None, trial)
        for epoch in range(1, 28):
            action = asha.on_trial_result(None, trial, {"training_iteration": epoch, "loss": float(i)})
            if action == TrialScheduler.STOP:
                break
        stopped_at.setdefault(bracket, []).append(epoch)
    assert stopped_at[0][-1] == 1  # the later trials are worse: the first bracket stops them at its first rung
    assert stopped_at[3] == [27]


def test_the_cycle_survives_pickling_and_rays_save_restore(tmp_path: Path) -> None:
    asha = scheduler("{max_epochs: 27, brackets: 4}")
    expected = brackets_joined(scheduler("{max_epochs: 27, brackets: 4}"), 40)
    head = brackets_joined(asha, 15)
    assert brackets_joined(pickle.loads(pickle.dumps(asha)), 25, first=15) == expected[15:]

    asha.save(str(tmp_path / "scheduler.pkl"))
    restored = scheduler("{max_epochs: 27, brackets: 4}")
    restored.restore(str(tmp_path / "scheduler.pkl"))
    assert head + brackets_joined(restored, 25, first=15) == expected


def test_a_scheduler_without_metric_says_so() -> None:
    asha = asha_scheduler(schedule_of("{max_epochs: 27, brackets: 4}"))
    with pytest.raises(ValueError, match="metric"):
        asha.on_trial_add(None, SimpleNamespace(trial_id="t0"))
