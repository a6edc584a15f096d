"""bench.convnet_curves: the grid, the cache, the lookups a search makes, and a 2-config grid really trained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import convnet_curves as cc
from bench.spacetools import make_version
from orchestrator.spaces import Metric

# two learning rates of a 4-filter net on 300 digits: two trainings of about a second
TINY_GRID: dict[str, Any] = {
    "optimizer": {"choice": [{"name": "adam", "lr": {"choice": [1.0e-3, 3.0e-2]}}]},
    "filters": {"choice": [4]},
    "fc_width": 16,
    "conv_layers": 1,
    "subset": 300,
}


def test_grid_enumerates_choices_sub_spaces_steps_and_fixed_values() -> None:
    params = {
        "optimizer": {
            "choice": [
                {"name": "adam", "lr": {"choice": [1.0e-3, 1.0e-2]}},
                {"name": "sgd", "lr": 0.1, "momentum": {"choice": [0.5, 0.9]}},
            ]
        },
        "layers": {"int": [1, 3]},
        "width": {"quniform": [16, 32, 16]},
        "act": "relu",
    }
    space = make_version("grid", params).params
    configs = cc.grid_configs(space)
    assert len(configs) == (2 + 2) * 3 * 2
    assert all(space.contains(c) is None for c in configs)
    assert len({cc.config_key(c) for c in configs}) == len(configs)
    assert {"name": "sgd", "lr": 0.1, "momentum": 0.9} in [c["optimizer"] for c in configs]
    assert sorted({c["layers"] for c in configs}) == [1, 2, 3] and sorted({c["width"] for c in configs}) == [16, 32]
    with pytest.raises(ValueError, match="no finite grid"):
        cc.grid_configs(make_version("continuous", {"lr": {"loguniform": [1.0e-4, 1.0]}}).params)


def test_the_shipped_grids_are_choices_of_the_convnet_trainables_parameters() -> None:
    from trainables.registry import get

    accepted = set(get(cc.TRAINABLE).optional)
    for params, size in ((cc.CONVNET_PARAMS, 144), (cc.CONVNET_QUICK_PARAMS, 24)):
        configs = cc.grid_configs(cc.grid_version(params).params)
        assert len(configs) == size and all(set(c) <= accepted for c in configs)
        assert {c["optimizer"]["lr"] for c in configs} == set(cc.LEARNING_RATES)


def test_config_key_ignores_order_and_number_types_but_not_booleans() -> None:
    a = {"optimizer": {"name": "adam", "lr": 0.001}, "filters": 32, "flag": True}
    b = {"flag": True, "filters": np.float64(32.0), "optimizer": {"lr": np.float64(0.001), "name": "adam"}}
    assert cc.config_key(a) == cc.config_key(b)
    assert cc.config_key({**a, "flag": 1}) != cc.config_key(a)
    assert cc.config_key({**a, "filters": 32.5}) != cc.config_key(a)


def crossing_table() -> cc.CurveTable:
    """Three configs whose accuracy curves cross: the fast one leads after epoch 1 and ends last."""
    configs = [{"optimizer": {"name": "adam", "lr": lr}} for lr in (1.0e-1, 1.0e-2, 1.0e-3)]
    accuracy = np.array([[0.8, 0.82, 0.83], [0.5, 0.85, 0.9], [0.3, 0.7, 0.95]])
    key = {"max_epochs": 3, "seed": 0}
    return cc.CurveTable(configs, {"val_accuracy": accuracy}, [1.0, 1.0, 1.0], key, Metric("val_accuracy", "max"))


def test_curve_looks_up_the_metric_as_a_loss() -> None:
    table = crossing_table()
    assert table.curve({"optimizer": {"lr": 1.0e-2, "name": "adam"}}, 2) == -0.85
    assert cc.reference_best(table) == -0.95
    assert table.with_metric(Metric("val_accuracy", "min")).curve(table.configs[1], 2) == 0.85
    with pytest.raises(KeyError, match="not a configuration"):
        table.curve({"optimizer": {"name": "adam", "lr": 3.0e-3}}, 1)
    with pytest.raises(ValueError, match=r"outside 1\.\.3"):
        table.curve(table.configs[0], 4)
    with pytest.raises(ValueError, match="do not match"):
        cc.CurveTable(table.configs[:2], table.history, [1.0, 1.0], table.key, table.metric)


def test_crossing_summary_sees_the_early_leader_end_last() -> None:
    schedule = {"scheduler": "asha", "max_epochs": 3, "grace_period": 1, "reduction_factor": 3}
    assert cc.rungs(schedule) == [1] and cc.rungs(cc.CONVNET_SCHEDULE) == [1, 3]
    summary = cc.crossing_summary(crossing_table(), schedule)
    first = summary["rungs"][1]
    assert first["spearman_vs_final"] == pytest.approx(-1.0)
    assert first["leader"]["optimizer"]["lr"] == 1.0e-1 and first["leader_regret"] == pytest.approx(0.12)
    assert first["best_tenth_kept"] == 0.0  # the best final config is last after epoch 1: ASHA's cut drops it
    assert summary["learning_rates"][1.0e-1]["mean_first_rung"] == -0.8
    assert summary["best_config"]["optimizer"]["lr"] == 1.0e-3


@pytest.mark.slow
def test_a_tiny_grid_trains_caches_and_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    table = cc.load_or_train(TINY_GRID, 2, seed=3, cache_dir=tmp_path, progress=lines.append)
    assert len(table.configs) == 2 and table.max_epochs == 2
    assert {"val_accuracy", "val_loss", "train_loss"} <= set(table.history)
    assert all(values.shape == (2, 2) for values in table.history.values())
    assert any("2/2 configs" in line for line in lines)
    accuracy = table.history["val_accuracy"]
    assert ((accuracy > 0) & (accuracy <= 1)).all()
    for row, config in enumerate(table.configs):
        assert [table.curve(config, epoch) for epoch in (1, 2)] == [-a for a in accuracy[row]]
    assert cc.reference_best(table) == -accuracy[:, -1].max()

    (cached,) = tmp_path.glob("convnet-curves-*.json")
    assert json.loads(cached.read_text())["key"]["seed"] == 3

    def no_training(*args: Any, **kwargs: Any) -> cc.CurveTable:
        raise AssertionError("the cached table should have been read")

    monkeypatch.setattr(cc, "train_curves", no_training)
    again = cc.load_or_train(TINY_GRID, 2, seed=3, cache_dir=tmp_path, progress=None)
    assert again.configs == table.configs and again.seconds == table.seconds
    assert all(np.array_equal(again.history[name], table.history[name]) for name in table.history)
    with pytest.raises(AssertionError, match="cached table"):  # another seed is another table
        cc.load_or_train(TINY_GRID, 2, seed=4, cache_dir=tmp_path, progress=None)
