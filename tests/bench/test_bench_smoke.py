"""Smoke tests for bench/: helpers on tiny budgets, and the RESULT line a benchmark prints last."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench import common, search_quality, warmstart
from bench.spacetools import derive_text, narrow_params, sample_config
from orchestrator.spaces import parse_version
from orchestrator.spaces.carry import PriorTrial, carry


def test_table_and_result_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = common.table(["name", "value"], [["a", 1.5], ["bb", 12345.678]])
    assert text.splitlines()[0].startswith("name") and "1.5" in text
    payload = common.finish("smoke", True, {"ratio": 0.5}, tmp_path / "smoke.json")
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith("RESULT ")
    parsed = common.parse_result_line(out)
    assert parsed == json.loads((tmp_path / "smoke.json").read_text()) == json.loads(json.dumps(payload))
    assert parsed["mode"] == "quick" and parsed["machine"]["cpu_count"] >= 1
    assert set(parsed["machine"]["versions"]) >= {"ray", "hyperopt", "mlflow", "torch"}


def test_sampled_configs_fit_the_space_and_narrowing_keeps_the_best() -> None:
    version = warmstart.study_version(10)
    rng = np.random.default_rng(0)
    configs = [sample_config(version.params, rng) for _ in range(40)]
    assert all(version.params.contains(c) is None for c in configs)
    best = sorted(configs, key=warmstart.loss_of)[:8]
    v2 = parse_version(derive_text(version, narrow_params(version.params, best), version=2), "<v2>")
    assert v2.version == 2 and v2.parent == 1
    report = carry((PriorTrial(c, warmstart.loss_of(c), "FINISHED", 1) for c in configs), v2)
    assert len(report.carried) >= len(best)  # the configs it was narrowed around always fit
    x = v2.params.params["x"]
    assert version.params.params["x"].low <= x.low < x.high <= version.params.params["x"].high


def test_search_quality_methods_on_a_tiny_budget() -> None:
    problem = search_quality.analytic_problems()[2]  # conditional: choice, nested, log, int
    for method in [*search_quality.BASE_METHODS, *search_quality.QUICK_VARIANTS]:
        trace = method.run(problem, 12, 0)
        assert len(trace.losses) == 12 and math.isfinite(trace.best) and trace.best >= problem.optimum
    stats = search_quality.summarize([3.0, 1.0, 2.0, 4.0])
    assert stats["median"] == 2.5 and stats["iqr"] == pytest.approx(1.5)


def test_search_quality_prints_a_result_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "sq.json"
    search_quality.main(["--quick", "--seeds", "2", "--trials", "8", "--no-variants", "--out", str(out_file)])
    result = common.parse_result_line(capsys.readouterr().out)
    assert result == json.loads(out_file.read_text())
    assert set(result["problems"]) == {"branin", "hartmann6", "conditional"}
    assert result["problems"]["branin"]["methods"]["optuna TPE"]["seeds"] == 2
    assert "version: 2" in result["example_v2"] and "parent: 1" in result["example_v2"]


def test_hyperopt_replay_and_latency_helpers() -> None:
    version = warmstart.study_version(30)
    rng = np.random.default_rng(1)
    configs = [sample_config(version.params, rng) for _ in range(30)]
    assert warmstart.hyperopt_replay(version, configs) > 0
    assert warmstart.tpe_latency_ms(version, [(c, warmstart.loss_of(c)) for c in configs], 3) > 0


def test_warmstart_fill_clone_and_read_back(tmp_path: Path) -> None:
    """Trials cloned in SQL read back exactly like those logged through MlflowStore (SQLite, no server)."""
    db = tmp_path / "mlflow.db"
    fake_server = SimpleNamespace(sqlite_uri=f"sqlite:///{db}", uri=f"sqlite:///{db}", db=db)
    with common.swallow_stdout():
        study = warmstart.fill_study(fake_server, 40, np.random.default_rng(2), api_runs=3, http_runs=2)  # type: ignore[arg-type]
    assert study.fill["bulk_runs"] == 35
    stages, rows = warmstart.from_store(fake_server.uri, study)
    assert stages["carried"] == 40 and len(rows) == 40
    ledger = warmstart.from_ledger(fake_server.uri, study.version, rows, tmp_path / "ledger.parquet")
    assert ledger["carried"] == 40
