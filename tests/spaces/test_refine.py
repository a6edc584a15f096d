"""refine: narrow around the top trials, widen a crowded bound within limits, prune on strong evidence."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.spaces import NO_DEFAULT, LogUniform, parse_version
from orchestrator.spaces.check import validate_paths
from orchestrator.spaces.refine import (
    NotEnoughTrials,
    RefineError,
    RefineOptions,
    ScoredTrial,
    miss_chance,
    ranking_budget,
    refine,
)
from orchestrator.spaces.writer import dump, write

HEAD = """\
study: s
version: 1
trainable: analytic
metric: {name: loss, mode: min}
fixed: {function: quadratic}
params:
"""


def version(params: str, head: str = HEAD) -> Any:
    return parse_version(head + params)


def scored(configs: list[dict[str, Any]], objective: Callable[[Mapping[str, Any]], float]) -> list[ScoredTrial]:
    return [ScoredTrial(c, objective(c), run_id=f"run{i:03d}") for i, c in enumerate(configs)]


def grid(name: str, values: list[Any]) -> list[dict[str, Any]]:
    return [{name: v} for v in values]


def test_log_scale_narrows_in_log_space() -> None:
    v1 = version("  lr: {loguniform: [1.0e-4, 1.0e-1]}\n")
    lrs = [10 ** (-4 + 3 * i / 39) for i in range(40)]
    trials = scored(grid("lr", lrs), lambda c: abs(math.log10(c["lr"]) + 2.5))  # best at 10**-2.5, mid-range
    lr = refine(v1, trials).version.params.params["lr"]
    assert isinstance(lr, LogUniform)
    top = sorted(lrs, key=lambda x: abs(math.log10(x) + 2.5))[:10]
    # Margin: 10% of the log width (a factor 1000**0.1 ~ 2), then rounded outwards to 2 significant digits.
    assert min(top) / 1000**0.1 * 0.9 <= lr.low <= min(top) / 1000**0.1
    assert max(top) * 1000**0.1 <= lr.high <= max(top) * 1000**0.1 * 1.1
    assert lr.low > 1.0e-4 and lr.high < 1.0e-1


def test_int_range_with_step_stays_on_its_lattice() -> None:
    v1 = version("  n: {int: [0, 100], step: 5}\n  m: {int: [1, 64], log: true}\n")
    configs = [{"n": 5 * i, "m": 2 ** (i % 7)} for i in range(21)]
    result = refine(v1, scored(configs, lambda c: abs(c["n"] - 45) + 0.01 * c["m"]), RefineOptions(top=5))
    n, m = result.version.params.params["n"], result.version.params.params["m"]
    # The top 5 have n in [35, 55]: plus 10% of the width (10) on each side, on multiples of 5.
    assert (n.low, n.high, n.step) == (25, 65, 5) and isinstance(n.low, int) and isinstance(n.high, int)
    # Their m (1, 2, 4, 8, 16) plus 10% of the log width (a factor 64 ** 0.1 = 1.52), rounded outwards.
    assert (m.low, m.high) == (1, 25) and m.log_scale
    assert any(c.path == "n" and c.kind == "narrowed" for c in result.changes)


def test_quantized_ranges_snap_outwards_onto_multiples_of_q() -> None:
    v1 = version("  q: {quniform: [0.0, 1.0, 0.1]}\n  w: {qloguniform: [16, 256, 16]}\n")
    configs = [{"q": round(0.1 * (i % 11), 1), "w": 16 * (1 + i % 16)} for i in range(44)]
    result = refine(v1, scored(configs, lambda c: abs(c["q"] - 0.4) + abs(math.log(c["w"] / 48))))
    q, w = result.version.params.params["q"], result.version.params.params["w"]
    assert q.low >= 0.0 and q.high <= 1.0 and (q.low, q.high) != (0.0, 1.0)
    assert (
        q.contains(0.4)
        and math.isclose(q.low / 0.1, round(q.low / 0.1))
        and math.isclose(q.high / 0.1, round(q.high / 0.1))
    )
    assert w.q == 16 and w.low % 16 == 0 and w.high % 16 == 0 and w.low <= 48 <= w.high and w.high < 256
    assert w.integer
    # Earlier values stay values of the new range: the lattice is the old one.
    assert all(q.contains(c["q"]) for c in configs if q.low <= c["q"] <= q.high)


# As a search converging on the upper bound samples: 20 spread over the range, 10 in its top 5% (log).
CROWDING_HIGH = [3.0e-4 * 10 ** (i / 20) for i in range(20)] + [3.0e-3 * 10 ** (-0.05 * i / 10) for i in range(10)]


def test_a_crowded_bound_widens_log_aware_by_the_documented_factor() -> None:
    v1 = version("  lr: {loguniform: [3.0e-4, 3.0e-3]}\n")
    result = refine(v1, scored(grid("lr", CROWDING_HIGH), lambda c: -c["lr"]))  # the higher the better
    lr = result.version.params.params["lr"]
    assert lr.high == pytest.approx(3.0e-3 * 10**0.5, rel=0.02)  # half the log width further
    note = next(c.note for c in result.changes if c.path == "lr")
    assert "within 10% of the upper bound 0.003" in note and "widened to" in note


def test_limits_stop_a_widening_and_the_note_says_so() -> None:
    v1 = version("  lr: {loguniform: [3.0e-4, 3.0e-3], limits: [1.0e-6, 5.0e-3]}\n")
    lrs = CROWDING_HIGH
    result = refine(v1, scored(grid("lr", lrs), lambda c: -c["lr"]))
    lr = result.version.params.params["lr"]
    assert lr.high == 5.0e-3 and lr.limits == (1.0e-6, 5.0e-3)
    assert "stopped by limits [1e-06, 0.005]" in result.version.notes

    at_limit = version("  lr: {loguniform: [3.0e-4, 3.0e-3], limits: [1.0e-6, 3.0e-3]}\n")
    result = refine(at_limit, scored(grid("lr", lrs), lambda c: -c["lr"]))
    assert result.version.params.params["lr"].high == 3.0e-3
    assert "which is its limit: not widened" in result.version.notes


def test_conditional_sub_spaces_refine_per_option_from_the_trials_that_took_it() -> None:
    v1 = version(
        "  x: {uniform: [0.0, 1.0]}\n"
        "  optimizer:\n    choice:\n"
        "      - {name: adam, beta: {uniform: [0.5, 0.999]}}\n"
        "      - {name: sgd, momentum: {uniform: [0.0, 0.99]}}\n"
    )
    rng = random.Random(1)
    configs = []
    for i in range(60):
        opt = (
            {"name": "sgd", "momentum": rng.uniform(0, 0.99)}
            if i % 2
            else {"name": "adam", "beta": rng.uniform(0.5, 0.999)}
        )
        configs.append({"x": rng.uniform(0, 1), "optimizer": opt})

    def loss(c: Mapping[str, Any]) -> float:
        o = c["optimizer"]
        return abs(c["x"] - 0.5) + (abs(o["momentum"] - 0.2) if o["name"] == "sgd" else abs(o["beta"] - 0.9))

    new = refine(v1, scored(configs, loss)).version.params.params["optimizer"]
    adam, sgd = (opt.params for opt in new.options)
    assert adam["beta"].low > 0.5 and adam["beta"].contains(0.9)
    assert sgd["momentum"].high < 0.99 and sgd["momentum"].contains(0.2) and not sgd["momentum"].contains(0.9)

    few = scored([c for c in configs if c["optimizer"]["name"] == "adam"] + configs[1:4:2], loss)
    result = refine(v1, few)
    assert result.version.params.params["optimizer"].options[1] == v1.params.params["optimizer"].options[1]
    assert "optimizer[sgd]: only 2 ranked trial(s) took this option (need 5) -> sub-space kept" in result.version.notes


def test_a_parameter_beside_a_choice_keeps_each_kept_options_best_region() -> None:
    v1 = version(
        "  lr: {loguniform: [1.0e-5, 1.0]}\n"
        "  optimizer: {choice: [{name: adam}, {name: sgd, momentum: {uniform: [0.0, 0.99]}}]}\n"
    )
    adam = [{"lr": 10 ** (-3.5 + i / 30), "optimizer": {"name": "adam"}} for i in range(30)]  # best lr 1e-3
    sgd = [{"lr": 10 ** (-3 + 2 * i / 9), "optimizer": {"name": "sgd", "momentum": 0.9}} for i in range(10)]

    def loss(c: Mapping[str, Any]) -> float:
        best = -3.0 if c["optimizer"]["name"] == "adam" else -1.5
        return abs(math.log10(c["lr"]) - best) + (0.0 if c["optimizer"]["name"] == "adam" else 0.6)

    result = refine(v1, scored(adam + sgd, loss))
    lr = result.version.params.params["lr"]
    top = sorted(adam + sgd, key=loss)[:10]
    assert all(c["optimizer"]["name"] == "adam" for c in top)  # sgd never makes the top 10 ...
    assert len(result.version.params.params["optimizer"].options) == 2  # ... on too little evidence to prune it
    assert lr.contains(10**-1.5) and lr.contains(1e-3) and (lr.low, lr.high) != (1.0e-5, 1.0), result.version.notes
    assert "12 trials covered (top 10 and 2 best of other options)" in result.version.notes


def tanh_is_bad(c: Mapping[str, Any]) -> float:
    return abs(c["x"] - 0.5) + (5.0 if c["act"] == "tanh" else 0.0)


def activations(n: int) -> list[dict[str, Any]]:
    return [{"x": (i % 10) / 10, "act": ["relu", "tanh", "gelu"][i % 3]} for i in range(n)]


def test_a_choice_is_pruned_only_on_strong_evidence() -> None:
    v1 = version("  x: {uniform: [0.0, 1.0]}\n  act: {choice: [relu, tanh, gelu], default: tanh}\n")
    result = refine(v1, scored(activations(60), tanh_is_bad))
    act = result.version.params.params["act"]
    assert act.options == ("relu", "gelu") and act.default is NO_DEFAULT  # pruned, and its default with it
    assert 'option "tanh" tried 20 times, none in the top 15 (chance 0.00076' in result.version.notes
    assert "the default's option was pruned" in result.version.notes
    assert miss_chance(60, 15, 20) == pytest.approx(math.comb(45, 20) / math.comb(60, 20))

    # Weaker evidence: 10 of 30 trials all missing the top 8 happens by chance 2% of the time: kept.
    assert miss_chance(30, 8, 10) > RefineOptions().prune_alpha
    original = v1.params.params["act"]
    assert refine(v1, scored(activations(30), tanh_is_bad)).version.params.params["act"] == original
    for weaker in (RefineOptions(prune_min_trials=21), RefineOptions(prune=False)):
        assert refine(v1, scored(activations(60), tanh_is_bad), weaker).version.params.params["act"] == original


def asha_trials() -> list[ScoredTrial]:
    """An ASHA search on a validation loss that rises with training (overfitting): its early-stopped
    trials (x far from 0.2, stopped at epoch 1) have *lower* last values than the survivors (x near 0.2,
    trained to epoch 9), so ranking every trial on its last value would put the worst ones on top."""
    trials = []
    for i in range(24):
        survivor = i % 4 == 0
        x = 0.15 + 0.1 * (i / 24) if survivor else 0.5 + 0.5 * (i / 24)
        epochs = 9 if survivor else 1
        history = {e: abs(x - 0.2) + 0.1 * e for e in range(1, epochs + 1)}
        trials.append(ScoredTrial({"x": x}, history[epochs], history, run_id=f"run{i:02d}"))
    return trials


def test_asha_ranks_on_the_highest_budget_with_enough_trials() -> None:
    v1 = version(
        "  x: {uniform: [0.0, 1.0]}\n", HEAD.replace("params:", "schedule: {scheduler: asha, max_epochs: 9}\nparams:")
    )
    trials = asha_trials()
    assert ranking_budget(trials, 5) == 9 and ranking_budget(trials, 7) == 1
    result = refine(v1, trials)
    x = result.version.params.params["x"]
    assert result.budget == 9 and "6 ranked on epoch 9" in result.version.notes
    assert x.contains(0.2) and x.high < 0.5  # around the survivors, not the early-stopped trials

    naive = refine(v1, [ScoredTrial(t.config, t.value, run_id=t.run_id) for t in trials])  # no histories
    assert naive.budget is None and not naive.version.params.params["x"].contains(0.2)


def test_refine_is_deterministic_and_its_file_validates(tmp_path: Path) -> None:
    v1 = version("  x: {uniform: [-1.0, 1.0], default: 0.0}\n  n: {int: [1, 8]}\n  opt: {choice: [a, b]}\n")
    rng = random.Random(3)
    configs = [{"x": rng.uniform(-1, 1), "n": rng.randint(1, 8), "opt": rng.choice("ab")} for _ in range(30)]
    trials = scored(configs, lambda c: (c["x"] - 0.6) ** 2 + (c["n"] - 6) ** 2 / 50)
    first = refine(v1, trials)
    shuffled = trials[:]
    random.Random(0).shuffle(shuffled)
    again = refine(v1, shuffled)
    assert dump(first.version) == dump(again.version) and first.version.content_hash == again.version.content_hash
    assert first.version.version == 2 and first.version.parent == 1
    assert first.version.content_hash != v1.content_hash

    folder = tmp_path / "s"
    write(v1, folder / "v1.yaml")
    write(first.version, folder / "v2.yaml")
    report = validate_paths([folder])
    assert report.ok, report.problems
    assert [v.version for v in report.valid] == [1, 2]


def test_a_default_outside_the_new_range_is_removed_with_a_note() -> None:
    v1 = version("  x: {uniform: [-1.0, 1.0], default: -0.9}\n")
    result = refine(v1, scored(grid("x", [i / 20 for i in range(-20, 21)]), lambda c: abs(c["x"] - 0.5)))
    x = result.version.params.params["x"]
    assert not x.contains(-0.9) and x.default is NO_DEFAULT
    assert "x: the default -0.9 is outside the new range" in result.version.notes


def test_a_choice_default_outside_its_refined_option_is_removed_with_a_note() -> None:
    v1 = version(
        "  optimizer:\n"
        "    choice:\n"
        "      - {name: adam, lr: {loguniform: [1.0e-4, 1.0e-1]}}\n"
        "      - {name: sgd, lr: {loguniform: [1.0e-4, 1.0e-1]}}\n"
        "    default: {name: adam, lr: 1.0e-4}\n"
    )
    lrs = [10 ** (-4 + 3 * i / 19) for i in range(20)]
    configs = [{"optimizer": {"name": name, "lr": lr}} for name in ("adam", "sgd") for lr in lrs]
    result = refine(v1, scored(configs, lambda c: abs(math.log10(c["optimizer"]["lr"]) + 2)))
    optimizer = result.version.params.params["optimizer"]
    assert optimizer.default is NO_DEFAULT
    assert not optimizer.contains({"name": "adam", "lr": 1.0e-4})  # the narrowed lr left the default out
    assert "optimizer: the default" in result.version.notes and "outside its refined option" in result.version.notes
    dump(result.version)  # a valid version: a default it cannot produce would have raised


def test_too_few_finished_trials_is_a_clear_error() -> None:
    v1 = version("  x: {uniform: [0.0, 1.0]}\n")
    trials = scored(grid("x", [0.1, 0.2, 0.3, 0.4]), lambda c: c["x"])
    trials += [ScoredTrial({"x": 0.5}, None, status="FAILED"), ScoredTrial({"x": 2.0}, 0.0)]  # failed; outside
    with pytest.raises(NotEnoughTrials, match=r"s v1: 4 finished trial\(s\) .* at least 5"):
        refine(v1, trials)
    assert refine(v1, trials, RefineOptions(min_trials=4)).used == 4


def test_no_reason_to_change_is_an_error_not_a_copy() -> None:
    v1 = version("  x: {uniform: [0.0, 1.0]}\n")
    spread = [ScoredTrial({"x": x}, 0.0, run_id=f"good{x}") for x in (0.0, 0.25, 0.5, 0.75, 1.0)]
    rest = [ScoredTrial({"x": 0.5}, 1.0, run_id=f"rest{i:02d}") for i in range(15)]
    with pytest.raises(RefineError, match="s v1: the top 5 of 20 trials give no reason to change the space"):
        refine(v1, spread + rest)
