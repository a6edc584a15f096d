"""Where searches keep their state, chosen by URI scheme in this one place.

``--storage`` is a folder or a URI of a filesystem pyarrow supports (``SCHEMES``). A search's
experiment folder ``<storage>/<study>-v<N>-<time>-<suffix>`` holds Ray Tune's state, ``orchestrator.json``
(what ``resume`` needs) and, when tracking updates could not be sent, ``tracking-spill.jsonl``.
The spill is written through the same filesystem as everything else, wherever the callback
runs (the driver, or the head node under Ray Client), so ``resume`` finds and replays it for
a local folder and a bucket alike.

The random suffix keeps two searches of one version started in the same second apart; on a
local folder the experiment folder is also created exclusively, so no two drivers ever share one.

``resume`` reads only JSON from here (``orchestrator.json``, the spill, each checkpoint's
``CHECKPOINT_EPOCH``) and hands a trial the folder of its last checkpoint, which the trainable
loads with ``torch.load(weights_only=True)``; Ray Tune's pickles (``tuner.pkl``, the trials'
state in ``experiment_state-*.json``, the searcher state) are never read back.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from orchestrator.errors import OrchestratorError, first_line
from orchestrator.settings import default_storage
from orchestrator.tracking.async_logger import SpillFile

META = "orchestrator.json"
SPILL = "tracking-spill.jsonl"
FINISHED = "finished"  # the key of orchestrator.json that marks a search done
WRITE_PROBE = ".orchestrator-write-check"  # a file written and removed to check that a storage can be written
CHECKPOINT_NAME = re.compile(r"checkpoint_\d+")  # how Ray Tune names a trial's checkpoint folders
CHECKPOINT_EPOCH = "orchestrator-epoch.json"  # in every checkpoint folder: {"epoch": the epoch it was saved at}
SUFFIX_BYTES = 3  # an experiment folder's random suffix: 6 hex digits
NAME_ATTEMPTS = 8  # suffixes tried before giving up (a clash needs two drivers in one second and one suffix)

Resolver = Callable[[str], tuple[pafs.FileSystem, str]]


def _local(path: str) -> tuple[pafs.FileSystem, str]:
    return pafs.LocalFileSystem(), str(Path(path).resolve())


def _pyarrow(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
    except (OSError, ValueError) as e:  # missing libhdfs, bad bucket URI, no credentials ...
        raise OrchestratorError(f"storage {uri}: {first_line(e)}") from None
    return filesystem, path.rstrip("/")


# Scheme -> how to open it. "" is a plain path. Each one is a filesystem pyarrow opens from a URI.
SCHEMES: dict[str, Resolver] = {
    "": _local,
    "file": _pyarrow,
    "s3": _pyarrow,
    "gs": _pyarrow,
    "gcs": _pyarrow,
    "hdfs": _pyarrow,
    "viewfs": _pyarrow,
    "abfs": _pyarrow,
    "abfss": _pyarrow,
}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme_of(uri: str) -> str:
    """``s3`` for ``s3://bucket/x``; ``""`` for a plain path."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else ""


def _resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    scheme = scheme_of(uri)
    resolver = SCHEMES.get(scheme)
    if resolver is None:
        valid = ", ".join(f"{s}://" for s in SCHEMES if s)
        raise OrchestratorError(f"storage {uri}: unknown scheme {scheme!r}; use a folder or one of {valid}")
    return resolver(uri)


@dataclass(frozen=True)
class Storage:
    """The root that holds experiment folders: a filesystem and a path inside it.

    ``uri`` is how the user named it (a plain path is made absolute): experiment URIs printed for
    ``orchestrator resume`` are built from it.
    """

    uri: str
    filesystem: pafs.FileSystem
    path: str

    def experiment(self, name: str) -> Experiment:
        return Experiment(self, name)

    def check_writable(self) -> None:
        """Raise ``OrchestratorError`` naming the storage unless a file can be written and removed in it. A local
        storage folder is created only when its parent exists or it is the default (in the state folder):
        orchestrator creates no folder the user did not name."""
        probe = f"{self.path.rstrip('/')}/{WRITE_PROBE}-{secrets.token_hex(4)}"  # drivers checking at once never meet
        if isinstance(self.filesystem, pafs.LocalFileSystem):
            folder = Path(self.path)
            blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
            if blocker is not None:
                raise OrchestratorError(f"storage {self.uri} cannot be written: {blocker} is a file, not a folder")
            if not folder.exists() and not folder.parent.is_dir() and folder != Path(default_storage()):
                raise OrchestratorError(
                    f"storage {self.uri}: the folder {folder.parent} does not exist; create it first, or give "
                    "--storage a folder whose parent exists"
                )
        try:
            self.filesystem.create_dir(self.path, recursive=True)
            with self.filesystem.open_output_stream(probe) as f:
                f.write(b"ok")
            self.filesystem.delete_file(probe)
        except OSError as e:
            raise OrchestratorError(f"storage {self.uri} cannot be written: {_reason(e)}") from None

    def new_experiment(self, prefix: str) -> Experiment:
        """A new experiment folder ``<prefix>-<random suffix>``, created here for this search alone."""
        for _ in range(NAME_ATTEMPTS):
            experiment = self.experiment(f"{prefix}-{secrets.token_hex(SUFFIX_BYTES)}")
            if experiment.create():
                return experiment
        raise OrchestratorError(
            f"storage {self.uri}: no free experiment folder name for {prefix} after {NAME_ATTEMPTS} tries"
        )

    def latest_unfinished(self, study: str, version: int) -> Experiment | None:
        """The newest search of ``study`` v``version`` here whose ``orchestrator.json`` is not finished."""
        try:
            infos = self.filesystem.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        except OSError:
            return None
        prefix = f"{study}-v{version}-"
        names = sorted((i.base_name for i in infos if i.base_name.startswith(prefix)), reverse=True)
        for name in names:
            experiment = self.experiment(name)
            try:
                if not experiment.read_meta().get(FINISHED):
                    return experiment
            except OrchestratorError:
                continue
        return None


@dataclass(frozen=True)
class Experiment:
    """One search's folder: Ray Tune's state, ``orchestrator.json`` and the tracking spill."""

    storage: Storage
    name: str

    @property
    def uri(self) -> str:
        """What the user passes to ``orchestrator resume``."""
        return f"{self.storage.uri.rstrip('/')}/{self.name}"

    @property
    def path(self) -> str:
        """The folder inside ``storage.filesystem`` (what Ray Tune is given)."""
        return f"{self.storage.path.rstrip('/')}/{self.name}"

    @property
    def spill(self) -> SpillFile:
        return SpillFile(self.storage.filesystem, f"{self.path}/{SPILL}", where=f"{self.uri}/{SPILL}")

    def create(self) -> bool:
        """Create the folder; False when it exists already (exclusive on a local folder, checked elsewhere)."""
        fs = self.storage.filesystem
        try:
            if isinstance(fs, pafs.LocalFileSystem):
                os.makedirs(self.storage.path, exist_ok=True)
                os.mkdir(self.path)
                return True
            if fs.get_file_info(self.path).type != pafs.FileType.NotFound:
                return False
            fs.create_dir(self.path, recursive=True)
            return True
        except FileExistsError:
            return False
        except OSError as e:
            raise OrchestratorError(f"storage {self.storage.uri} cannot be written: {_reason(e)}") from None

    def write_meta(self, meta: dict[str, Any]) -> None:
        fs = self.storage.filesystem
        fs.create_dir(self.path, recursive=True)
        with fs.open_output_stream(f"{self.path}/{META}") as f:
            f.write(json.dumps(meta, indent=2).encode())

    def trial_folder(self, trial_id: str) -> str | None:
        """The name of Ray Tune trial ``trial_id``'s folder here: the one whose name has the id as a whole word
        (Ray Tune's default ``<trainable>_<id>_<index>_<values>_<date>`` and any name built from the id alike)."""
        fs = self.storage.filesystem
        try:
            infos = fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        except OSError:
            return None
        names = [i.base_name for i in infos if i.type == pafs.FileType.Directory]
        matches = sorted(name for name in names if trial_id in re.split(r"[^0-9A-Za-z]+", name))
        return matches[-1] if matches else None

    def last_checkpoint(self, trial_id: str, upto_epoch: int) -> str | None:
        """The URI of trial ``trial_id``'s newest checkpoint folder at or before epoch ``upto_epoch``; None if none.

        ``upto_epoch`` is the last epoch the tracking store has: its result reached the driver, so that
        checkpoint was stored whole, and a trial continued from it logs every later epoch once.
        """
        folder = self.trial_folder(trial_id)
        if folder is None:
            return None
        fs, trial_path = self.storage.filesystem, f"{self.path}/{folder}"
        try:
            infos = fs.get_file_info(pafs.FileSelector(trial_path, allow_not_found=True))
        except OSError:
            return None
        names = sorted((i.base_name for i in infos if CHECKPOINT_NAME.fullmatch(i.base_name)), reverse=True)
        for name in names:
            epoch = _saved_epoch(fs, f"{trial_path}/{name}/{CHECKPOINT_EPOCH}")
            if epoch is not None and epoch <= upto_epoch:
                return f"{self.uri}/{folder}/{name}"
        return None

    def read_meta(self) -> dict[str, Any]:
        try:
            with self.storage.filesystem.open_input_stream(f"{self.path}/{META}") as f:
                return json.loads(f.read().decode())
        except (FileNotFoundError, OSError, json.JSONDecodeError):
            raise OrchestratorError(
                f"{self.uri} is not a search started by orchestrator (no readable {META}); "
                "give the experiment path printed by `orchestrator run`"
            ) from None


def _saved_epoch(fs: pafs.FileSystem, path: str) -> int | None:
    """The epoch in a checkpoint's ``CHECKPOINT_EPOCH`` file; None when it is missing or not an epoch."""
    try:
        with fs.open_input_stream(path) as f:
            epoch = json.loads(f.read().decode()).get("epoch")
    except (OSError, ValueError, AttributeError):  # missing, cut short, not JSON, not an object
        return None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def _reason(error: OSError) -> str:
    """The first line of an ``OSError`` (with its path when it has one)."""
    where = f": {error.filename}" if error.filename else ""
    return (error.strerror or first_line(error)) + where


def open_storage(uri: str) -> Storage:
    """The storage at ``uri`` (a folder or a URI with one of ``SCHEMES``)."""
    filesystem, path = _resolve(uri)
    shown = path if scheme_of(uri) == "" else uri.rstrip("/")
    return Storage(shown, filesystem, path)


def copy_to_local(uri: str, local_dir: str) -> str:
    """Copy the folder at ``uri`` (a path or a URI of ``SCHEMES``) into ``local_dir``; returns ``local_dir``."""
    filesystem, path = _resolve(uri)
    Path(local_dir).mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, local_dir, source_filesystem=filesystem, destination_filesystem=pafs.LocalFileSystem())
    return local_dir


def open_experiment(uri: str) -> Experiment:
    """The experiment folder at ``uri``, as printed by ``orchestrator run``."""
    if scheme_of(uri) == "":
        path = Path(uri).resolve()
        root, name = str(path.parent), path.name
    else:
        root, _, name = uri.rstrip("/").rpartition("/")
    if not name or scheme_of(root) != scheme_of(uri):
        raise OrchestratorError(f"{uri} is not an experiment path; give the path printed by `orchestrator run`")
    return open_storage(root).experiment(name)
