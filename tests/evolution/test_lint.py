"""space lint: structural checks without a store; with one, an edited version with recorded trials fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.evolution.lint import lint
from orchestrator.spaces import load_version
from orchestrator.tracking.mlflow_store import MlflowStore
from tests.evolution.records import record_search
from tests.probes import HEAVY
from tests.spacefiles import ROOT, space_doc, write_space


def space(study: str, version: int, low: float = -1.0) -> str:
    return space_doc(study, version, params=f"  x: {{uniform: [{low}, 1.0]}}\n")


def lint_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        main(["space", "lint", *args])
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out + err


def test_structural_checks_run_without_a_tracking_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_space(tmp_path, space("clean", 1), study="clean").parent
    write_space(tmp_path, space("clean", 2, low=0.0), study="clean", version=2)
    code, out = lint_cli(capsys, str(folder))
    assert code == 0 and "2 file(s) clean" in out


BROKEN_LINEAGES = {
    "gap": (
        {"v1.yaml": space("gap", 1), "v3.yaml": space("gap", 3).replace("parent: 2", "parent: 1")},
        "v2.yaml is missing",
    ),
    "twice": ({"v1.yaml": space("twice", 1), "v1.yml": space("twice", 1, low=0.0)}, "version 1 is also defined in"),
    "orphan": ({"v2.yaml": space("orphan", 2)}, "parent v1 not found"),
}


@pytest.mark.parametrize("study", BROKEN_LINEAGES)
def test_a_broken_lineage_fails(study: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files, expected = BROKEN_LINEAGES[study]
    for name, text in files.items():
        write_space(tmp_path, text, study=study, name=name)
    code, out = lint_cli(capsys, str(tmp_path / study))
    assert code == 1 and expected in out


def test_an_edited_version_with_recorded_trials_is_rejected(
    tmp_path: Path, store: MlflowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    v1_file = write_space(tmp_path, space("edited", 1), study="edited")
    folder = v1_file.parent
    original = load_version(v1_file)
    record_search(store, original, [({"x": 0.1}, {1: 0.5}), ({"x": 0.2}, {1: 0.4})])
    assert lint([folder], store).ok

    # The right way: a new version. Lint accepts it (it has no trials yet).
    write_space(tmp_path, space("edited", 2, low=0.0), study="edited", version=2)
    code, out = lint_cli(capsys, str(folder), "--tracking-uri", store.uri)
    assert code == 0 and "1 version(s) with recorded trials unchanged" in out

    # The wrong way: edit v1 in place.
    write_space(tmp_path, space("edited", 1, low=-2.0), study="edited")
    edited = load_version(v1_file)
    code, out = lint_cli(capsys, str(folder), "--tracking-uri", store.uri)
    assert code == 1
    assert f"v1 was edited after its trials were recorded: the file's hash is {edited.short_hash}" in out
    assert f"ran with {original.short_hash} (2 trials)" in out and "write the change as a new version" in out
    # Without the store only the structure is checked, and it is fine.
    assert lint_cli(capsys, str(folder))[0] == 0


def test_a_version_with_trials_whose_file_is_gone(tmp_path: Path, store: MlflowStore) -> None:
    folder = write_space(tmp_path, space("gone", 1), study="gone").parent
    v2 = load_version(write_space(tmp_path, space("gone", 2, low=0.0), study="gone", version=2))
    record_search(store, v2, [({"x": 0.3}, {1: 0.2})])
    (folder / "v2.yaml").unlink()
    report = lint([folder], store)
    assert [str(p) for p in report.problems] == [
        f"{folder}: version: v2 has 1 recorded trial(s) but no file v2.yaml; restore it from version control"
    ]


def test_refine_rules_and_structural_lint_import_no_heavy_frameworks() -> None:
    """``space validate`` runs the same structural checks; tests/test_cli.py runs it without heavy imports."""
    modules = "orchestrator.spaces.refine, orchestrator.evolution.lint"
    code = f"import sys, {modules}; print(sorted(set(sys.modules) & {set(HEAVY)!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
