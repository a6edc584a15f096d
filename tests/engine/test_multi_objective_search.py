"""Searches of several objectives through the engine (``engine.runner``, no review hooks) on a real local Ray and a
SQLite store: every objective logged per epoch and kept in the history tag, MO-ASHA stopping trials, constraints
held, a missing objective named, the shared loop's costs reported, and a v1 study of one metric carried into a v2
that adds ``latency_ms`` with its costs computed without training. (The command-line search with the review of the
front is the review half's test.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.engine import costs
from orchestrator.engine.runner import SearchOptions, run_search
from orchestrator.errors import OrchestratorError
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import read_history_tag

pytestmark = pytest.mark.slow

ZDT = """\
study: {study}
version: 1
trainable: analytic
objectives: [{{name: f1, mode: min}}, {{name: f2, mode: min}}]
{extra}schedule: {{scheduler: asha, max_epochs: 9, grace_period: 1, reduction_factor: 3}}
search: {{algorithm: {algorithm}, trials: 12, startup_trials: 4, concurrency: 2}}
fixed: {{function: {function}}}
params:
  x: {{uniform: [0.0, 1.0]}}
  y: {{uniform: [0.0, 1.0]}}
"""


def write(root: Path, study: str, text: str, name: str = "v1.yaml") -> Path:
    folder = root / "search_spaces" / study
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def options(root: Path) -> SearchOptions:
    return SearchOptions(tracking_uri=f"sqlite:///{root / 'mlflow.db'}", storage=str(root / "ray"), live=False, seed=3)


def trial_runs(root: Path, study: str) -> list:
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id])
    return [r for r in runs if r.data.tags.get(schema.KIND) == "trial"]


@pytest.mark.parametrize("algorithm", ["tpe", "optuna_tpe"])
def test_a_search_of_two_objectives_with_mo_asha_and_a_constraint(
    tmp_path: Path, local_ray: None, algorithm: str
) -> None:
    study = f"zdt_{algorithm}"
    space = write(
        tmp_path,
        study,
        ZDT.format(study=study, algorithm=algorithm, function="zdt1", extra="constraints: {f1: {max: 0.5}}\n"),
    )
    lines: list[str] = []
    result = run_search(space, options(tmp_path), {}, lines.append)
    assert result.finished == 12 and result.failed == 0
    runs = trial_runs(tmp_path, study)
    assert len(runs) == 12
    stopped = [r for r in runs if schema.STOPPED_EARLY in r.data.tags]
    assert stopped, "MO-ASHA stopped no trial"
    for run in runs:
        assert {"f1", "f2", "loss"} <= set(run.data.metrics)
        history = read_history_tag(run.data.tags[schema.METRIC_HISTORY])
        assert set(history) == {"f1", "f2"} and history["f1"].keys() == history["f2"].keys()
    # the constraint holds where it is a rule, not a tendency: the search's best (the knee) keeps it, and every trial
    # ranked on a front keeps it (the infeasible ones carry no front rank of the feasible set)
    parent = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(result.parent_run_id)
    assert parent.data.metrics[schema.best_metric("f1")] <= 0.5
    feasible = [r for r in runs if r.data.metrics["f1"] <= 0.5]
    assert feasible, "no trial kept the constraint"
    front = [r for r in runs if r.data.tags.get(schema.PARETO_RANK) == "0"]
    assert front and all(r.data.metrics["f1"] <= 0.5 for r in front)


def test_a_trial_that_does_not_report_an_objective_fails_the_search_naming_it(tmp_path: Path, local_ray: None) -> None:
    space = write(tmp_path, "missing", ZDT.format(study="missing", algorithm="tpe", function="quadratic", extra=""))
    with pytest.raises(OrchestratorError, match=r"did not report the metric 'f1' named in the space file"):
        run_search(space, options(tmp_path), {}, lambda _: None)


CONVNET = """\
study: tiny
version: {version}
{parent}trainable: convnet_tiny
{goals}
schedule: {{scheduler: fifo, max_epochs: 1}}
search: {{algorithm: tpe, trials: 3, startup_trials: 2, concurrency: 1}}
params:
  filters: {{choice: [2, 4, 8]}}
  fc_width: {{choice: [8, 16]}}
"""


def test_a_v1_study_carried_into_a_v2_with_latency_gets_its_costs_without_training(
    tmp_path: Path, local_ray: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(costs, "CACHE", {})
    v1 = write(tmp_path, "tiny", CONVNET.format(version=1, parent="", goals="metric: {name: val_accuracy, mode: max}"))
    first = run_search(v1, options(tmp_path), {}, lambda _: None)
    assert first.finished == 3
    for run in trial_runs(tmp_path, "tiny"):  # every trial reports params and macs; latency only when named
        assert {"params", "macs"} <= set(run.data.metrics) and "latency_ms" not in run.data.metrics
    goals = "objectives: [{name: val_accuracy, mode: max}, {name: latency_ms, mode: min}]"
    v2 = write(tmp_path, "tiny", CONVNET.format(version=2, parent="parent: 1\n", goals=goals), "v2.yaml")
    lines: list[str] = []
    second = run_search(v2, options(tmp_path), {}, lines.append)
    assert second.finished == 3
    text = "\n".join(lines)
    assert "carried 3 of 3 earlier trials" in text and "latency_ms to compute from the configuration" in text
    assert "computed latency_ms of " in text and "(3 carried trials)" in text and "without training" in text
    runs = [r for r in trial_runs(tmp_path, "tiny") if r.data.tags[schema.VERSION] == "2"]
    assert len(runs) == 3 and all(run.data.metrics["latency_ms"] > 0 for run in runs)
