"""The team workflow for real: search v1, refine, lint, diff with the carry preview, run v2, report.

A tiny analytic search on a SQLite store in tmp_path; ``space diff --tracking-uri`` must print the
counts the next ``orchestrator run`` then carries.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.tracking.schema import CARRY, KIND, SEARCH_RUN, VERSION
from tests.spacefiles import small_search, write_space

V1 = "  x: {uniform: [-1.0, 1.0]}\n  y: {uniform: [-1.0, 1.0], default: 0.0}\n"
TRIALS = 12  # enough for refine's model to justify a change (with 6 it rightly proposes none)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_refine_diff_run_report(
    tmp_path: Path, store_uri: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    uri = store_uri
    store = ("--tracking-uri", uri)
    run = ("--storage", str(tmp_path / "ray"), "--no-live", *store)
    v1 = write_space(tmp_path / "search_spaces", study="evo", params=V1, **small_search(TRIALS, 2, startup=3))
    folder = v1.parent
    assert cli(capsys, "run", str(v1), *run)[0] == 0

    code, out, err = cli(capsys, "space", "refine", str(folder), *store, "--top", "3", "--dry-run")
    assert code == 0 and "+parent: 1" in out and "+version: 2" in out and not (folder / "v2.yaml").exists()
    code, out, err = cli(capsys, "space", "refine", str(folder), *store, "--top", "3")
    assert code == 0, err
    v2 = folder / "v2.yaml"
    assert f"wrote {v2}" in out and "Refined from v1" in v2.read_text()
    assert cli(capsys, "space", "validate", str(folder))[0] == 0
    assert cli(capsys, "space", "lint", str(folder), *store)[0] == 0

    code, out, _ = cli(capsys, "space", "diff", str(v1), str(v2), *store, "--format", "json")
    preview = json.loads(out)["carry"]
    assert preview["total"] == TRIALS and preview["carried"] >= 1  # the best trial at least fits v2
    code, markdown, _ = cli(capsys, "space", "diff", str(v2), *store, "--format", "markdown")
    assert f"| usable in v2 | {preview['carried']} of {TRIALS} |" in markdown

    code, out, _ = cli(capsys, "run", str(v2), *run, "--trials", "2")
    assert code == 0 and f"carried {preview['carried']} of {TRIALS} earlier trials" in out
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("evo")
    search = client.search_runs([exp.experiment_id], f"tags.`{KIND}` = '{SEARCH_RUN}' and tags.`{VERSION}` = '2'")
    logged = json.loads(search[0].data.tags[CARRY])
    assert {k: logged[k] for k in ("carried", "dropped", "dropped_by_reason", "defaulted")} == {
        k: preview[k] for k in ("carried", "dropped", "dropped_by_reason", "defaulted")
    }

    code, out, _ = cli(capsys, "report", str(folder), *store, "--format", "json")
    board = json.loads(out)
    assert [(v["version"], v["trials"]) for v in board["versions"]] == [(1, TRIALS), (2, 2)]
    assert board["versions"][1]["carried"] == preview["carried"]
    assert any(change.startswith(("narrowed", "widened")) for change in board["versions"][1]["changes"])
