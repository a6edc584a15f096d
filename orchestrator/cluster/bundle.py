"""Ship a space file and its lineage to a cluster, and unpack it there.

A search needs the space file *and* every ``vN.yaml`` beside it (``orchestrator run`` loads
the whole study folder to resolve lineage). Two ways carry them:

* a job with its own cluster (``--new-cluster``) gets a ConfigMap mounted into the head pod;
* a job on an existing cluster (``--cluster NAME``) cannot mount anything new, so the files
  travel inside the entrypoint as one gzip+base64 token, and this module's launcher
  (``python -m orchestrator.cluster.bundle``) writes them to a folder and then ``exec``s
  ``orchestrator run``. The token uses the URL-safe base64 alphabet, so it passes unharmed
  through the two shells that KubeRay's submitter and Ray's job manager run it through.

Standard library plus the (pure) spaces package only: the launcher runs before anything else.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.cluster.errors import ClusterError
from orchestrator.redaction import mask_yaml_secrets
from orchestrator.spaces.io import VERSION_FILE

# KubeRay puts the entrypoint into one `bash -c` argument (at most 128 KiB on Linux) and a
# ConfigMap holds at most 1 MiB; real space files are a few KiB each.
MAX_TOKEN_BYTES = 64 * 1024
MAX_CONFIGMAP_BYTES = 512 * 1024
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class SpaceBundle:
    """A validated space version plus the files to ship with it (name -> text)."""

    study: str
    version: int
    content_hash: str
    trainable: str
    cpu: float
    gpu: float
    trials: int
    concurrency: int | None
    file_name: str
    files: Mapping[str, str] = field(repr=False)
    source: str = ""

    @property
    def short_hash(self) -> str:
        return self.content_hash[:12]

    @property
    def size(self) -> int:
        return sum(len(text.encode()) for text in self.files.values())

    @classmethod
    def from_path(cls, path: str | Path) -> SpaceBundle:
        """Load and validate ``path`` with its lineage; ``SpaceError`` if anything is invalid."""
        from orchestrator.spaces import load_with_lineage

        path = Path(path)
        version, _lineage = load_with_lineage(path)
        if VERSION_FILE.match(path.name):
            # Everything `orchestrator run` will load: every vN.yaml of the study folder.
            shipped = sorted(p for p in path.parent.iterdir() if p.is_file() and VERSION_FILE.match(p.name))
        else:
            shipped = [path]
        files = {p.name: p.read_text(encoding="utf-8") for p in shipped}
        for name, text in files.items():
            if not _FILE_NAME.match(name):
                raise ClusterError(f"{path}: file name {name!r} cannot be shipped to a cluster; rename it")
            if mask_yaml_secrets(text) is not None:
                raise ClusterError(
                    f"{path.parent / name} holds values of secret-looking keys (password, token, api key, ...); "
                    "space files travel inline in the RayJob and its ConfigMap, so a submitted space cannot hold "
                    "secrets (a trainable can read them from its environment, set from a Kubernetes Secret)"
                )
        return cls(
            study=version.study,
            version=version.version,
            content_hash=version.content_hash,
            trainable=version.trainable,
            cpu=float(version.resources.cpu),
            gpu=float(version.resources.gpu),
            trials=version.search.trials,
            concurrency=version.search.concurrency,
            file_name=path.name,
            files=files,
            source=str(path),
        )


def pack(files: Mapping[str, str]) -> str:
    """Files as one shell-safe token (URL-safe base64 of gzipped JSON)."""
    raw = json.dumps(dict(sorted(files.items())), separators=(",", ":")).encode()
    token = base64.urlsafe_b64encode(gzip.compress(raw, mtime=0)).decode("ascii")
    if len(token) > MAX_TOKEN_BYTES:
        raise ClusterError(
            f"the space files are too large to ship in the entrypoint ({len(token)} bytes encoded, "
            f"limit {MAX_TOKEN_BYTES}); use --new-cluster, which ships them in a ConfigMap"
        )
    return token


def unpack(token: str) -> dict[str, str]:
    """Inverse of :func:`pack`; ``ValueError`` for a damaged token or an unsafe file name."""
    try:
        data = json.loads(gzip.decompress(base64.urlsafe_b64decode(token.encode("ascii"))))
    except (binascii.Error, OSError, EOFError, UnicodeError, json.JSONDecodeError) as e:
        raise ValueError(f"damaged space bundle: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError("damaged space bundle: expected a mapping of file names to text")
    for name in data:
        if not _FILE_NAME.match(name):
            raise ValueError(f"unsafe file name in space bundle: {name!r}")
    return data


def write_files(files: Mapping[str, str], folder: Path) -> list[Path]:
    """Write ``files`` into ``folder`` (created if needed); returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        target = folder / name
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def launch(argv: Sequence[str] | None = None) -> None:
    """``python -m orchestrator.cluster.bundle --into DIR --bundle TOKEN -- COMMAND ...``.

    Unpacks the files into ``DIR`` and replaces this process with ``COMMAND`` (so Ray's
    job manager signals the search itself when the job is stopped).
    """
    parser = argparse.ArgumentParser(prog="python -m orchestrator.cluster.bundle")
    parser.add_argument("--into", required=True, type=Path, help="folder to write the files to")
    parser.add_argument("--bundle", required=True, help="token made by orchestrator.cluster.bundle.pack")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to exec")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    try:
        write_files(unpack(args.bundle), args.into)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    sys.stdout.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":  # pragma: no cover - exercised through launch() in tests
    launch()
