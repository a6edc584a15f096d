"""Smoke tests for bench/: helpers on tiny budgets, and the RESULT line a benchmark prints last."""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from bench import (
    common,
    mo_asha_crowding,
    multi_objective,
    parego_minmax,
    per_class,
    predict_memory,
    review_cost,
    search_at_scale,
    search_quality,
    warmstart,
)
from bench.spacetools import sample_config
from orchestrator.engine import pareto_asha
from orchestrator.spaces import load_version, parse_version
from orchestrator.spaces.carry import carry
from orchestrator.spaces.trials import RecordedTrial
from orchestrator.spaces.writer import dump
from tests.plugin import SqliteTemplate
from tests.team.stack import Team


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


@pytest.mark.parametrize(("argv", "trials"), [([], 200), (["--quick"], 20), (["--quick", "--trials", "7"], 7)])
def test_sizes_default_by_mode_unless_given(argv: list[str], trials: int) -> None:
    p = common.parser("doc")
    p.add_argument("--trials", type=int)
    assert common.parse_args(p, argv, sizes={"trials": (20, 200)}).trials == trials


def test_sampled_configs_fit_the_space_and_the_refined_version_keeps_the_best() -> None:
    version = warmstart.study_version(10)
    rng = np.random.default_rng(0)
    configs = [sample_config(version.params, rng) for _ in range(40)]
    assert all(version.params.contains(c) is None for c in configs)
    case = search_quality.refine_cases()[1]  # lr and y: 40 random trials are evidence enough to narrow
    configs = [sample_config(case.version.params, rng) for _ in range(40)]
    trace = search_quality.Trace(configs, [case.objective(c) for c in configs])
    v2 = search_quality.refined_version(case.version, trace)
    assert v2.version == 2 and v2.parent == 1 and v2.params != case.version.params
    assert parse_version(dump(v2)) == v2  # the file refine + restart would search
    assert search_quality.refined_version(case.version, trace, search_quality.UNCHANGED) is case.version
    report = carry((RecordedTrial(c, loss, version=1) for c, loss in zip(configs, trace.losses, strict=True)), v2)
    best = min(configs, key=case.objective)  # a cut never passes the best trial's value
    assert best in [carried for carried, _ in report.carried]
    few = search_quality.Trace(configs[:3], trace.losses[:3])
    assert search_quality.refined_version(case.version, few) is case.version  # too few trials: no new version


def test_search_quality_methods_on_a_tiny_budget() -> None:
    problem = search_quality.analytic_problems()[2]  # conditional: choice, nested, log, int
    for method in [*search_quality.BASE_METHODS, *search_quality.QUICK_VARIANTS]:
        trace = method.run(problem, 12, 0)
        assert len(trace.losses) == 12 and math.isfinite(trace.best) and trace.best >= problem.optimum
    stats = search_quality.summarize([3.0, 1.0, 2.0, 4.0])
    assert stats["median"] == 2.5 and stats["iqr"] == pytest.approx(1.5)


def test_search_quality_prints_a_result_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "sq.json"
    argv = ["--quick", "--seeds", "2", "--trials", "12", "--no-variants", "--parts", "search"]
    search_quality.main([*argv, "--out", str(out_file)])
    result = common.parse_result_line(capsys.readouterr().out)
    assert result == json.loads(out_file.read_text())
    assert set(result["problems"]) == {"branin", "hartmann6", "conditional"}
    assert result["problems"]["branin"]["methods"]["optuna TPE"]["seeds"] == 2
    example = parse_version(result["example_v2"])  # 12 trials: refine models the 6 of v1 (v1 when nothing changes)
    assert (example.version, example.parent) in {(2, 1), (1, None)}
    assert example.version == 1 or "Refined from v1" in example.notes
    restart = result["goal"]["conditional"]["refine_restart"]
    assert restart["median"] == result["problems"]["conditional"]["methods"]["refine + restart"]["median"]
    assert restart["met"] == (restart["median"] <= restart["cold"])


def test_multi_objective_runs_tpe_beside_its_old_rule_and_prints_a_result_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = multi_objective.zdt1_problem()
    before = multi_objective.our_searcher(multi_objective.TPE_BEFORE, problem.version, 0)
    now = multi_objective.our_searcher("tpe", problem.version, 0)
    assert before.scalarize is parego_minmax.scalarize and now.scalarize is not parego_minmax.scalarize
    convnet = multi_objective.problems(True)["convnet_asha"].version  # MO-ASHA now and with its old cut
    old_cut = multi_objective.Scheduler(convnet, multi_objective.MO_ASHA_BEFORE)._scheduler._brackets[0]
    new_cut = multi_objective.Scheduler(convnet, multi_objective.MO_ASHA)._scheduler._brackets[0]
    assert old_cut.promote is mo_asha_crowding.promoted and new_cut.promote is pareto_asha.promoted
    out_file = tmp_path / "mo.json"
    argv = ["--seeds", "1", "--trials", "12", "--convnet-trials", "3", "--carried", "0", "--jobs", "1"]
    multi_objective.main([*argv, "--out", str(out_file)])
    result = common.parse_result_line(capsys.readouterr().out)
    assert result == json.loads(out_file.read_text())
    for part in ("zdt1", "branches", "convnet"):
        assert set(result["problems"][part]) == set(multi_objective.METHODS)
        assert all(0 <= row["median"] <= 1 for row in result["problems"][part].values())
    assert {"tpe before + MO-ASHA", "tpe + MO-ASHA by crowding"} <= set(result["problems"]["convnet_asha"])
    before = f"tpe, {multi_objective.MO_ASHA_BEFORE}"
    assert set(result["goal"]["mo_asha_half_epochs"]) == {"tpe", before, "tpe before", "optuna_tpe", "random"}
    front = result["convnet_front"]  # one entry per distinct front point, in the order of every reached share
    reached = result["problems"]["convnet_asha"]["tpe + MO-ASHA"]["reached_share_at_epochs"]
    assert set(reached) == {"6", "13", "27"} and all(len(shares) == len(front) for shares in reached.values())
    assert 0 < sum(point["volume_share"] for point in front) <= 1
    assert all(c["place_at_epoch"]["9"] == 1 for point in front for c in point["configs"])  # best of its size
    assert set(result["rung_cost_s"]) == {"2 objectives", "3 objectives"}
    assert all(list(row) == ["50", "100", "200"] and min(row.values()) > 0 for row in result["rung_cost_s"].values())
    trials = result["problems"]["convnet_asha"]["tpe + FIFO"]["front_trials_at_epochs"]["27"]
    assert len(trials) == len(front) and all(stopped == 0 for _, stopped in trials)  # FIFO stops nothing


def test_multi_objective_front_points_reached_and_their_volume_shares() -> None:
    version = multi_objective.zdt1_problem().version
    problem = multi_objective.MoProblem("two points", version, lambda _: {}, ((1.0, 0.0), (0.0, 1.0), (0.0, 1.0)))
    assert problem.front_points == ((0.0, 1.0), (1.0, 0.0))
    assert problem.reached([(0.0, 1.0), (0.5, 0.5)]) == [True, False]
    assert problem.reached([(-1.0, 0.0)]) == [True, True] and problem.reached([]) == [False, False]
    # normalised, reference (1.1, 1.1): the front covers 1.1^2 - 1 = 0.21, each point alone 0.1 x 1.1 = 0.11
    assert problem.volume_shares() == pytest.approx([1 - 0.11 / 0.21] * 2)


def test_search_quality_refine_part_on_a_tiny_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "sq.json"
    argv = ["--parts", "refine", "--trials", "12", "--refine-seeds", "2", "--refine-sizes", "12"]
    search_quality.main([*argv, "--restart-seeds", "1,2", "--cost-trials", "20", "--out", str(out_file)])
    result = common.parse_result_line(capsys.readouterr().out)["refine"]
    cases = {case.name for case in search_quality.refine_cases()}
    assert set(result["decisions"]) == cases
    beyond = result["decisions"]["beyond a bound"]["sizes"]["12"]
    for rule in search_quality.RULES:  # both rules judged on the same trials, seed by seed
        assert len(beyond[rule]["per_seed"]) == 2 and beyond[rule]["widened"] in {0.0, 0.5, 1.0}
    assert set(result["decision_goal"]) == set(search_quality.RULES)
    at = result["restart"]["conditional"]["2"]
    assert set(at) >= {search_quality.COLD, search_quality.UNCHANGED, *search_quality.RULES}
    assert (
        at[search_quality.COLD]["seeds"] == 2
        and result["restart"]["conditional"]["1"][search_quality.COLD]["seeds"] == 1
    )
    chance = result["restart"]["conditional"]["chance"]  # 2 seeds hold two blocks of 1 seed, not two of 2
    assert set(chance["share_of_blocks_met"]) == {"1"} and chance["share_of_blocks_met"]["1"]["blocks"] == 2
    assert set(chance["mann_whitney_p"]) == {search_quality.UNCHANGED, *search_quality.RULES}
    assert all(v["best_s"] > 0 for v in result["cost"].values())


def test_restart_chance_counts_disjoint_seed_blocks() -> None:
    cold = [1.0, 2.0, 3.0, 4.0, 9.0]
    bests = {search_quality.COLD: cold, search_quality.UNCHANGED: cold}
    bests |= {search_quality.MODEL_RULE: [0.0, 5.0, 0.0, 5.0, 0.0], search_quality.TOPK_RULE: [9.0] * 5}
    chance = search_quality.restart_chance(bests, [2, 3, 5])
    assert set(chance["share_of_blocks_met"]) == {"2"}  # 5 seeds: two blocks of 2 (the fifth left out), one of 3
    shares = chance["share_of_blocks_met"]["2"]
    # medians per block: cold 1.5, 3.5; the model rule 2.5, 2.5 (met in the second); top-K 9, 9; unchanged ties
    assert shares == {
        "blocks": 2,
        search_quality.MODEL_RULE: 0.5,
        search_quality.TOPK_RULE: 0.0,
        search_quality.UNCHANGED: 1.0,
    }
    assert chance["mann_whitney_p"][search_quality.UNCHANGED] == pytest.approx(1.0)
    assert chance["seeds"] == 5


def test_hyperopt_replay_and_latency_helpers() -> None:
    version = warmstart.study_version(30)
    rng = np.random.default_rng(1)
    configs = [sample_config(version.params, rng) for _ in range(30)]
    assert warmstart.hyperopt_replay(version, configs) > 0
    assert warmstart.tpe_latency_ms(version, [(c, warmstart.loss_of(c)) for c in configs], 3) > 0


def test_warmstart_fill_clone_and_read_back(
    tmp_path: Path, sqlite_template: SqliteTemplate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trials cloned in SQL read back exactly like those logged through MlflowStore (SQLite, no server)."""
    monkeypatch.chdir(tmp_path)  # the SQLite store keeps the ledger artifact under ./mlruns
    sqlite_template.copy(tmp_path)  # an empty store, its tables made
    db = tmp_path / "mlflow.db"
    fake_server = SimpleNamespace(backend_store_uri=f"sqlite:///{db}", uri=f"sqlite:///{db}", db_path=db)
    with common.swallow_stdout():
        study = warmstart.fill_study(fake_server, 40, np.random.default_rng(2), api_runs=3, http_runs=2)  # type: ignore[arg-type]
    assert study.fill["bulk_runs"] == 35
    stages, rows = warmstart.from_store(fake_server.uri, study)
    assert stages["carried"] == 40 and len(rows) == 40
    ledger = warmstart.from_ledger(fake_server.uri, study.version, rows, tmp_path / "ledger.parquet")
    assert ledger["carried"] == 40
    artifact = warmstart.from_artifact(fake_server, study)  # type: ignore[arg-type]
    assert artifact["carried"] == 40 and artifact["newer_runs"] == 5  # the API runs end after the as-of time


@pytest.mark.slow
def test_warmstart_clone_and_read_back_on_the_team_server(team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same on the team's server: the SQL clone writes PostgreSQL, read back over HTTP with the admin's login."""
    stack = team.stack
    # the login through MLflow's variables: a login in a URI would be kept for the URI in this process (keep_login)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.secrets.admin_password)
    server = warmstart.Server("postgresql", stack.uri, stack.server.backend_store_uri, stack.startup_s)
    with common.swallow_stdout():
        study = warmstart.fill_study(server, 40, np.random.default_rng(3), api_runs=3, http_runs=2)
    assert study.fill["bulk_runs"] == 35
    stages, rows = warmstart.from_store(server.uri, study)  # checks every trial's config, loss and history
    assert stages["carried"] == 40 and len(rows) == 40
    artifact = warmstart.from_artifact(server, study)  # the ledger artifact lands in the bucket
    assert artifact["carried"] == 40 and artifact["newer_runs"] == 5


def test_search_at_scale_curves_cross_and_asha_stops_trials() -> None:
    fast, slow = {"lr": 0.2, "depth": 5, "dropout": 0.2}, {"lr": 2e-3, "depth": 5, "dropout": 0.2}
    curve = search_at_scale.learning_curve
    assert curve(fast, 1) < curve(slow, 1) and curve(fast, 27) > curve(slow, 27)  # early ranking misleads
    version = search_at_scale.make_version("mf", search_at_scale.MF_PARAMS, schedule=search_at_scale.MF_SCHEDULE)
    searcher = search_at_scale.variant("tpe")(version, [], seed=0)
    trace = search_at_scale.asha_search(searcher, version, search_at_scale.learning_curve, 12, seed=0)
    assert 0 < len(trace.finals) < 12 and trace.epochs < 12 * 27  # ASHA stopped some trials early
    assert searcher.observed_at(1) == 12 and searcher.observed_at(27) == len(trace.finals)


def test_search_at_scale_prints_a_result_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "scale.json"
    search_at_scale.main(
        [
            "--quick",
            "--seeds",
            "2",
            "--mf-trials",
            "12",
            "--parallel-trials",
            "10",
            "--prior-trials",
            "2100",
            "--suggestions",
            "2",
            "--latency-priors",
            "300,2500",
            "--out",
            str(out_file),
        ]
    )
    result = common.parse_result_line(capsys.readouterr().out)
    assert result == json.loads(out_file.read_text())
    assert set(result["multifidelity"]) == {"crossing curves", "convnet digits"}
    crossing = result["multifidelity"]["crossing curves"]
    assert crossing["ours"] == "tpe, fidelity-aware + ASHA, 4 brackets"
    assert {crossing["ours"], "Ray HyperOptSearch + ASHA, 1 bracket", "Optuna TPE + HyperbandPruner"} <= set(
        crossing["methods"]
    )
    assert set(result["parallel"]["problems"]) == {"branin", "hartmann6", "conditional"}
    assert set(result["latency_ms"]) == {"300", "2500"} and result["goal"]["latency_met"] == {}
    assert result["prior_quality"]["problems"]["branin"]["now"]["seeds"] == 2


def _cost_trial(wall_s: float, config: str, epochs: int = 4) -> dict[str, Any]:
    """One trial as ``review_cost.trial_times`` describes it; its trainable's own time is 0.9 of its wall time."""
    return {
        "wall_s": wall_s,
        "epochs": epochs,
        "s_per_epoch": wall_s / epochs,
        "reviewed": False,
        "train_s": 0.9 * wall_s,
        "train_s_per_epoch": 0.9 * wall_s / epochs,
        "config": config,
    }


def _cost_run(
    trial_wall_s: float,
    review_wait_s: float,
    configs: tuple[str, ...] = ("a", "b", "c"),
    job_cpu_s: tuple[float, ...] = (),
) -> dict[str, Any]:
    """One search as ``review_cost.run_once`` describes it: a trial of ``trial_wall_s`` over 4 epochs per config."""
    trials = [{**_cost_trial(trial_wall_s, config), "reviewed": review_wait_s > 0} for config in configs]
    return {
        "call_s": 5 * trial_wall_s,
        "fit_s": 4 * trial_wall_s,
        "review_wait_s": review_wait_s,
        "best": 0.9,
        "warm_up_cpu_s": 6.0 if job_cpu_s else None,
        "job_cpu_s": list(job_cpu_s),
        "trials": trials,
    }


def test_review_cost_alternates_sides_and_compares_medians(capsys: pytest.CaptureFixture[str]) -> None:
    assert [review_cost.side_order(i) for i in range(3)] == [["off", "on"], ["on", "off"], ["off", "on"]]
    assert load_version(review_cost.demo_space()).study == "convnet_digits"  # what `orchestrator demo` searches
    runs = {
        "off": [_cost_run(10.0, 0.0), _cost_run(12.0, 0.0)],
        "on": [_cost_run(10.5, 2.0, job_cpu_s=(0.2, 0.3)), _cost_run(12.5, 3.0, job_cpu_s=(0.4,))],
    }
    sides = {side: review_cost.summarize(side_runs) for side, side_runs in runs.items()}
    assert sides["off"]["trial_wall_s_median"] == 11.0 and sides["on"]["trial_wall_s_median"] == 11.5
    assert sides["on"]["review_wait_s_max"] == 3.0 and sides["on"]["trials_reviewed"] == 6
    assert sides["off"]["trials_reviewed"] == 0 and sides["off"]["trials_measured"] == 6
    assert sides["on"]["worker_job_cpu_s_median"] == 0.3 and sides["on"]["worker_warm_up_cpu_s_median"] == 6.0
    assert sides["off"]["worker_job_cpu_s_median"] is None
    paired = review_cost.paired_ratios(runs["off"], runs["on"])
    assert paired["pairs"] == paired["trials"] == 6
    # per pair 10.5/10 three times, 12.5/12 three times: the median is between them
    assert paired["s_per_epoch_ratio"] == pytest.approx((10.5 / 10 + 12.5 / 12) / 2)
    compared = review_cost.compare(sides, paired)
    assert compared["ratios_on_over_off"]["trial_wall_s_median"] == pytest.approx(11.5 / 11.0)
    assert compared["ratios_on_over_off"]["trial_train_s_per_epoch_median"] == pytest.approx(11.5 / 11.0)
    goal = compared["goal"]
    cost = (10.5 / 10 + 12.5 / 12) / 2 - 1
    assert goal["measure"].startswith("paired") and goal["trial_cost"] == pytest.approx(cost)
    assert goal["met"] is (cost <= review_cost.GOAL_COST)
    review_cost.report({"space": "demo.yaml", "rounds": 2, "seed": 0, "sides": sides, **compared})
    printed = capsys.readouterr().out
    assert "on / off" in printed and f"{cost:+.2%} (NOT met)" in printed and "paired up 6 of 6 trials" in printed


def test_review_cost_pairs_trials_of_the_same_round_and_config_else_falls_back_to_pooled_medians() -> None:
    off = [
        {"trials": [_cost_trial(10.0, "a"), _cost_trial(20.0, "b", epochs=8), _cost_trial(30.0, "c")]},
        {"trials": [_cost_trial(10.0, "a")]},
    ]
    on = [
        {"trials": [_cost_trial(22.0, "b", epochs=4), _cost_trial(11.0, "x")]},  # b stopped at another rung
        {"trials": [_cost_trial(10.2, "a"), _cost_trial(10.0, "a")]},
    ]  # a config twice: paired once
    pairs = review_cost.pair_trials(off, on)
    assert [(o["config"], n["config"]) for o, n in pairs] == [("b", "b"), ("a", "a")]
    assert pairs[0][1]["wall_s"] == 22.0 and pairs[1][1]["wall_s"] == 10.2, "the first unmatched trial, in order"
    paired = review_cost.paired_ratios(off, on)
    assert paired["pairs"] == 2 and paired["trials"] == 4
    assert paired["s_per_epoch_ratio"] == pytest.approx(((22 / 4) / (20 / 8) + 10.2 / 10) / 2)  # per epoch
    sides = {
        "off": review_cost.summarize([{**_cost_run(10.0, 0.0), **run} for run in off]),
        "on": review_cost.summarize([{**_cost_run(10.0, 1.0), **run} for run in on]),
    }
    assert review_cost.compare(sides, paired)["goal"]["measure"].startswith("paired"), "2 of 4: half pair up"
    few = {**paired, "pairs": 1}
    goal = review_cost.compare(sides, few)["goal"]
    pooled = sides["on"]["trial_s_per_epoch_median"] / sides["off"]["trial_s_per_epoch_median"] - 1
    assert goal["measure"].startswith("pooled") and goal["trial_cost"] == pytest.approx(pooled)


def test_review_cost_times_the_drivers_wait_for_the_review_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.review.trial import TrialReviews, WorkerReady

    timeouts: list[float] = []

    def finish(self: object, timeout: float) -> None:
        time.sleep(0.05)
        timeouts.append(timeout)

    monkeypatch.setattr(TrialReviews, "finish", finish)
    waits: list[float] = []
    with review_cost.timed_review_waits(waits):
        TrialReviews.finish(object(), 1.5)  # type: ignore[arg-type]
    assert timeouts == [1.5] and len(waits) == 1 and waits[0] >= 0.05
    assert TrialReviews.finish is finish  # restored after the block
    worker_cpu: list[dict[str, Any]] = []
    with review_cost.timed_review_waits(waits, worker_cpu):
        done = SimpleNamespace(warm_up=WorkerReady(6.5, 9.0), job_cpu_s=[0.2], activity=[(1.0, 2.0, 0.2)])
        TrialReviews.finish(done, 1.0)  # type: ignore[arg-type]
        TrialReviews.finish(SimpleNamespace(warm_up=None, job_cpu_s=[], activity=[]), 1.0)  # type: ignore[arg-type]
    assert worker_cpu == [
        {"warm_up_cpu_s": 6.5, "job_cpu_s": [0.2], "activity": [[1.0, 2.0, 0.2]]},
        {"warm_up_cpu_s": None, "job_cpu_s": [], "activity": []},
    ]


@pytest.mark.slow
def test_per_class_compares_the_same_total_epochs_and_prints_a_result_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = {
        "scenes": 4,
        "scene_size": 64,
        "patch": 32,
        "depth": 2,
        "base_filters": 4,
        "convs_per_block": 1,
        "samples_per_epoch": 16,
        "batch_size": 8,
        "classes": ["buildings", "water"],
    }
    monkeypatch.setitem(per_class.SIZES, "config", (tiny, tiny))
    payload = per_class.main(["--quick", "--epochs", "2", "--seeds", "1", "--out", str(tmp_path / "pc.json")])
    out = capsys.readouterr().out
    assert common.parse_result_line(out) == json.loads((tmp_path / "pc.json").read_text())
    assert payload["epochs_per_model"] == {per_class.ALL: 2, per_class.SAME_TOTAL: 1, per_class.EACH_FULL: 2}
    assert payload["total_epochs"][per_class.ALL] == payload["total_epochs"][per_class.SAME_TOTAL] == 2
    for arm in per_class.ARMS:
        medians = payload["median_jaccard"][arm]
        assert set(medians) == {"buildings", "water"} and all(0.0 <= v <= 1.0 for v in medians.values())
    means = payload["mean_of_medians"]
    assert payload["per_class_helps_same_total_epochs"] is (means[per_class.SAME_TOTAL] > means[per_class.ALL])
    assert ("holds here" if payload["per_class_helps_same_total_epochs"] else "does not hold") in payload["verdict"]
    assert "per class (E/K each): 1 ep" in out


def test_predict_memory_measures_the_child_and_checks_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "predict.json"
    predict_memory.main(["--quick", "--size", "256", "--out", str(out_file)])
    result = common.parse_result_line(capsys.readouterr().out)
    assert result == json.loads(out_file.read_text())
    assert result["scene"]["full_stack_bytes"] == 24 * 4 * 256 * 256 and not result["goal"]["scene_large_enough"]
    cpu = result["runs"]["cpu"]
    assert cpu["device"] == "cpu" and cpu["tiles"] == 81 and cpu["tiles_per_s"] > 0  # (256 + 2 * 32) / 32 - 1 = 9
    assert 0 < cpu["peak_rss_bytes"] < 4 * 2**30
    assert result["identity"]["identical"] and result["identity"]["pixels_compared"] > 0.99 * 2 * 128 * 128


def test_review_cost_bounds_the_cost_by_the_workers_cpu_while_trials_ran() -> None:
    trials = [{"start": 0.0, "end": 10.0}, {"start": 5.0, "end": 15.0}, {"start": 20.0, "end": 30.0}]
    activity = [
        (12.0, 16.0, 2.0),  # 3 of its 4 seconds inside a trial: 1.5 CPU s counted
        (16.0, 19.0, 1.0),  # between trials: none
        (25.0, 25.0, 0.5),
    ]  # an instant inside a trial: all of it
    assert review_cost.cpu_during_trials(activity, trials) == pytest.approx(2.0)
    assert review_cost.cpu_during_trials([], trials) == 0.0


def test_review_cost_noise_floor_pairs_consecutive_rounds_of_one_side() -> None:
    runs = [{"trials": [_cost_trial(wall_s, "a")]} for wall_s in (10.0, 11.0, 9.9)]
    assert review_cost.noise_floor(runs) == pytest.approx((11.0 / 10.0 + 9.9 / 11.0) / 2)
    assert review_cost.noise_floor(runs[:1]) is None


def test_review_cost_pairs_each_round_and_resamples_whole_rounds() -> None:
    off = [{"trials": [_cost_trial(10.0, "a"), _cost_trial(10.0, "b")]}, {"trials": [_cost_trial(10.0, "a")]}]
    on = [{"trials": [_cost_trial(11.0, "a"), _cost_trial(11.0, "b")]}, {"trials": [_cost_trial(9.0, "a")]}]
    paired = review_cost.paired_ratios(off, on)
    assert paired["per_round"] == [pytest.approx(1.1), pytest.approx(0.9)]
    low, high = review_cost.round_interval(off, on)
    # resampled sets: both rounds (median 1.1 of three pairs), round 1 twice (1.1) or round 2 twice (0.9)
    assert low == pytest.approx(0.9) and high == pytest.approx(1.1)
    assert review_cost.round_interval(off[:1], on[:1]) is None


def test_review_cost_samples_the_drivers_cpu_in_contiguous_stretches() -> None:
    activity: list[tuple[float, float, float]] = []
    with review_cost.sampled_cpu(activity, every_s=0.05):
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:  # busy: CPU time this process spends
            pass
    assert len(activity) >= 3
    assert all(a[1] == b[0] for a, b in itertools.pairwise(activity)), "no gap between stretches"
    assert 0.25 <= sum(cpu for _, _, cpu in activity) <= 1.0


def test_review_cost_cpu_bound_adds_the_drivers_extra_cpu_per_trial_second() -> None:
    sides = {side: review_cost.summarize([_cost_run(10.0, 0.0)]) for side in review_cost.SIDES}  # 30 s of trials each
    sides["on"] = {**sides["on"], "worker_cpu_during_trials_s": 0.3, "driver_cpu_during_trials_s": 1.5}
    sides["off"] = {**sides["off"], "driver_cpu_during_trials_s": 0.9}
    paired = review_cost.paired_ratios([_cost_run(10.0, 0.0)], [_cost_run(10.0, 0.0)])
    compared = review_cost.compare(sides, paired)
    assert compared["worker_cpu_bound"] == pytest.approx(0.3 / 30)
    assert compared["cpu_bound"] == pytest.approx(0.3 / 30 + (1.5 - 0.9) / 30)
    sides["off"]["driver_cpu_during_trials_s"] = 3.0  # the driver worked less with review artifacts on: no credit
    assert review_cost.compare(sides, paired)["cpu_bound"] == pytest.approx(0.3 / 30)


def test_optuna_hyperband_baseline_is_the_same_run_for_the_same_seed() -> None:
    """Optuna's HyperbandPruner brackets trials by a hash of the study's name: the bench names it by the seed."""
    problem = search_at_scale.crossing_curves()
    version = problem.version(1)
    runs = [search_at_scale.optuna_hyperband(version, problem.curve, 20, seed=3) for _ in range(2)]
    assert runs[0].finals == runs[1].finals and runs[0].epochs == runs[1].epochs


def test_tabular_tables_read_as_the_package_reads_them() -> None:
    """A configuration's losses are the table's values for it under the package's own key, as ``Metric.loss`` of
    its metric; the package's ``__call__`` draws one of them."""
    from bench import tabular

    problem = tabular.package_problem("hpobench", "australian")
    bench = tabular.package_benchmark("hpobench", "australian")
    space = bench.search_space
    values = {"alpha": 3, "batch_size": 0, "depth": 2, "learning_rate_init": 9, "width": 5}
    assert problem.version.params.contains(values) is None
    losses = problem.seeds_of(values)
    config = {name: space[name][i] for name, i in values.items()}
    assert sorted(losses) == sorted(-v for v in bench._dataset["30295"]["val_acc"])
    assert -bench(config)["val_acc"] in losses
    assert problem.mean(values) == pytest.approx(np.mean(losses))
    assert problem.optimum <= problem.mean(values)
    drawn = [problem.objective(0)(values) for _ in range(3)]
    assert drawn == [problem.objective(0)(values) for _ in range(3)] and set(drawn) <= set(losses)
    nas = tabular.package_problem("nasbench201", "cifar10")
    assert nas.version.params.params["Op0"].is_choice


def test_the_synthetic_grid_is_hartmann6_at_its_positions_and_its_optimum_the_grids_best() -> None:
    from bench import tabular

    problem = tabular.hartmann_grid_problem()
    values = {f"x{i}": k for i, k in zip(range(1, 7), [2, 1, 5, 3, 3, 7], strict=True)}  # near Hartmann's optimum
    assert problem.version.params.contains(values) is None
    assert problem.mean(values) == pytest.approx(search_quality.hartmann6({k: v / 10 for k, v in values.items()}))
    assert problem.optimum <= problem.mean(values) < -3.2  # the grid's best is near the continuous -3.32237
    assert problem.objective(0)(values) == problem.mean(values)  # no noise
    rng = np.random.default_rng(0)
    samples = [{f"x{i}": int(rng.integers(11)) for i in range(1, 7)} for _ in range(200)]
    assert min(problem.mean(c) for c in samples) >= problem.optimum


def test_tabular_on_a_tiny_budget_scores_the_incumbent_by_its_table_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import tabular

    problem = tabular.problem_named("hpobench/car")
    trace = search_quality.Trace(
        [{"alpha": 0, "batch_size": 0, "depth": 1, "learning_rate_init": 0, "width": i} for i in range(3)],
        [0.5, -2.0, -2.0],
    )
    assert tabular.incumbent_means(problem, trace, (1, 3)) == {
        1: problem.mean(trace.configs[0]),
        3: problem.mean(trace.configs[1]),  # the first of the best observed
    }
    out_file = tmp_path / "tabular.json"
    cases = "hpobench/car,convnet_digits"
    tabular.main(["--quick", "--seeds", "2", "--checkpoints", "4,12", "--cases", cases, "--out", str(out_file)])
    result = common.parse_result_line(capsys.readouterr().out)
    assert result == json.loads(out_file.read_text())
    assert set(result["cases"]) == set(cases.split(","))
    for res in result["cases"].values():
        assert set(res["methods"]) == set(tabular.METHODS)
        for s in res["methods"].values():
            assert s["seeds"] == 2 and len(s["12"]["scores"]) == 2
            assert all(score >= res["optimum"] - 1e-12 for score in s["12"]["scores"])
        goal = res["goal"]["12"]
        assert goal["tpe"]["met"] == (goal["tpe"]["median"] <= goal["reference"])
