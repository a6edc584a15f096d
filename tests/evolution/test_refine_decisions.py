"""Refine's decisions on the cases of ``bench.search_quality`` (issue 25), each on a fixed set of trials.

The trials are the product's random draws (``bench.spacetools.sample_config``, seeded), so these tests do not
move when a searcher changes; the benchmark runs the same cases on TPE trials over many seeds. Each proposal
is judged by the benchmark's own ``judge``: the bound that should widen widens, no range is cut so that it
excludes the optimum, a parameter without effect is left alone and the notes say why.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.search_quality import RefineCase, Trace, judge, refine_cases, refined_version
from bench.spacetools import sample_config
from orchestrator.evolution.refining import refine_trials
from orchestrator.spaces.refine import RefineError
from orchestrator.spaces.trials import RecordedTrial

CASES = {case.name: case for case in refine_cases()}


def fixed_trials(case: RefineCase, n: int = 30, seed: int = 0) -> Trace:
    rng = np.random.default_rng(seed)
    configs = [sample_config(case.version.params, rng) for _ in range(n)]
    return Trace(configs, [case.objective(c) for c in configs])


def scored(trace: Trace) -> list[RecordedTrial]:
    return [
        RecordedTrial(c, v, run_id=f"t{i:03d}")
        for i, (c, v) in enumerate(zip(trace.configs, trace.losses, strict=True))
    ]


def test_an_optimum_beyond_a_bound_beside_a_dominating_parameter_widens_that_bound() -> None:
    case = CASES["beyond a bound"]
    result = refine_trials(case.version, scored(fixed_trials(case)))
    assert judge(case, result.version) == {
        "proposed": True,
        "widened": True,
        "excludes_optimum": False,
        "left_alone": None,
    }, result.version.notes
    x = next(c for c in result.changes if c.path == "x")
    assert "predicted loss falls toward the lower bound (P=" in x.evidence and "importance" in x.evidence
    assert x.kind == "widened" and result.version.params.params["x"].low >= 0.0  # never past limits [0, 10]


def test_an_optimum_inside_a_wide_range_stays_inside() -> None:
    case = CASES["inside a wide range"]
    result = refine_trials(case.version, scored(fixed_trials(case)))
    verdict = judge(case, result.version)
    assert verdict["proposed"] and not verdict["excludes_optimum"], result.version.notes
    lr = result.version.params.params["lr"]
    assert (lr.low, lr.high) != (1.0e-5, 1.0)  # narrowed, in log space, around 1e-3
    assert "holds a loss better than the best seen" in result.version.notes


def test_an_optimum_in_one_branch_of_a_conditional_space_is_kept() -> None:
    case = CASES["one branch of a conditional space"]
    for seed in range(3):
        trace = fixed_trials(case, seed=seed)
        verdict = judge(case, refined_version(case.version, trace))
        assert not verdict["excludes_optimum"], seed


def test_a_parameter_without_effect_is_left_alone_and_the_notes_say_why() -> None:
    case = CASES["a parameter without effect"]
    result = refine_trials(case.version, scored(fixed_trials(case)))
    assert judge(case, result.version) == {
        "proposed": True,
        "widened": None,
        "excludes_optimum": False,
        "left_alone": True,
    }, result.version.notes
    z = next(c for c in result.changes if c.path == "z")
    assert z.kind == "kept" and "barely matters, left as is" in z.note


def test_the_same_trials_give_the_same_evidence_and_proposal() -> None:
    case = CASES["inside a wide range"]
    trials = scored(fixed_trials(case))
    first, again = refine_trials(case.version, trials), refine_trials(case.version, trials[::-1])
    assert [c.note for c in first.assessed] == [c.note for c in again.assessed]
    assert first.version == again.version and first.version.notes == again.version.notes
    conditional = CASES["one branch of a conditional space"]
    trials = scored(fixed_trials(conditional))
    messages = set()
    for order in (trials, trials[::-1]):
        with pytest.raises(RefineError) as no_change:  # these 30 random trials justify no change ...
            refine_trials(conditional.version, order)
        messages.add(str(no_change.value))
    assert len(messages) == 1  # ... and say so with the same evidence, number for number


def test_refine_on_1000_trials_answers() -> None:
    """A study of 1,000 trials gets an answer (a proposal or the reason for none). Its cost is a benchmark's figure,
    not a timed test: ``bench.search_quality`` measures it (bench/README.md, refine decision quality)."""
    case = CASES["one branch of a conditional space"]
    trials = scored(fixed_trials(case, n=1000))
    try:
        refinement = refine_trials(case.version, trials)
    except RefineError as no_change:
        assert "gives no reason to change the space" in str(no_change)
    else:
        assert refinement.version.params != case.version.params
