"""Bad tracking input is one clear line, raised by the API and shown by the command line: an unknown
tracking-URI scheme, a database store without its driver, a missing or foreign ``--ledger``, and
``trials export --out`` a folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import cli
from orchestrator.errors import OrchestratorError, describe
from orchestrator.paths import check_output_file
from orchestrator.tracking.mlflow_store import TrackingError, check_tracking_uri
from tests.spacefiles import small_search, write_space


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def one_line_error(result: Result, kind: type[Exception] = OrchestratorError) -> str:
    """The line the ``orchestrator`` command prints for the error the command raised."""
    assert result.exit_code == 1 and isinstance(result.exception, kind), (result.output, result.exception)
    line = describe(result.exception)
    assert "\n" not in line and "Traceback" not in line and "run with --debug" not in line, line
    return line


@pytest.mark.parametrize(("uri", "scheme"), [("mongodb://db:27017/mlflow", "mongodb"), ("htp://127.0.0.1:5000", "htp")])
def test_unknown_tracking_uri_scheme_is_named_with_the_valid_ones(tmp_path: Path, uri: str, scheme: str) -> None:
    result = invoke("trials", "export", "demo", "--out", str(tmp_path / "t.parquet"), "--tracking-uri", uri)
    line = one_line_error(result, TrackingError)
    assert line == (
        f"error: tracking URI {uri}: unknown scheme {scheme!r}; use http(s)://host:port (an MLflow "
        "server), sqlite:///path.db, postgresql://, mysql://, mssql:// (a database) or a folder"
    )


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is not None, reason="psycopg2 is installed here")
def test_postgresql_store_without_its_driver_names_the_package(tmp_path: Path) -> None:
    # the server extra brings psycopg (3), the driver of SQLAlchemy 2.1's postgresql://; psycopg2 is not installed
    uri = "postgresql+psycopg2://alice:s3cret@db.example:5432/mlflow"
    result = invoke("trials", "export", "demo", "--out", str(tmp_path / "t.parquet"), "--tracking-uri", uri)
    line = one_line_error(result, TrackingError)
    assert line == (
        "error: tracking URI postgresql+psycopg2://db.example:5432/mlflow: a postgresql store needs the Python "
        "package 'psycopg2-binary' (module psycopg2), which is not installed: pip install psycopg2-binary"
    )
    assert "s3cret" not in result.output + line


def test_known_schemes_and_folders_pass_the_check() -> None:
    for uri in (
        "http://127.0.0.1:5000",
        "https://mlflow.example",
        "sqlite:///x.db",
        "file:///tmp/mlruns",
        "/tmp/mlruns",
        "mlruns",
        "databricks",
        "postgresql+asyncpg://h/db",
    ):
        check_tracking_uri(uri)


def test_export_to_a_folder_is_refused_before_reading_the_store(tmp_path: Path) -> None:
    store = tmp_path / "mlflow.db"
    result = invoke("trials", "export", "demo", "--out", str(tmp_path), "--tracking-uri", f"sqlite:///{store}")
    line = one_line_error(result)
    assert line == f"error: {tmp_path} is a folder; name the file to write, such as {tmp_path / 'trials.parquet'}"
    assert not store.exists(), "refused before the store was opened"


def test_export_under_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OrchestratorError, match=rf"cannot write {blocker / 't.parquet'}: {blocker} is a file"):
        check_output_file(blocker / "t.parquet")


BAD_LEDGERS = ["missing", "folder", "not-parquet", "other-parquet"]


def bad_ledger(folder: Path, kind: str) -> Path:
    """A ``--ledger`` path under ``folder`` that is not a trials export, of the ``kind`` named (``BAD_LEDGERS``)."""
    path = folder / "trials.parquet"
    if kind == "folder":
        path.mkdir()
    elif kind == "not-parquet":
        path.write_text("run_id,study\n")
    elif kind == "other-parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"run_id": ["r1"]}), path)
    return path


@pytest.mark.parametrize("kind", BAD_LEDGERS)
def test_reading_a_bad_ledger_names_it_as_the_check_does(tmp_path: Path, kind: str) -> None:
    """``ledger.read`` opens the file once, with ``check``'s refusals: the same words for each kind of bad file."""
    from orchestrator.tracking import ledger

    path = bad_ledger(tmp_path, kind)
    with pytest.raises(OrchestratorError) as checked:
        ledger.check(path)
    with pytest.raises(OrchestratorError) as read:
        ledger.read(path)
    # pyarrow words its own reason differently for a schema and a table: the message up to it is the same
    assert str(read.value).split(": ")[0] == str(checked.value).split(": ")[0]
    assert str(read.value).startswith(f"ledger {path} ")
    expected = {"missing": "does not exist", "folder": "is a folder", "not-parquet": "is not a Parquet trials export"}
    assert expected.get(kind, "no column study, version") in str(read.value)


@pytest.mark.parametrize("kind", BAD_LEDGERS)
def test_bad_ledger_is_named_before_the_search_starts(tmp_path: Path, store_uri: str, kind: str) -> None:
    space = write_space(tmp_path / "search_spaces", study="ledgered", **small_search())
    path = bad_ledger(tmp_path, kind)
    result = invoke(
        "run",
        str(space),
        "--tracking-uri",
        store_uri,
        "--storage",
        str(tmp_path / "ray"),
        "--ledger",
        str(path),
        "--no-live",
    )
    line = one_line_error(result)
    expected = {
        "missing": f"error: ledger {path} does not exist; write one with `orchestrator trials export STUDY --out "
        f"{path}` or leave out --ledger",
        "folder": f"error: ledger {path} is a folder; write one with `orchestrator trials export STUDY --out "
        f"{path}` or leave out --ledger",
        "not-parquet": f"error: ledger {path} is not a Parquet trials export: ",
        "other-parquet": f"error: ledger {path} is not a trials export: no column study, version",
    }[kind]
    assert line.startswith(expected), line
    assert not (tmp_path / "ray").exists() or not any((tmp_path / "ray").iterdir()), "no search was started"
