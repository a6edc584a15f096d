"""The real team server (issue 22): PostgreSQL, moto's S3, ``mlflow server --app-name basic-auth``, two users.

``alice`` owns the study (her first search creates its experiment, so MLflow gives her MANAGE); its review artifacts
and ledger land as objects in the bucket, read back with boto3, and its best model is registered. ``bob`` holds the
server's default, READ: ``run``, ``space refine`` (writing), ``train`` and ``access`` are each refused in one line
before anything runs, while ``report``, ``space diff --tracking-uri`` and the links ``ui`` prints work for him.
Then ``alice`` grants him EDIT with ``orchestrator access`` (read back with MLflow's own auth client, as the admin,
and by ``access`` itself) and his next search works. A wrong password is one line too.

Commands run in this process through the command group (one local Ray for the module); the logins come from
MLflow's environment variables, as a user's shell gives them.
"""

from __future__ import annotations

import io
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import cli
from orchestrator.errors import describe
from orchestrator.tracking import schema
from orchestrator.tracking.links import experiment_url
from tests.spacefiles import write_space
from tests.team.stack import Team

pytestmark = pytest.mark.slow

STUDY = "team_digits"
SEARCH = {
    "trainable": "convnet_tiny",
    "metric": "{name: val_accuracy, mode: max}",
    "fixed": None,
    "schedule": "{scheduler: fifo, max_epochs: 1}",
    "resources": "{cpu: 1, gpu: 0}",
    "search": "{trials: 2, startup_trials: 2}",
}


def params(high: int) -> str:
    return f"  filters: {{int: [2, {high}]}}\n  fc_width: {{choice: [8, 16]}}\n"


REVIEW_FILES = ("model_summary.txt", "architecture.png", "confusion_matrix.png")


@dataclass
class Study:
    team: Team
    folder: Path  # the space files: v1.yaml, and v2.yaml for the diff
    storage: Path
    experiment_id: str
    parent_run_id: str
    trial_run_ids: list[str]

    @property
    def v1(self) -> Path:
        return self.folder / "v1.yaml"

    def runs(self) -> list[Any]:
        """Every run of the study (any user's, any kind), as the admin sees them."""
        return self.team.client("alice").search_runs([self.experiment_id], max_results=1000)


def invoke(team: Team, user: str, *args: str, password: str | None = None) -> Result:
    """``orchestrator ARGS`` as ``user`` (their login in MLflow's variables, the server in MLFLOW_TRACKING_URI)."""
    env = team.env(user)
    if password is not None:
        env["MLFLOW_TRACKING_PASSWORD"] = password
    return CliRunner(env=env).invoke(cli, list(args))


def refused(result: Result) -> str:
    """The one line the command printed for its error (``orchestrator.errors.describe``, as ``main`` prints it)."""
    assert result.exit_code == 1 and result.exception is not None, result.output
    line = describe(result.exception)
    assert "\n" not in line and "Traceback" not in line and "--debug" not in line, line
    return line


@pytest.fixture(scope="module")
def study(team: Team, team_ray: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Study]:
    """``alice``'s search of the study: 2 trials of the ConvNet, review artifacts on, through ``orchestrator run``."""
    root = tmp_path_factory.mktemp("team-study")
    folder = write_space(root, study=STUDY, params=params(6), **SEARCH).parent
    write_space(root, study=STUDY, version=2, params=params(4), **SEARCH)
    storage = root / "ray"
    result = invoke(team, "alice", "run", str(folder / "v1.yaml"), "--storage", str(storage), "--no-live")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "2 finished, 0 failed" in result.output
    client = team.client("alice")
    experiment = client.get_experiment_by_name(STUDY).experiment_id
    runs = client.search_runs([experiment], f"tags.`{schema.KIND}` = '{schema.SEARCH_RUN}'")
    (parent,) = runs
    trials = client.search_runs([experiment], f"tags.`{schema.KIND}` = '{schema.TRIAL_RUN}'")
    yield Study(team, folder, storage, experiment, parent.info.run_id, [t.info.run_id for t in trials])


# --------------------------------------------------------------------------- alice: artifacts in the bucket


def test_review_artifacts_and_the_ledger_are_objects_in_the_bucket(study: Study) -> None:
    objects = study.team.objects(f"artifacts/{study.experiment_id}/")
    keys = set(objects)
    assert len(study.trial_run_ids) == 2
    for run_id in study.trial_run_ids:
        for name in REVIEW_FILES:
            key = f"artifacts/{study.experiment_id}/{run_id}/artifacts/review/{name}"
            assert key in keys, (key, sorted(keys))
            assert objects[key], f"{key} is empty"
    parent = f"artifacts/{study.experiment_id}/{study.parent_run_id}/artifacts/"
    for artifact in ("review/leaderboard.md", "review/best_config.yaml", schema.LEDGER_ARTIFACT):
        assert parent + artifact in keys, (artifact, sorted(keys))
    ledger = pq.read_table(io.BytesIO(objects[parent + schema.LEDGER_ARTIFACT]))
    assert sorted(ledger.column("run_id").to_pylist()) == sorted(study.trial_run_ids)
    # the bucket is the only artifact store: the server keeps nothing of them on its disk
    assert not list((study.team.stack.server.root).rglob("model_summary.txt"))


def test_the_best_model_is_registered_from_the_study_with_its_files_in_the_bucket(study: Study) -> None:
    client = study.team.client("alice")
    (version,) = client.search_model_versions(f"name = '{STUDY}'")
    assert version.run_id == study.parent_run_id
    assert version.tags[schema.TRIAL_ID]
    where = client.get_model_version_download_uri(STUDY, version.version)  # mlflow-artifacts:/<path>
    assert where.startswith("mlflow-artifacts:/"), where
    prefix = "artifacts/" + where.removeprefix("mlflow-artifacts:/").strip("/") + "/"
    files = study.team.objects(prefix)
    assert files.get(prefix + "MLmodel"), (prefix, sorted(files))


# --------------------------------------------------------------------------- bob: READ


def test_bob_with_read_is_refused_run_in_one_line_before_anything_runs(study: Study) -> None:
    before = len(study.runs())
    line = refused(invoke(study.team, "bob", "run", str(study.v1), "--storage", str(study.storage), "--no-live"))
    assert line == (
        f"error: user 'bob' holds READ on study '{STUDY}' (experiment '{STUDY}') at {study.team.uri}; "
        f"orchestrator run needs EDIT: ask a user with MANAGE on it to run "
        f"`orchestrator access {STUDY} --user bob --permission EDIT`"
    )
    assert len(study.runs()) == before, "no run was created"


def test_bob_is_refused_writing_a_refined_version_and_may_look_at_one(study: Study) -> None:
    args = ("space", "refine", str(study.v1), "--min-trials", "2", "--top", "1")
    looked = invoke(study.team, "bob", *args, "--dry-run")  # read the trials and fit the model: allowed to READ
    assert "holds READ" not in looked.output, looked.output
    assert "dry run" in looked.output or "gives no reason to change the space" in looked.output, looked.output
    line = refused(invoke(study.team, "bob", *args))
    assert line.startswith(f"error: user 'bob' holds READ on study '{STUDY}' (experiment '{STUDY}') at ")
    assert f"; space refine (writing {study.folder / 'v3.yaml'}) needs EDIT: " in line
    assert sorted(p.name for p in study.folder.iterdir()) == ["v1.yaml", "v2.yaml"], "nothing written"


def test_bob_is_refused_train_and_access_in_one_line(study: Study) -> None:
    before = len(study.runs())
    line = refused(invoke(study.team, "bob", "train", STUDY, "--best", "--storage", str(study.storage), "--no-live"))
    assert f"error: user 'bob' holds READ on study '{STUDY}' (experiment '{STUDY}') at " in line
    assert "; orchestrator train needs EDIT: " in line
    line = refused(invoke(study.team, "bob", "access", STUDY, "--user", "bob", "--permission", "EDIT"))
    assert line.startswith(f"error: user 'bob' holds READ on study '{STUDY}' (experiment '{STUDY}') at ")
    assert "; granting access needs MANAGE: " in line
    assert len(study.runs()) == before
    assert study.team.admin_client().get_user_permission("bob", "experiment", study.experiment_id).permission == "READ"


def test_a_wrong_password_is_one_line_naming_the_login(study: Study) -> None:
    line = refused(invoke(study.team, "bob", "report", STUDY, password="not-bobs-password"))
    assert line == (
        f"error: tracking server {study.team.uri} refused the login of user 'bob' (401 Unauthorized): "
        "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    )
    assert "not-bobs-password" not in line


def test_bob_can_report_diff_and_open_the_ui_links(study: Study) -> None:
    report = invoke(study.team, "bob", "report", STUDY, "--spaces", str(study.folder.parent))
    assert report.exit_code == 0, report.output + repr(report.exception)
    assert "v1" in report.output and "2" in report.output

    diff = invoke(study.team, "bob", "space", "diff", str(study.folder / "v2.yaml"), "--tracking-uri", study.team.uri)
    assert diff.exit_code == 0, diff.output + repr(diff.exception)
    assert "filters" in diff.output and "of 2 earlier trials" in diff.output

    ui = invoke(study.team, "bob", "ui", STUDY, "--tracking-uri", study.team.uri)
    assert ui.exit_code == 0, ui.output + repr(ui.exception)
    links = [word for word in ui.output.split() if word.startswith("http://")]
    experiment_link = experiment_url(study.team.uri, study.experiment_id)
    runs_prefix = f"{study.team.uri}/#/experiments/{study.experiment_id}/runs/"
    assert experiment_link in links and any(link.startswith(runs_prefix) for link in links), links
    login = b64encode(f"bob:{study.team.passwords['bob']}".encode()).decode()
    for link in links:
        request = urllib.request.Request(link, headers={"Authorization": f"Basic {login}"})
        with urllib.request.urlopen(request, timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    # what the pages show, through the REST calls the UI makes, is readable by bob
    bob = study.team.client("bob")
    run_id = next(link for link in links if "/runs/" in link).removeprefix(runs_prefix).split("?")[0]
    assert bob.get_run(run_id).info.experiment_id == study.experiment_id
    assert bob.get_experiment(study.experiment_id).name == STUDY


# --------------------------------------------------------------------------- access: alice grants bob EDIT


def test_access_grants_bob_edit_read_back_from_the_server_and_his_next_search_works(study: Study) -> None:
    team = study.team
    granted = invoke(team, "alice", "access", STUDY, "--user", "bob", "--permission", "EDIT")
    assert granted.exit_code == 0, granted.output + repr(granted.exception)
    assert granted.output.splitlines()[0] == (
        f"granted bob EDIT on study {STUDY}: experiment '{STUDY}', registered model '{STUDY}'"
    )
    admin = team.admin_client()  # MLflow's own client reads back what the server holds
    held = {
        ("experiment", user): admin.get_user_permission(user, "experiment", study.experiment_id).permission
        for user in ("alice", "bob")
    } | {
        ("registered_model", user): admin.get_user_permission(user, "registered_model", STUDY).permission
        for user in ("alice", "bob")
    }
    assert held == {
        ("experiment", "alice"): "MANAGE",
        ("experiment", "bob"): "EDIT",
        ("registered_model", "alice"): "MANAGE",
        ("registered_model", "bob"): "EDIT",
    }
    mine = invoke(team, "bob", "access", STUDY)  # bob lists his own
    assert mine.exit_code == 0, mine.output
    assert f"  bob: experiment '{STUDY}' EDIT, registered model '{STUDY}' EDIT" in mine.output.splitlines()
    as_admin = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": team.stack.secrets.admin_password}
    listed = CliRunner(env={**team.env("bob"), **as_admin}).invoke(cli, ["access", STUDY])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert f"  alice: experiment '{STUDY}' MANAGE, registered model '{STUDY}' MANAGE" in lines
    assert f"  bob: experiment '{STUDY}' EDIT, registered model '{STUDY}' EDIT" in lines
    assert "  admin: admin (may do anything)" in lines

    args = ("run", str(study.v1), "--trials", "1", "--storage", str(study.storage), "--no-live")
    search = invoke(team, "bob", *args, "--no-review-artifacts")
    assert search.exit_code == 0, search.output + repr(search.exception)
    assert "1 finished, 0 failed" in search.output
    versions = team.client("bob").search_model_versions(f"name = '{STUDY}'")
    assert len(versions) == 2, "bob's search registered its best model too (EDIT on the registered model)"
