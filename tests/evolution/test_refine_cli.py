"""space refine from a tracking store: ASHA histories read back, a new file beside the old, never an overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.spaces import load_study, load_version
from orchestrator.tracking.mlflow_store import MlflowStore
from tests.evolution.conftest import record_search, write_file
from tests.spaces.test_refine import asha_trials

V1 = """\
study: {study}
version: 1
trainable: analytic
metric: {{name: loss, mode: min}}
schedule: {{scheduler: asha, max_epochs: 9, grace_period: 1}}
fixed: {{function: quadratic}}
params:
  x: {{uniform: [0.0, 1.0]}}
"""


def refine_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(["space", "refine", *args])
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def test_refine_ranks_asha_trials_on_their_history_and_writes_the_next_version(
    tmp_path: Path, store: MlflowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "asha"
    v1_file = write_file(folder, V1.format(study="asha"), "v1.yaml")
    record_search(store, load_version(v1_file), [(t.config, dict(t.history)) for t in asha_trials()])

    code, out, _ = refine_cli(capsys, str(folder), "--tracking-uri", store.uri, "--dry-run")
    assert code == 0 and "+parent: 1" in out and "ranked on epoch 9" in out
    assert sorted(p.name for p in folder.iterdir()) == ["v1.yaml"]

    code, out, err = refine_cli(capsys, str(v1_file), "--tracking-uri", store.uri)
    assert code == 0, err
    v2 = load_version(folder / "v2.yaml")
    assert v2.parent == 1 and v2.params.params["x"].contains(0.2) and v2.params.params["x"].high < 0.5
    assert "6 ranked on epoch 9" in v2.notes and v2.notes in out

    # v2 exists: refining v1 again writes the next free number, with v1 as parent; nothing is overwritten.
    text = (folder / "v2.yaml").read_text()
    code, out, err = refine_cli(capsys, str(v1_file), "--tracking-uri", store.uri)
    assert code == 0 and (folder / "v2.yaml").read_text() == text
    assert load_study(folder).versions[3].parent == 1


def test_too_few_finished_trials_write_no_file(
    tmp_path: Path, store: MlflowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "few"
    v1_file = write_file(folder, V1.format(study="few"), "v1.yaml")
    record_search(store, load_version(v1_file), [({"x": 0.1 * i}, {1: float(i)}) for i in range(3)])
    code, _, err = refine_cli(capsys, str(folder), "--tracking-uri", store.uri)
    assert code == 1 and "3 finished trial(s) with a finite loss fit this version" in err and "--min-trials" in err
    assert sorted(p.name for p in folder.iterdir()) == ["v1.yaml"]
    code, _, err = refine_cli(capsys, str(folder), "--tracking-uri", store.uri, "--min-trials", "3")
    assert code == 0, err
    assert (folder / "v2.yaml").exists()
