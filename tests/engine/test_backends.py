"""The searcher libraries' views of a space (``orchestrator.engine.backends``): expressions and
distributions, the internal encodings both ways, and hyperopt's scored trial documents.

What a searcher suggests (values, nested spaces, warm start) is the searcher contract's
(``tests/engine/searcher_contract.py``); these tests pin the encodings themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import hyperopt
import numpy as np
import optuna
import pytest
from hyperopt import Domain, Trials, rand, tpe

from orchestrator.engine.backends import hyperopt as hyperopt_backend
from orchestrator.engine.backends import optuna as optuna_backend
from orchestrator.spaces import SearchSpace, ValueNotInSpace, parse_version
from tests.engine.searcher_contract import HEAD, NESTED_PARAMS

NESTED = parse_version(HEAD + NESTED_PARAMS).params


def space_of(params: str) -> SearchSpace:
    return parse_version(HEAD + "params:\n" + params).params


def sample_docs(space: SearchSpace, n: int, seed: int = 0) -> list[dict]:
    domain = Domain(lambda c: 0.0, hyperopt_backend.to_hyperopt(space))
    return rand.suggest(list(range(n)), domain, Trials(), seed)


def sample_configs(space: SearchSpace, n: int, seed: int = 0) -> list[dict[str, Any]]:
    return [hyperopt_backend.decode(space, doc["misc"]["vals"]) for doc in sample_docs(space, n, seed)]


def hyperopt_round_trip(space: SearchSpace, config: Mapping[str, Any]) -> dict[str, Any]:
    return hyperopt_backend.decode(space, hyperopt_backend.encode(space, config))


def optuna_round_trip(space: SearchSpace, config: Mapping[str, Any]) -> dict[str, Any]:
    params, dists = optuna_backend.encode(space, config)
    trial = optuna.trial.create_trial(params=params, distributions=dists, value=0.0)  # validates params
    return optuna_backend.sample(space, optuna.trial.FixedTrial(trial.params))


ROUND_TRIPS: dict[str, Callable[[SearchSpace, Mapping[str, Any]], dict[str, Any]]] = {
    "hyperopt": hyperopt_round_trip,
    "optuna": optuna_round_trip,
}
ENCODERS: dict[str, Callable[[SearchSpace, Mapping[str, Any]], Any]] = {
    "hyperopt": hyperopt_backend.encode,
    "optuna": optuna_backend.encode,
}


# --------------------------------------------------------------------------- both backends


@pytest.mark.parametrize("backend", ROUND_TRIPS)
def test_encode_then_decode_is_identity(backend: str) -> None:
    round_trip = ROUND_TRIPS[backend]
    for config in sample_configs(NESTED, 300, seed=2):
        again = round_trip(NESTED, config)
        assert again == config and NESTED.contains(again) is None
        assert all(type(again[k]) is type(config[k]) for k in config)


@pytest.mark.parametrize("backend", ENCODERS)
@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        (lambda c: c.update(x=5.0), "x", "outside uniform"),
        (lambda c: c.update(depth=3), "depth", "outside int"),
        (lambda c: c.update(act="gelu"), "act", "not one of"),
        (lambda c: c.update(act=1.5), "act", "not one of"),
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
def test_encode_rejects_values_outside_the_space(backend: str, change, path: str, reason: str) -> None:
    config = sample_configs(NESTED, 1)[0]
    config["optimizer"] = {"name": "adam", "beta": 0.9}
    change(config)
    with pytest.raises(ValueNotInSpace) as info:
        ENCODERS[backend](NESTED, config)
    assert info.value.path == path and reason in info.value.reason


@pytest.mark.parametrize("backend", ENCODERS)
def test_true_is_not_one(backend: str) -> None:
    space = space_of("  a: {choice: [1, 2]}\n")
    with pytest.raises(ValueNotInSpace):
        ENCODERS[backend](space, {"a": True})
    assert ROUND_TRIPS[backend](space, {"a": 2.0}) == {"a": 2}


# --------------------------------------------------------------------------- hyperopt


def test_hyperopt_labels_are_structural_paths() -> None:
    labels = hyperopt_backend.labels(NESTED)
    assert "optimizer[1].schedule[1].gamma" in labels
    assert "tag" not in labels  # fixed values are not searched
    assert set(hyperopt_backend.encode(NESTED, sample_configs(NESTED, 1)[0])) == set(labels)


def test_hyperopt_decode_agrees_with_space_eval() -> None:
    expr = hyperopt_backend.to_hyperopt(NESTED)
    for doc in sample_docs(NESTED, 200):
        vals = doc["misc"]["vals"]
        theirs = hyperopt.space_eval(expr, {k: v[0] for k, v in vals.items() if v})
        assert hyperopt_backend.decode(NESTED, vals) == theirs


def test_hyperopt_stores_step_indices_and_option_indices() -> None:
    space = space_of(
        "  q: {quniform: [0.1, 0.5, 0.05]}\n  depth: {int: [2, 10], step: 2}\n  filters: {int: [8, 256], log: true}\n"
        "  width: {qloguniform: [16, 512, 16]}\n  act: {choice: [relu, tanh]}\n"
    )
    config = {"q": 0.35, "depth": 6, "filters": 33, "width": 64, "act": "tanh"}
    vals = hyperopt_backend.encode(space, config)
    assert vals == {"q": [5.0], "depth": [2.0], "filters": [33.0], "width": [64.0], "act": [1]}
    # Draws between steps round half up to the nearest value of the range, clamped to its bounds.
    assert hyperopt_backend.decode(space, {"q": 4.5, "depth": -0.4, "filters": 300.0, "width": 71.9, "act": 1}) == {
        "q": 0.35,
        "depth": 2,
        "filters": 256,
        "width": 64,
        "act": "tanh",
    }


def test_whole_number_quantized_ranges_give_ints() -> None:
    space = space_of(
        "  width: {qloguniform: [64, 1024, 16]}\n  units: {quniform: [10, 50, 5]}\n"
        "  frac: {quniform: [0.0, 1.0, 0.25]}\n"
    )
    for c in sample_configs(space, 50):
        assert type(c["width"]) is int and c["width"] % 16 == 0
        assert type(c["units"]) is int and c["units"] % 5 == 0
        assert type(c["frac"]) is float


def test_hyperopt_sample_draws_values_uniformly_over_steps_and_options() -> None:
    space = space_of("  depth: {int: [0, 3]}\n  act: {choice: [relu, tanh]}\n")
    rng = np.random.default_rng(0)
    configs = [hyperopt_backend.sample(space, rng) for _ in range(800)]
    depths = np.bincount([c["depth"] for c in configs], minlength=4) / len(configs)
    assert np.allclose(depths, 0.25, atol=0.05), depths
    assert 0.4 < np.mean([c["act"] == "relu" for c in configs]) < 0.6


def test_scored_trials_feed_tpe_directly() -> None:
    """Prior trials built as documents put TPE past its start-up phase, near the known optimum."""
    space = space_of("  x: {uniform: [-5.0, 5.0]}\n  y: {int: [0, 20]}\n")
    rng = np.random.default_rng(0)
    prior = []
    for _ in range(200):
        c = {"x": float(rng.uniform(-5, 5)), "y": int(rng.integers(0, 21))}
        prior.append((c, (c["x"] - 2.0) ** 2 + (c["y"] - 15) ** 2 / 10))
    start = time.perf_counter()
    trials = hyperopt_backend.scored_trials(space, prior)
    assert time.perf_counter() - start < 5
    assert len(trials.trials) == 200 and trials.best_trial["result"]["loss"] == min(loss for _, loss in prior)
    domain = Domain(lambda c: 0.0, hyperopt_backend.to_hyperopt(space))
    suggestions = []
    for i in range(20):
        (doc,) = tpe.suggest([200 + i], domain, trials, seed=i, n_startup_jobs=20)
        suggestions.append(hyperopt_backend.decode(space, doc["misc"]["vals"]))
    xs = np.array([s["x"] for s in suggestions])
    ys = np.array([s["y"] for s in suggestions])
    # Random sampling would put ~90% of x outside [0, 4]; TPE informed by the prior does not.
    assert np.mean((xs > 0) & (xs < 4)) > 0.6
    assert np.mean(ys >= 10) > 0.6


# --------------------------------------------------------------------------- optuna


def test_optuna_distributions_follow_the_table() -> None:
    space = space_of(
        "  u: {uniform: [0.0, 1.0]}\n  lr: {loguniform: [1.0e-4, 1.0]}\n  q: {quniform: [0.1, 0.5, 0.05]}\n"
        "  qi: {quniform: [2, 10, 2]}\n  width: {qloguniform: [16, 512, 16]}\n  depth: {int: [2, 10], step: 2}\n"
        "  filters: {int: [8, 256], log: true}\n  act: {choice: [relu, tanh]}\n"
    )
    config = {"u": 0.5, "lr": 0.01, "q": 0.35, "qi": 4, "width": 64, "depth": 6, "filters": 33, "act": "tanh"}
    params, dists = optuna_backend.encode(space, config)
    assert params == {**config, "width": 4, "act": 1}  # qloguniform stores the multiple of q, a choice its index
    assert type(params["qi"]) is int and type(params["q"]) is float
    d = optuna.distributions
    assert dists["lr"] == d.FloatDistribution(1e-4, 1.0, log=True)
    assert dists["q"] == d.FloatDistribution(0.1, 0.5, step=0.05)
    assert dists["qi"] == d.IntDistribution(2, 10, step=2)
    assert dists["width"] == d.IntDistribution(1, 32, log=True)
    assert dists["depth"] == d.IntDistribution(2, 10, step=2)
    assert dists["filters"] == d.IntDistribution(8, 256, log=True)
    assert dists["act"] == d.CategoricalDistribution([0, 1])


def test_optuna_samples_only_active_parameters() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(60):
        trial = study.ask()
        config = optuna_backend.sample(NESTED, trial)
        assert NESTED.contains(config) is None
        params, _ = optuna_backend.encode(NESTED, config)
        assert params.keys() == trial.params.keys()
        study.tell(trial, 0.0)
