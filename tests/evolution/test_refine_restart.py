"""Refine and restart beats staying in v1: the optimum lies outside v1's range for x, mid-range for y.

The searcher is driven in-process (suggest -> evaluate -> complete, no Ray), the analytic objective
evaluated directly, so the test is fast and deterministic; v2 is warm-started with the v1 trials
that carry into it, exactly as ``orchestrator run`` feeds them.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.engine.searchers import searcher_class
from orchestrator.evolution.refining import refine_trials
from orchestrator.spaces import StudyVersion, parse_version
from orchestrator.spaces.carry import carry
from orchestrator.spaces.trials import RecordedTrial
from tests.spacefiles import space_doc

V1 = space_doc(
    "restart",
    search="{trials: 20, startup_trials: 5}",
    params="  x: {uniform: [0.0, 1.0]}\n  y: {uniform: [-20.0, 20.0]}\n",
)
X_OPT, Y_OPT = 1.3, 0.4
TRIALS = 30  # per version; the cold search gets both versions' budget
SEEDS = range(5)


def objective(c: Mapping[str, Any]) -> float:
    return (c["x"] - X_OPT) ** 2 + ((c["y"] - Y_OPT) / 20) ** 2


def search(version: StudyVersion, n: int, seed: int, prior: Sequence[tuple[dict[str, Any], float]] = ()) -> list:
    searcher = searcher_class(version.search.algorithm)(version, list(prior), seed=seed)
    trials = []
    for i in range(n):
        trial_id = f"v{version.version}-{i:03d}"
        config = searcher.suggest(trial_id)
        values = {k: config[k] for k in version.params.params}
        loss = objective(values)
        searcher.on_trial_complete(trial_id, {"loss": loss})
        trials.append(RecordedTrial(values, loss, version=version.version, run_id=trial_id))
    return trials


def test_refined_v2_finds_a_better_best_than_v1_with_the_same_budget() -> None:
    v1 = parse_version(V1)
    restarted, cold = [], []
    for seed in SEEDS:
        first = search(v1, TRIALS, seed)
        v2 = refine_trials(v1, first).version
        x, y = v2.params.params["x"], v2.params.params["y"]
        assert x.high > X_OPT and x.low > 0.0, v2.notes  # widened past the optimum (and off the far end)
        assert y.low > -20.0 and y.high < 20.0 and y.contains(Y_OPT), v2.notes  # narrowed around it
        prior = carry((RecordedTrial(t.config, t.value, status=t.status, version=t.version) for t in first), v2).carried
        second = search(v2, TRIALS, seed + 1000, prior)
        restarted.append(min(t.value for t in first + second))
        cold.append(min(t.value for t in search(v1, 2 * TRIALS, seed)))
    assert statistics.median(restarted) < statistics.median(cold), (restarted, cold)
    assert min(cold) >= (1.0 - X_OPT) ** 2  # v1 cannot get past its bound; v2 can
