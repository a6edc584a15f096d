"""refine: the rules on given evidence (pure), and the whole decision from trials (rank, model, rules).

The first half hands ``refine`` evidence written by hand, so each rule is checked on its own numbers:
widen by a step that grows with the probability, never past limits; narrow to the furthest cut whose
region is unlikely to hold a better value, never past the best trial; leave a parameter that barely
matters; prune an option on the same kind of evidence; lattices and defaults. The second half runs
``refine_trials`` (``orchestrator.evolution.refining``: the product's path) on fixed trials.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from orchestrator.evolution.refining import refine_trials
from orchestrator.spaces import NO_DEFAULT, LogUniform, StudyVersion, parse_version
from orchestrator.spaces.check import validate_paths
from orchestrator.spaces.refine import (
    ChoiceEvidence,
    Cut,
    Evidence,
    NotEnoughTrials,
    NumberEvidence,
    OptionEvidence,
    RefineError,
    RefineOptions,
    Side,
    rank,
    ranking_budget,
    refine,
)
from orchestrator.spaces.trials import RecordedTrial
from orchestrator.spaces.writer import dump, write
from tests.spacefiles import space_doc
from tests.spaces.scored import asha_trials

ROOT = Path(__file__).resolve().parents[2]
HEAD = space_doc("s", params=None) + "params:\n"  # each case appends its parameters


def version(params: str, head: str = HEAD) -> Any:
    return parse_version(head + params)


def scored(configs: list[dict[str, Any]], objective: Callable[[Mapping[str, Any]], float]) -> list[RecordedTrial]:
    return [RecordedTrial(c, objective(c), run_id=f"run{i:03d}") for i, c in enumerate(configs)]


def grid(name: str, values: list[Any]) -> list[dict[str, Any]]:
    return [{name: v} for v in values]


# --------------------------------------------------------------------------- the rules on given evidence


def side(toward: float = 0.0, cuts: tuple[tuple[float, float], ...] = ()) -> Side:
    return Side(toward, tuple(Cut(bound, chance) for bound, chance in cuts))


def number(importance: float = 0.5, lower: Side | None = None, upper: Side | None = None) -> NumberEvidence:
    return NumberEvidence(importance, 20, 0.0, lower or side(), upper or side())


def evidence(**params: NumberEvidence | ChoiceEvidence) -> Evidence:
    return Evidence("hand-written evidence", 256, params)


def apply(v1: StudyVersion, trials: list[RecordedTrial], ev: Evidence, opts: RefineOptions | None = None) -> Any:
    opts = opts or RefineOptions()
    return refine(v1, rank(v1, trials, opts.min_trials), ev, opts)


X_TRIALS = scored(grid("x", [1.1 + 0.1 * i for i in range(9)]), lambda c: c["x"])  # best x 1.1


def test_widening_grows_with_the_probability_and_the_note_says_why() -> None:
    v1 = version("  x: {uniform: [1.0, 2.0]}\n")
    opts = RefineOptions()
    assert opts.widen_step(opts.widen_p) == opts.widen_min and opts.widen_step(1.0) == opts.widen_max
    steps = []
    for toward in (0.8, 0.9, 1.0):
        result = apply(v1, X_TRIALS, evidence(x=number(0.31, lower=side(toward))))
        x = result.version.params.params["x"]
        steps.append(1.0 - x.low)
        assert x.high == 2.0 and math.isclose(1.0 - x.low, opts.widen_step(toward), abs_tol=0.01)
    assert steps == sorted(steps) and steps[0] < steps[-1]  # more evidence, a longer step
    assert result.changes[0].note == (
        "x: importance 0.31; predicted loss falls toward the lower bound (P=1.00 over the model's 256 samples): "
        "widened by 100% of the width -> widened to [0, 2]"
    )
    with pytest.raises(RefineError, match=r"lower bound: P=0\.79 that the predicted loss is lowest there"):
        apply(v1, X_TRIALS, evidence(x=number(lower=side(0.79))))  # below widen_p: no widening


def test_a_max_metric_rises_toward_the_bound() -> None:
    v1 = version("  x: {uniform: [1.0, 2.0]}\n", HEAD.replace("mode: min", "mode: max"))
    trials = scored(grid("x", [1.1 + 0.1 * i for i in range(9)]), lambda c: -c["x"])
    result = apply(v1, trials, evidence(x=number(lower=side(0.95))))
    assert "predicted loss rises toward the lower bound (P=0.95" in result.version.notes


def test_limits_stop_a_widening_and_the_note_says_so() -> None:
    v1 = version("  lr: {loguniform: [3.0e-4, 3.0e-3], limits: [1.0e-6, 5.0e-3]}\n")
    trials = scored(grid("lr", [3.0e-4 * 10 ** (i / 9) for i in range(10)]), lambda c: -c["lr"])
    result = apply(v1, trials, evidence(lr=number(upper=side(1.0))))
    lr = result.version.params.params["lr"]
    assert lr.high == 5.0e-3 and lr.limits == (1.0e-6, 5.0e-3)
    assert "stopped by limits [1e-06, 0.005]" in result.version.notes

    at_limit = version("  lr: {loguniform: [3.0e-4, 3.0e-3], limits: [1.0e-6, 3.0e-3]}\n")
    with pytest.raises(RefineError, match=r"but 0\.003 is its limit: not widened"):
        apply(at_limit, trials, evidence(lr=number(upper=side(1.0))))


def test_narrowing_takes_the_furthest_unlikely_cut_and_keeps_the_best_trial() -> None:
    v1 = version("  x: {uniform: [0.0, 1.0]}\n")
    trials = scored(grid("x", [0.05 * i for i in range(21)]), lambda c: abs(c["x"] - 0.55))  # best 0.55
    cuts = ((0.1, 0.0), (0.2, 0.01), (0.3, 0.04), (0.4, 0.2), (0.5, 0.3))  # chance rises with the region
    upper = ((0.9, 0.0), (0.8, 0.01), (0.6, 0.02), (0.55, 0.02), (0.5, 0.02))  # 0.55 is the best trial's value
    result = apply(v1, trials, evidence(x=number(0.5, side(0.0, cuts), side(0.0, upper))))
    x = result.version.params.params["x"]
    assert (x.low, x.high) == (0.3, 0.6)  # 0.4 has P=0.2 > narrow_p; the upper cut stops before 0.55
    assert "P=0.04 that [0, 0.3) holds a loss better than the best seen 0" in result.version.notes
    assert "P=0.02 that (0.6, 1] holds a loss better than the best seen 0" in result.version.notes
    tiny = apply(v1, trials, evidence(x=number(0.5, side(0.0, ((0.02, 0.0),)), side(0.0, upper))))
    assert tiny.version.params.params["x"].low == 0.0  # a cut below min_narrow of the width is not made


def test_a_parameter_that_barely_matters_is_left_as_is_and_the_notes_say_so() -> None:
    v1 = version("  x: {uniform: [0.0, 1.0]}\n  z: {uniform: [0.0, 10.0]}\n")
    trials = scored([{"x": 0.05 * i, "z": 0.5 * i} for i in range(21)], lambda c: abs(c["x"] - 0.5))
    strong = side(1.0, ((5.0, 0.0),))
    result = apply(v1, trials, evidence(x=number(0.98, upper=side(0.0, ((0.9, 0.0),))), z=number(0.02, strong, strong)))
    assert result.version.params.params["z"] == v1.params.params["z"]
    assert "z: importance 0.02 (below 0.05): barely matters, left as is -> kept [0, 10]" in result.version.notes


def test_an_option_is_pruned_on_the_models_evidence_only_when_tried_enough() -> None:
    v1 = version("  x: {uniform: [0.0, 1.0]}\n  act: {choice: [relu, tanh, gelu], default: tanh}\n")
    trials = scored(activations(30), tanh_is_bad)

    def act(tanh: OptionEvidence, importance: float = 0.6) -> Evidence:
        options = (OptionEvidence(10, 0.7), tanh, OptionEvidence(10, 0.6))
        return evidence(x=number(0.0), act=ChoiceEvidence(importance, 30, options))

    result = apply(v1, trials, act(OptionEvidence(10, 0.004)))
    assert result.version.params.params["act"].options == ("relu", "gelu")
    assert result.version.params.params["act"].default is NO_DEFAULT  # its default went with it
    assert 'option "tanh" tried 10 times; P=0.004 over the model\'s 256 samples that it holds a loss better' in (
        result.version.notes
    )
    assert "the default's option was pruned" in result.version.notes
    for ev, opts in (
        (act(OptionEvidence(4, 0.0)), RefineOptions()),  # tried fewer than prune_min_trials
        (act(OptionEvidence(10, 0.06)), RefineOptions()),  # P above prune_p
        (act(OptionEvidence(10, 0.0)), RefineOptions(prune=False)),
        (act(OptionEvidence(10, 0.0), importance=0.01), RefineOptions()),  # barely matters
    ):
        with pytest.raises(RefineError, match="gives no reason to change"):
            apply(v1, trials, ev, opts)


def test_the_best_trials_option_is_never_pruned() -> None:
    v1 = version("  act: {choice: [relu, tanh]}\n")
    trials = scored([{"act": a} for a in ["relu", "tanh"] * 6], lambda c: 0.0 if c["act"] == "relu" else 1.0)
    ev = evidence(act=ChoiceEvidence(1.0, 12, (OptionEvidence(6, 0.0), OptionEvidence(6, 0.0))))
    result = apply(v1, trials, ev)
    assert result.version.params.params["act"].options == ("relu",)


def test_the_notes_and_the_evidence_lines_cover_every_parameter() -> None:
    v1 = version("  x: {uniform: [1.0, 2.0]}\n  y: {uniform: [0.0, 1.0]}\n")
    trials = scored([{"x": 1.1 + 0.1 * i, "y": 0.1 * i} for i in range(9)], lambda c: c["x"])
    result = apply(v1, trials, evidence(x=number(0.9, lower=side(0.9)), y=number(0.1)))
    assert [c.path for c in result.changes] == ["x"]  # y is unchanged: not in the notes ...
    assert [c.path for c in result.assessed] == ["x", "y"]  # ... but its evidence is in the dry-run lines
    assert result.assessed[1].note == (
        "y: importance 0.10; predicted loss lowest near 0; "
        "lower bound: P=0.00 that the predicted loss is lowest there; "
        "upper bound: P=0.00 that the predicted loss is lowest there -> kept [0, 1]"
    )


# --------------------------------------------------------------------------- lattices and defaults


def test_int_range_with_step_stays_on_its_lattice() -> None:
    v1 = version("  n: {int: [0, 100], step: 5}\n  m: {int: [1, 64], log: true}\n")
    trials = scored([{"n": 5 * i, "m": 2 ** (i % 7)} for i in range(21)], lambda c: c["n"])
    ev = evidence(n=number(upper=side(0.0, ((78, 0.0),))), m=number(upper=side(0.0, ((20, 0.0),))))
    result = apply(v1, trials, ev)
    n, m = result.version.params.params["n"], result.version.params.params["m"]
    assert (n.low, n.high, n.step) == (0, 80, 5) and isinstance(n.high, int)  # 78 snapped outwards onto 5k
    assert (m.low, m.high) == (1, 20) and m.log_scale


def test_quantized_ranges_snap_outwards_onto_multiples_of_q() -> None:
    v1 = version("  q: {quniform: [0.0, 1.0, 0.1]}\n  w: {qloguniform: [16, 256, 16]}\n")
    configs = [{"q": round(0.1 * (i % 11), 1), "w": 16 * (1 + i % 16)} for i in range(44)]
    trials = scored(configs, lambda c: c["q"] - c["w"] / 1000)  # the best trial: q 0, w 192
    ev = evidence(q=number(upper=side(0.0, ((0.55, 0.0),))), w=number(lower=side(0.0, ((40, 0.0),))))
    q, w = (apply(v1, trials, ev).version.params.params[k] for k in ("q", "w"))
    assert (q.low, q.high) == (0.0, 0.6) and (w.low, w.high, w.q) == (32, 256, 16) and w.integer


def test_a_default_outside_the_new_range_is_removed_with_a_note() -> None:
    v1 = version("  x: {uniform: [-1.0, 1.0], default: -0.9}\n")
    trials = scored(grid("x", [i / 20 for i in range(-20, 21)]), lambda c: abs(c["x"] - 0.5))
    result = apply(v1, trials, evidence(x=number(lower=side(0.0, ((-0.5, 0.0),)))))
    x = result.version.params.params["x"]
    assert not x.contains(-0.9) and x.default is NO_DEFAULT
    assert "x: the default -0.9 is outside the new range" in result.version.notes


# --------------------------------------------------------------------------- which trials, which budget


def test_asha_ranks_on_the_highest_budget_and_counts_stopped_trials_as_its_worst() -> None:
    v1 = version(
        "  x: {uniform: [0.0, 1.0]}\n", HEAD.replace("params:", "schedule: {scheduler: asha, max_epochs: 9}\nparams:")
    )
    trials = asha_trials()
    assert ranking_budget(trials, 5) == 9 and ranking_budget(trials, 7) == 1
    ranking = rank(v1, trials)
    worst = max(r.loss for r in ranking.rows[: ranking.ranked])
    assert (ranking.budget, ranking.ranked, ranking.stopped) == (9, 6, 18)
    assert all(r.value is None and r.loss == worst for r in ranking.rows[6:])
    result = refine_trials(v1, trials)
    x = result.version.params.params["x"]
    assert result.budget == 9 and "6 ranked on epoch 9" in result.version.notes
    assert "18 stopped before epoch 9 count as its worst value" in result.version.notes
    assert x.contains(0.2) and x.high < 0.5  # around the survivors, away from the early-stopped trials

    naive = refine_trials(v1, [RecordedTrial(t.config, t.value, run_id=t.run_id) for t in trials])  # no histories
    assert naive.budget is None and not naive.version.params.params["x"].contains(0.2)


def test_too_few_finished_trials_is_a_clear_error() -> None:
    v1 = version("  x: {uniform: [0.0, 1.0]}\n")
    trials = scored(grid("x", [0.1, 0.2, 0.3, 0.4]), lambda c: c["x"])
    trials += [RecordedTrial({"x": 0.5}, None, status="FAILED"), RecordedTrial({"x": 2.0}, 0.0)]  # failed; outside
    with pytest.raises(NotEnoughTrials, match=r"s v1: 4 finished trial\(s\) .* at least 5"):
        refine_trials(v1, trials)
    assert rank(v1, trials, 4).used == 4


# --------------------------------------------------------------------------- the whole decision from trials


def test_log_scale_narrows_in_log_space() -> None:
    v1 = version("  lr: {loguniform: [1.0e-4, 1.0e-1]}\n")
    lrs = [10 ** (-4 + 3 * i / 39) for i in range(40)]
    result = refine_trials(v1, scored(grid("lr", lrs), lambda c: abs(math.log10(c["lr"]) + 2.5)))
    lr = result.version.params.params["lr"]
    assert isinstance(lr, LogUniform) and lr.contains(10**-2.5) and lr.low > 1.0e-4 and lr.high < 1.0e-1
    # The optimum sits mid-range in log space: the cuts are symmetric there (in linear space they would not be).
    assert math.log10(lr.low) + 2.5 == pytest.approx(-(math.log10(lr.high) + 2.5), abs=0.2)


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

    result = refine_trials(v1, scored(configs, loss))
    adam, sgd = (opt.params for opt in result.version.params.params["optimizer"].options)
    assert adam["beta"].low > 0.5 and adam["beta"].contains(0.9)
    assert sgd["momentum"].high < 0.99 and sgd["momentum"].contains(0.2) and not sgd["momentum"].contains(0.9)
    assert "better than the best seen with sgd" in result.version.notes  # an option's own best

    few = scored([c for c in configs if c["optimizer"]["name"] == "adam"] + configs[1:4:2], loss)
    result = refine_trials(v1, few)
    assert result.version.params.params["optimizer"].options[1] == v1.params.params["optimizer"].options[1]
    assert "optimizer[sgd]: only 2 ranked trial(s) took this option (need 5) -> sub-space kept" in result.version.notes


def test_a_parameter_beside_a_choice_keeps_the_region_an_unexplored_option_may_need() -> None:
    """adam (30 trials around its lr optimum 1e-3, best 0.3) leads; sgd would do better at 10^-1.5 but its 6
    trials all sit at lr <= 10^-3.5. The trials that took sgd say nothing about lr near 10^-1.5, so neither lr
    nor sgd is cut. Once sgd has been tried across lr and is worse everywhere, it is pruned (lr stays: adam's own
    trials never left [1e-4, 1e-2], so they cannot rule out the rest)."""
    v1 = version("  lr: {loguniform: [1.0e-5, 1.0]}\n  optimizer: {choice: [adam, sgd]}\n")
    adam = [{"lr": 10 ** (-4 + 2 * i / 29), "optimizer": "adam"} for i in range(30)]
    sgd_low = [{"lr": 10 ** (-5 + 1.5 * i / 5), "optimizer": "sgd"} for i in range(6)]

    def loss(c: Mapping[str, Any], sgd_offset: float = 0.0) -> float:
        x = math.log10(c["lr"])
        return 0.3 + abs(x + 3) / 2 if c["optimizer"] == "adam" else abs(x + 1.5) + sgd_offset

    with pytest.raises(RefineError, match=r'option "sgd" tried 6 times, P=0\.[1-9]'):
        refine_trials(v1, scored(adam + sgd_low, loss))

    sgd_all = [{"lr": 10 ** (-5 + 5 * i / 11), "optimizer": "sgd"} for i in range(12)]
    result = refine_trials(v1, scored(adam + sgd_all, lambda c: loss(c, sgd_offset=2.0)))
    lr, optimizer = result.version.params.params["lr"], result.version.params.params["optimizer"]
    assert optimizer.options == ("adam",) and lr == v1.params.params["lr"], result.version.notes


def test_a_choice_is_pruned_on_the_models_evidence() -> None:
    v1 = version("  x: {uniform: [0.0, 1.0]}\n  act: {choice: [relu, tanh, gelu], default: tanh}\n")
    result = refine_trials(v1, scored(activations(60), tanh_is_bad))
    act = result.version.params.params["act"]
    assert act.options == ("relu", "gelu") and act.default is NO_DEFAULT
    assert 'option "tanh" tried 20 times; P=0.000 over the model\'s 256 samples' in result.version.notes
    with pytest.raises(RefineError, match='option "tanh" tried 4 times'):  # below prune_min_trials: kept
        refine_trials(v1, scored(activations(12), tanh_is_bad))


def tanh_is_bad(c: Mapping[str, Any]) -> float:
    return abs(c["x"] - 0.5) + (5.0 if c["act"] == "tanh" else 0.0)


def activations(n: int) -> list[dict[str, Any]]:
    return [{"x": (i % 10) / 10, "act": ["relu", "tanh", "gelu"][i % 3]} for i in range(n)]


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
    result = refine_trials(v1, scored(configs, lambda c: abs(math.log10(c["optimizer"]["lr"]) + 2)))
    optimizer = result.version.params.params["optimizer"]
    assert optimizer.default is NO_DEFAULT
    assert not optimizer.contains({"name": "adam", "lr": 1.0e-4})  # the narrowed lr left the default out
    assert "optimizer: the default" in result.version.notes and "outside its refined option" in result.version.notes
    dump(result.version)  # a valid version: a default it cannot produce would have raised


def test_refine_is_deterministic_and_its_file_validates(tmp_path: Path) -> None:
    v1 = version("  x: {uniform: [-1.0, 1.0], default: 0.0}\n  n: {int: [1, 8]}\n  opt: {choice: [a, b]}\n")
    rng = random.Random(3)
    configs = [{"x": rng.uniform(-1, 1), "n": rng.randint(1, 8), "opt": rng.choice("ab")} for _ in range(30)]
    trials = scored(configs, lambda c: (c["x"] - 0.6) ** 2 + (c["n"] - 6) ** 2 / 50)
    first = refine_trials(v1, trials)
    shuffled = trials[:]
    random.Random(0).shuffle(shuffled)
    again = refine_trials(v1, shuffled)
    assert dump(first.version) == dump(again.version) and first.version.content_hash == again.version.content_hash
    assert [c.note for c in first.assessed] == [c.note for c in again.assessed]  # the evidence too, number for number
    assert first.version.version == 2 and first.version.parent == 1
    assert first.version.content_hash != v1.content_hash

    folder = tmp_path / "s"
    write(v1, folder / "v1.yaml")
    write(first.version, folder / "v2.yaml")
    report = validate_paths([folder])
    assert report.ok, report.problems
    assert [v.version for v in report.valid] == [1, 2]


def test_no_reason_to_change_is_an_error_not_a_copy() -> None:
    v1 = version("  x: {uniform: [0.0, 1.0]}\n")
    spread = [RecordedTrial({"x": x}, 0.0, run_id=f"good{x}") for x in (0.0, 0.25, 0.5, 0.75, 1.0)]
    rest = [RecordedTrial({"x": 0.5}, 1.0, run_id=f"rest{i:02d}") for i in range(15)]
    with pytest.raises(RefineError, match="s v1: the model of 20 trials gives no reason to change the space; x: "):
        refine_trials(v1, spread + rest)


def test_the_rules_import_neither_numpy_nor_scikit_learn() -> None:
    """``orchestrator.spaces`` (the refine rules included) stays pure: the model lives in ``orchestrator.analysis``."""
    code = (
        "import sys, orchestrator.spaces, orchestrator.spaces.refine; "
        "print(sorted(m for m in ('numpy', 'sklearn', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
