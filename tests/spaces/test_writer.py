"""Writing versions back as space files: ``parse_version(dump(v)) == v``, same hash, valid files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given

from orchestrator.spaces import QUniform, SearchSpace, StudyVersion, dump, load_version, parse_version, write
from orchestrator.spaces.check import validate_paths
from orchestrator.spaces.writer import to_document
from tests.spacefiles import MINIMAL, SPACES
from tests.spaces.strategies import FUZZ, to_yaml, version_docs

SHIPPED = sorted(SPACES.glob("*/v*.yaml"))


def assert_written_exactly(version: StudyVersion) -> StudyVersion:
    text = dump(version)
    again = parse_version(text, "written.yaml")
    assert again == version and again.content_hash == version.content_hash
    assert list(again.params.params) == list(version.params.params), "parameters keep their order"
    # ``==`` lets 1 == 1.0 == True; the document's repr does not.
    assert repr(to_document(again)) == repr(to_document(version))
    assert again.notes == version.notes
    return again


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_files_survive_writing(path: Path) -> None:
    assert_written_exactly(load_version(path))


def test_written_shipped_studies_pass_space_validate(tmp_path: Path) -> None:
    from orchestrator.cli import cli

    for path in SHIPPED:
        write(load_version(path), tmp_path / path.parent.name / path.name)
    result = CliRunner().invoke(cli, ["space", "validate", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"{len(SHIPPED)} file(s) valid" in result.output


def test_document_order_and_syntax() -> None:
    v = load_version(SPACES / "unet_dstl/v2.yaml")
    doc = to_document(v)
    assert list(doc) == [
        "study",
        "version",
        "parent",
        "trainable",
        "metric",
        "schedule",
        "resources",
        "search",
        "fixed",
        "params",
        "notes",
    ]
    assert doc["schedule"] == {"max_epochs": 40, "grace_period": 4}, "settings equal to the defaults are left out"
    assert doc["params"]["optimizer"] == {
        "choice": [
            {"name": "adam"},
            {"name": "sgd", "momentum": {"uniform": [0.8, 0.99]}, "nesterov": {"choice": [True, False]}},
        ],
        "default": {"name": "adam"},
    }
    text = dump(v)
    assert "  weight_decay: {loguniform: [1.0e-06, 0.001], default: 1.0e-06}\n" in text
    assert "      - {name: adam}\n" in text and "integer" not in text


def test_numbers_and_text_read_back_as_what_they_were() -> None:
    v = parse_version(
        MINIMAL.replace(
            "params:\n",
            "params:\n  w: {qloguniform: [16, 256, 16]}\n  q: {quniform: [0.0, 1.0, 0.25]}\n"
            "  f: {fixed: ['1e-3', 'yes', 'null', '0o17', '', 1.0e-5, 3, true]}\n"
            "  tiny: {loguniform: [1.0e-12, 1.0e+20]}\n",
        )
        + "notes: |\n  first line\n  second: line\n"
    )
    text = dump(v)
    assert "w: {qloguniform: [16, 256, 16]}" in text, "whole numbers stay ints: the loader's integer q-range"
    assert "q: {quniform: [0.0, 1.0, 0.25]}" in text
    assert "f: {fixed: ['1e-3', 'yes', 'null', '0o17', '', 1.0e-05, 3, true]}" in text
    assert "tiny: {loguniform: [1.0e-12, 1.0e+20]}" in text
    assert "notes: |\n  first line\n  second: line\n" in text
    again = assert_written_exactly(v)
    assert again.params.params["w"].integer and not again.params.params["q"].integer


@pytest.mark.parametrize(
    "notes", ["one line", "two\nlines\n", "trailing \nspace", "cr\rx", "nel\x85x", "ls\u2028x", "\n"]
)
def test_notes_read_back_exactly(notes: str) -> None:
    v = dataclasses.replace(parse_version(MINIMAL), notes=notes)
    assert parse_version(dump(v)).notes == notes


def test_write_refuses_to_overwrite(tmp_path: Path) -> None:
    v = parse_version(MINIMAL)
    path = write(v, tmp_path / "demo" / "v1.yaml")
    assert load_version(path) == v
    with pytest.raises(FileExistsError, match="never overwritten") as info:
        write(v, path)
    assert info.value.filename == str(path)
    assert path.read_text() == dump(v)


def test_write_refuses_a_version_the_file_syntax_cannot_express(tmp_path: Path) -> None:
    v = parse_version(MINIMAL)
    odd = dataclasses.replace(v, params=SearchSpace({"x": QUniform(0.5, 2.5, q=0.5, integer=True)}))
    with pytest.raises(ValueError, match="whole-number"):
        write(odd, tmp_path / "v1.yaml")
    assert not (tmp_path / "v1.yaml").exists()


@FUZZ
@given(version_docs())
def test_random_versions_survive_writing_and_validate(tmp_path_factory, doc: dict) -> None:
    version = parse_version(to_yaml(doc, sort_keys=False))
    assert_written_exactly(version)
    folder = tmp_path_factory.mktemp("written") / version.study
    write(version, folder / f"v{version.version}.yaml")
    for n in range(1, (version.parent or 0) + 1):  # a lineage up to its parent, so that the parent resolves
        write(dataclasses.replace(version, version=n, parent=n - 1 or None), folder / f"v{n}.yaml")
    report = validate_paths([folder])
    assert report.ok, [str(p) for p in report.problems]
    assert version in report.valid
