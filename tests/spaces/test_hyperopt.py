"""Conversion to hyperopt: expressions, the internal encoding both ways, scored trial documents."""

from __future__ import annotations

import time

import hyperopt
import numpy as np
import pytest
from hyperopt import Domain, Trials, rand, tpe

from orchestrator.spaces import ValueNotInSpace, parse_version
from orchestrator.spaces.hyperopt import decode, encode, labels, scored_trials, to_hyperopt

NESTED = parse_version("""\
study: s
version: 1
trainable: analytic
metric: {name: loss, mode: min}
params:
  x: {uniform: [-2.0, 3.0]}
  lr: {loguniform: [1.0e-5, 1.0e-1]}
  q: {quniform: [0.1, 0.5, 0.05]}
  width: {qloguniform: [16, 512, 16]}
  depth: {int: [2, 10], step: 2}
  filters: {int: [8, 256], log: true}
  act: {choice: [relu, tanh, 1, true, null]}
  optimizer:
    choice:
      - {name: adam, beta: {uniform: [0.8, 0.999]}}
      - name: sgd
        momentum: {uniform: [0.5, 0.99]}
        schedule:
          choice:
            - constant
            - {kind: step, gamma: {loguniform: [0.01, 0.5]}, every: {int: [1, 5]}}
            - {kind: cosine, warmup: {choice: [0, 1, 2]}}
  tag: fixed-value
""").params


def sample_docs(space, n: int, seed: int = 0) -> list[dict]:
    domain = Domain(lambda c: 0.0, to_hyperopt(space))
    trials = Trials()
    return rand.suggest(list(range(n)), domain, trials, seed)


def test_labels_are_structural_paths() -> None:
    assert "optimizer[1].schedule[1].gamma" in labels(NESTED)
    assert "tag" not in labels(NESTED)  # fixed values are not searched


def test_decode_agrees_with_hyperopt_space_eval() -> None:
    expr = to_hyperopt(NESTED)
    for doc in sample_docs(NESTED, 200):
        vals = doc["misc"]["vals"]
        mine = decode(NESTED, vals)
        theirs = hyperopt.space_eval(expr, {k: v[0] for k, v in vals.items() if v})
        assert NESTED.contains(mine) is None
        assert mine.keys() == theirs.keys()
        for key in mine:
            if isinstance(mine[key], float):
                assert theirs[key] == pytest.approx(mine[key], rel=1e-9)
            elif key != "optimizer":
                assert mine[key] == theirs[key]


def test_values_never_indices() -> None:
    seen_opts, seen_act = set(), set()
    for doc in sample_docs(NESTED, 300, seed=1):
        c = decode(NESTED, doc["misc"]["vals"])
        seen_opts.add(c["optimizer"]["name"])
        seen_act.add(repr(c["act"]))
        assert c["depth"] in (2, 4, 6, 8, 10) and isinstance(c["depth"], int)
        assert 8 <= c["filters"] <= 256 and isinstance(c["filters"], int)
        assert c["width"] % 16 == 0 and 16 <= c["width"] <= 512
        assert round((c["q"] - 0.1) / 0.05, 9) == round((c["q"] - 0.1) / 0.05)
        assert c["tag"] == "fixed-value"
    assert seen_opts == {"adam", "sgd"}
    assert seen_act == {"'relu'", "'tanh'", "1", "True", "None"}


def test_encode_is_inverse_of_decode() -> None:
    for doc in sample_docs(NESTED, 300, seed=2):
        vals = {k: [float(x) for x in v] for k, v in doc["misc"]["vals"].items()}
        config = decode(NESTED, vals)
        again = encode(NESTED, config)
        assert decode(NESTED, again) == config
        for label, v in vals.items():
            assert len(again[label]) == len(v)


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        (lambda c: c.update(x=5.0), "x", "outside uniform"),
        (lambda c: c.update(depth=3), "depth", "outside int"),
        (lambda c: c.update(act="gelu"), "act", "not one of"),
        (lambda c: c.update(act=True) or c.update(act=1.5), "act", "not one of"),
        (lambda c: c.pop("lr"), "lr", "missing"),
        (lambda c: c.update(extra=1), "extra", "not a parameter"),
        (lambda c: c.update(tag="other"), "tag", "fixed value"),
        (
            lambda c: c.update(optimizer={"name": "sgd", "momentum": 2.0, "schedule": "constant"}),
            "optimizer.momentum",
            "outside",
        ),
        (lambda c: c.update(optimizer={"name": "rmsprop"}), "optimizer", "not one of"),
    ],
)
def test_encode_rejects_values_outside_the_space(change, path: str, reason: str) -> None:
    config = decode(NESTED, sample_docs(NESTED, 1)[0]["misc"]["vals"])
    config["optimizer"] = {"name": "adam", "beta": 0.9}
    change(config)
    with pytest.raises(ValueNotInSpace) as info:
        encode(NESTED, config)
    assert info.value.path == path and reason in info.value.reason


def test_true_is_not_one() -> None:
    space = parse_version(
        "study: s\nversion: 1\ntrainable: t\nmetric: {name: m, mode: min}\nparams:\n  a: {choice: [1, 2]}\n"
    ).params
    with pytest.raises(ValueNotInSpace):
        encode(space, {"a": True})
    assert encode(space, {"a": 2.0}) == {"a": [1]}


def test_scored_trials_feed_tpe_directly() -> None:
    """Prior trials built as documents put TPE past its start-up phase, near the known optimum."""
    space = parse_version(
        "study: s\nversion: 1\ntrainable: t\nmetric: {name: m, mode: min}\n"
        "params:\n  x: {uniform: [-5.0, 5.0]}\n  y: {int: [0, 20]}\n"
    ).params
    rng = np.random.default_rng(0)
    prior = []
    for _ in range(200):
        c = {"x": float(rng.uniform(-5, 5)), "y": int(rng.integers(0, 21))}
        prior.append((c, (c["x"] - 2.0) ** 2 + (c["y"] - 15) ** 2 / 10))
    start = time.perf_counter()
    trials = scored_trials(space, prior)
    assert time.perf_counter() - start < 5
    assert len(trials.trials) == 200 and trials.best_trial["result"]["loss"] == min(loss for _, loss in prior)
    domain = Domain(lambda c: 0.0, to_hyperopt(space))
    suggestions = []
    for i in range(20):
        (doc,) = tpe.suggest([200 + i], domain, trials, seed=i, n_startup_jobs=20)
        suggestions.append(decode(space, doc["misc"]["vals"]))
    xs = np.array([s["x"] for s in suggestions])
    ys = np.array([s["y"] for s in suggestions])
    # Random sampling would put ~90% of x outside [0, 4]; TPE informed by the prior does not.
    assert np.mean((xs > 0) & (xs < 4)) > 0.6
    assert np.mean(ys >= 10) > 0.6


def test_whole_number_quantized_ranges_give_ints() -> None:
    space = parse_version(
        "study: s\nversion: 1\ntrainable: t\nmetric: {name: m, mode: min}\n"
        "params:\n  width: {qloguniform: [64, 1024, 16]}\n  units: {quniform: [10, 50, 5]}\n"
        "  frac: {quniform: [0.0, 1.0, 0.25]}\n"
    ).params
    for doc in sample_docs(space, 50):
        c = decode(space, doc["misc"]["vals"])
        assert type(c["width"]) is int and c["width"] % 16 == 0
        assert type(c["units"]) is int and c["units"] % 5 == 0
        assert type(c["frac"]) is float
        assert decode(space, encode(space, c)) == c
        expr_value = hyperopt.space_eval(to_hyperopt(space), {k: v[0] for k, v in doc["misc"]["vals"].items()})
        assert expr_value["width"] == c["width"] and expr_value["units"] == c["units"]
