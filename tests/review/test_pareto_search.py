"""A search of two objectives end to end through the command line (issue 26): a real local Ray, a SQLite store,
``convnet_tiny`` trained for real.

Accuracy against the number of parameters (a hardware cost every trial reports), under a constraint on the
multiply-adds that half of the six configurations break (the space is those six: no suggestion repeats one, so
each runs once). Read back as a reviewer would: the Pareto-front picture decoded and not blank, every trial run
tagged with its front (the fronts recomputed from the runs' own metrics, infeasible trials after every feasible
one), the leaderboard ordered by front then crowding, the knee (recomputed, feasible) is the search's best, its
model registered and loadable; then ``report`` prints the front and ``train``'s default is the knee while
``--trial`` takes any member of the front.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.engine import pareto
from orchestrator.spaces import Metric
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import fluent_tracking_uri, open_store

STUDY = "pareto_cli"
TRIALS = 6
OBJECTIVES = (Metric("val_accuracy", "max"), Metric("params", "min"))
MAX_MACS = 7000  # convnet_tiny's multiply-adds per sample: (2, 8) 1634, (2, 32) 2666, (6, 8) 4706 keep it;
# (6, 32) 7274, (12, 8) 9314, (12, 32) 14186 break it
SPACE = f"""\
study: {STUDY}
version: 1
trainable: convnet_tiny
objectives:
  - {{name: {OBJECTIVES[0].name}, mode: {OBJECTIVES[0].mode}}}
  - {{name: {OBJECTIVES[1].name}, mode: {OBJECTIVES[1].mode}}}
constraints: {{macs: {{max: {MAX_MACS}}}}}
schedule: {{scheduler: fifo, max_epochs: 1}}
resources: {{cpu: 1, gpu: 0}}
search: {{trials: {TRIALS}, startup_trials: {TRIALS}}}
params:
  filters: {{choice: [2, 6, 12]}}
  fc_width: {{choice: [8, 32]}}
"""
MIN_PIXEL_STD = 0.02  # a blank (single-colour) image has 0


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out + err


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_a_two_objective_search_through_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.image
    import mlflow.pytorch
    import torch

    from orchestrator.production.train import chosen_trial

    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    space = tmp_path / "search_spaces" / STUDY / "v1.yaml"
    space.parent.mkdir(parents=True)
    space.write_text(SPACE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = ("--tracking-uri", uri, "--storage", str(tmp_path / "ray"), "--no-live", "--no-review-artifacts")
    code, out = cli(capsys, "run", str(space), *run, "--concurrency", "2")
    assert code == 0, out
    assert "Pareto front: " in out and "knee of the front val_accuracy " in out and "under macs <= 7000" in out

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(STUDY).experiment_id
    (search,) = client.search_runs([experiment], f"tags.`{schema.KIND}` = '{schema.SEARCH_RUN}'")
    parent = search.info.run_id
    assert search.info.status == "FINISHED"
    for reason in (schema.REVIEW_ERROR, schema.MODEL_SKIPPED):
        assert reason not in search.data.tags, search.data.tags[reason]
    assert json.loads(search.data.params[schema.PARAM_OBJECTIVES]) == [
        {"name": m.name, "mode": m.mode} for m in OBJECTIVES
    ]

    # every trial run has its front, the fronts of the runs' own last values
    trials = client.search_runs(
        [experiment], f"tags.`{schema.PARENT}` = '{parent}' and tags.`{schema.KIND}` = '{schema.TRIAL_RUN}'"
    )
    assert len(trials) == TRIALS
    points = [tuple(m.loss(run.data.metrics[m.name]) for m in OBJECTIVES) for run in trials]
    breach = [max(run.data.metrics["macs"] - MAX_MACS, 0.0) / MAX_MACS for run in trials]
    assert sum(b > 0 for b in breach) == 3  # the three configurations over the bound
    fronts = pareto.ranks(points, breach)
    feasible_fronts = {f for f, b in zip(fronts, breach, strict=True) if b == 0}
    assert min(f for f, b in zip(fronts, breach, strict=True) if b > 0) > max(feasible_fronts)
    assert [int(run.data.tags[schema.PARETO_RANK]) for run in trials] == fronts
    front_runs = {run.info.run_id for run, f in zip(trials, fronts, strict=True) if f == 0}  # feasible ones
    filtered = client.search_runs([experiment], f'tags."{schema.PARETO_RANK}" = "0"')
    assert {run.info.run_id for run in filtered} == front_runs

    # the leaderboard: by front then crowding, the knee recomputed is its best and the search's
    table = pq.read_table(client.download_artifacts(parent, schema.LEADERBOARD_TABLE_ARTIFACT, str(tmp_path)))
    rows = table.to_pylist()
    by_run = {run.info.run_id: i for i, run in enumerate(trials)}
    assert sorted(row["run_id"] for row in rows) == sorted(by_run)
    spread: dict[int, float] = {}  # each run's crowding within its front: the order in a front, most spread first
    for f in set(fronts):
        members = [i for i, x in enumerate(fronts) if x == f]
        spread.update(zip(members, pareto.crowding([points[i] for i in members]), strict=True))
    keys = [(fronts[by_run[row["run_id"]]], -spread[by_run[row["run_id"]]]) for row in rows]
    assert keys == sorted(keys) and [row["front"] for row in rows] == sorted(fronts)
    # the knee's rule for equally balanced members (the better first objective, then the trial id): the front in
    # that order, not the leaderboard's (crowding), so a tie goes where the search sent it
    front_rows = sorted(
        (row for row in rows if row["front"] == 0), key=lambda row: (points[by_run[row["run_id"]]], row["trial_id"])
    )
    knee = front_rows[pareto.knee([points[by_run[row["run_id"]]] for row in front_rows])]
    assert knee["feasible"] and all(row["feasible"] == (row["front"] in feasible_fronts) for row in rows)
    assert json.loads(search.data.tags[schema.BEST_CONFIG]) == json.loads(knee["config"])
    assert search.data.metrics[schema.best_metric(OBJECTIVES[1].name)] == knee[f"objective.{OBJECTIVES[1].name}"]
    markdown = Path(client.download_artifacts(parent, schema.LEADERBOARD_ARTIFACT, str(tmp_path / "md"))).read_text()
    assert f"`{knee['trial_id']}` *" in markdown

    # the front's picture: decoded, not blank
    picture = schema.pareto_artifact(*(m.name for m in OBJECTIVES))
    listed = {a.path for a in client.list_artifacts(parent, schema.REVIEW_ARTIFACT_DIR)}
    assert picture in listed and schema.importance_artifact(OBJECTIVES[0].name, ".json") in listed
    pixels = matplotlib.image.imread(client.download_artifacts(parent, picture, str(tmp_path / "png")))
    assert pixels.shape[0] >= 200 and pixels.shape[1] >= 300 and float(np.std(pixels[..., :3])) > MIN_PIXEL_STD

    # the knee's model is registered and loads
    (version,) = client.search_model_versions(f"name = '{STUDY}'")
    assert version.tags[schema.SOURCE_RUN] == knee["run_id"] and version.tags[schema.TRIAL_ID] == knee["trial_id"]
    with fluent_tracking_uri(uri):
        model = mlflow.pytorch.load_model(f"models:/{STUDY}/{version.version}")
    with torch.no_grad():
        scores = model(torch.zeros(3, 1, 8, 8))
    assert tuple(scores.shape) == (3, 10)

    # report prints the front, the knee marked; train's default is the knee, --trial any member of the front
    code, out = cli(capsys, "report", STUDY, "--tracking-uri", uri)
    assert code == 0 and "Pareto front of the study" in out and f"* {knee['trial_id']}" in out
    store = open_store(uri)
    assert chosen_trial(store, STUDY).run_id == knee["run_id"]
    other = next((row for row in rows if row["front"] == 0 and row["run_id"] != knee["run_id"]), knee)
    assert chosen_trial(store, STUDY, other["trial_id"]).run_id == other["run_id"]
