"""Storage by URI scheme: the meta file, the tracking spill and the latest unfinished search, local or by URI."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from orchestrator.engine.storage import SCHEMES, SPILL, open_experiment, open_storage, scheme_of
from orchestrator.errors import OrchestratorError


def test_scheme_of() -> None:
    assert scheme_of("/data/ray") == "" and scheme_of("relative/ray") == "" and scheme_of("C:/x") == ""
    assert scheme_of("file:///tmp/ray") == "file" and scheme_of("S3://bucket/x") == "s3"


def test_plain_path_and_file_uri_open_the_same_local_folder(tmp_path: Path) -> None:
    plain, uri = open_storage(str(tmp_path / "ray")), open_storage((tmp_path / "ray").as_uri())
    assert isinstance(plain.filesystem, pafs.LocalFileSystem) and isinstance(uri.filesystem, pafs.LocalFileSystem)
    assert plain.path == uri.path == str(tmp_path / "ray")
    assert plain.uri == str(tmp_path / "ray") and uri.uri == (tmp_path / "ray").as_uri()


def test_unknown_scheme_lists_the_valid_ones() -> None:
    with pytest.raises(OrchestratorError) as e:
        open_storage("ftp://host/ray")
    message = str(e.value)
    assert "unknown scheme 'ftp'" in message
    assert all(f"{s}://" in message for s in SCHEMES if s)


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_meta_round_trip_and_experiment_uri(tmp_path: Path, as_uri: bool) -> None:
    root = (tmp_path / "ray").as_uri() if as_uri else str(tmp_path / "ray")
    experiment = open_storage(root).experiment("demo-v1-20240101-000000")
    experiment.write_meta({"study": "demo", "finished": False})
    assert (tmp_path / "ray" / "demo-v1-20240101-000000" / "orchestrator.json").exists()
    again = open_experiment(experiment.uri)
    assert again == experiment and again.read_meta() == {"study": "demo", "finished": False}


def test_not_an_experiment_is_named(tmp_path: Path) -> None:
    with pytest.raises(OrchestratorError, match="is not a search started by orchestrator"):
        open_experiment(str(tmp_path / "nothing")).read_meta()


def test_latest_unfinished_is_the_newest_not_finished(tmp_path: Path) -> None:
    storage = open_storage((tmp_path / "ray").as_uri())
    assert storage.latest_unfinished("demo", 1) is None  # no folder yet
    for name, finished in [
        ("demo-v1-20240101-000000", False),
        ("demo-v1-20240102-000000", False),
        ("demo-v1-20240103-000000", True),
        ("demo-v2-20240104-000000", False),
    ]:
        storage.experiment(name).write_meta({"finished": finished})
    (tmp_path / "ray" / "demo-v1-20240105-000000").mkdir()  # Ray's folder without orchestrator.json: skipped
    latest = storage.latest_unfinished("demo", 1)
    assert latest is not None and latest.name == "demo-v1-20240102-000000"
    assert latest.uri == f"{(tmp_path / 'ray').as_uri()}/demo-v1-20240102-000000"


def test_spill_lives_in_the_experiment_folder_and_appends(tmp_path: Path) -> None:
    experiment = open_storage((tmp_path / "ray").as_uri()).experiment("demo-v1-x")
    spill = experiment.spill
    assert not spill.exists() and spill.read() == []
    spill.append([{"kind": "log", "key": "a"}])
    spill.append([{"kind": "close", "key": "a", "status": "FINISHED"}])  # a second driver adds to it
    assert (tmp_path / "ray" / "demo-v1-x" / SPILL).exists()
    assert [r["kind"] for r in spill.read()] == ["log", "close"]
    assert spill.where == f"{experiment.uri}/{SPILL}"
    spill.remove()
    assert not spill.exists()
