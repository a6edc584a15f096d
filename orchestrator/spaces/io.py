"""Space files on disk: one version (``load_version``), a study folder (``load_study``), lineage and discovery.

A study's folder holds ``v<N>.yaml`` files, each naming its parent; ``load_with_lineage`` resolves a version's
chain back to its first version and checks it. Parsing is ``parse``; reading YAML safely is ``yamlsafe``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import Problem, SpaceError
from .parse import parse_version
from .version import StudyVersion
from .yamlsafe import MAX_FILE_BYTES, check_size

VERSION_FILE = re.compile(r"^v(\d+)\.ya?ml$")


def load_version(path: str | Path) -> StudyVersion:
    """Load ``<study>/v<N>.yaml``; the file name and folder must agree with its version and study."""
    path = Path(path)
    shown = str(path)
    try:
        check_size(path.stat().st_size, shown)
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # bounded even where the size on disk says nothing (a pipe, /proc)
        check_size(len(raw), shown, at_least=True)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SpaceError([Problem("", "no such file", shown)]) from None
    except IsADirectoryError:
        raise SpaceError([Problem("", "is a folder, expected a .yaml file", shown)]) from None
    except UnicodeDecodeError as e:
        raise SpaceError([Problem("", f"not UTF-8 text ({e.reason} at byte {e.start})", shown)]) from None
    except OSError as e:
        raise SpaceError([Problem("", f"cannot read: {e.strerror}", shown)]) from None
    version = parse_version(text, shown)
    m = VERSION_FILE.match(path.name)
    problems = []
    if m and int(m.group(1)) != version.version:
        problems.append(Problem("version", f"file is named {path.name} but says version {version.version}", shown))
    if m and path.parent.name and path.parent.name != version.study:
        problems.append(
            Problem("study", f"file is in folder {path.parent.name!r} but says study {version.study!r}", shown)
        )
    if problems:
        raise SpaceError(problems)
    return version


@dataclass(frozen=True)
class Study:
    """All versions of one study found in its folder, with lineage checked."""

    name: str
    versions: Mapping[int, StudyVersion]

    def lineage(self, version: int) -> list[StudyVersion]:
        """Root first, ``version`` last."""
        chain = [self.versions[version]]
        while chain[-1].parent is not None:
            chain.append(self.versions[chain[-1].parent])
        return chain[::-1]

    @property
    def latest(self) -> StudyVersion:
        return self.versions[max(self.versions)]


def load_study(folder: str | Path) -> Study:
    """Load every ``v<N>.yaml`` of a study folder and check lineage. Collects all problems."""
    folder = Path(folder)
    problems: list[Problem] = []
    versions: dict[int, StudyVersion] = {}
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
    if not files:
        raise SpaceError([Problem("", "no space files (v<N>.yaml) in this folder", str(folder))])
    for f in files:
        if not VERSION_FILE.match(f.name):
            problems.append(Problem("", "space files must be named v<N>.yaml (v1.yaml, v2.yaml, ...)", str(f)))
            continue
        try:
            v = load_version(f)
        except SpaceError as e:
            problems.extend(e.problems)
            continue
        if v.version in versions:
            problems.append(
                Problem("version", f"version {v.version} is also defined in {versions[v.version].source}", str(f))
            )
        versions[v.version] = v
    problems.extend(_lineage_problems(versions))
    if problems:
        raise SpaceError(problems)
    return Study(folder.name, versions)


def _lineage_problems(versions: Mapping[int, StudyVersion]) -> list[Problem]:
    problems = []
    for v in versions.values():
        if v.parent is not None and v.parent not in versions:
            have = ", ".join(f"v{n}" for n in sorted(versions)) or "none"
            problems.append(
                Problem("parent", f"parent v{v.parent} not found next to this file (have: {have})", v.source)
            )
        if v.parent in versions:
            p = versions[v.parent]
            if p.trainable != v.trainable:
                why = f"changes the trainable from {p.trainable!r} (v{p.version}) to {v.trainable!r}"
                problems.append(
                    Problem("trainable", f"{why}; a study keeps one trainable, start a new study", v.source)
                )
            if p.metric != v.metric:
                was, now = f"{p.metric.name}/{p.metric.mode}", f"{v.metric.name}/{v.metric.mode}"
                why = f"changes the metric from {was} (v{p.version}) to {now}"
                problems.append(Problem("metric", f"{why}; a study keeps one metric", v.source))
    return problems


def load_with_lineage(path: str | Path) -> tuple[StudyVersion, list[StudyVersion]]:
    """A version plus its ancestors (root first), read from the files beside it."""
    path = Path(path)
    version = load_version(path)
    if not VERSION_FILE.match(path.name):
        if version.parent is not None:
            why = f"names parent v{version.parent}, but the file is not named v<N>.yaml inside its study folder"
            raise SpaceError([Problem("parent", f"{why}, so the parent cannot be found", str(path))])
        return version, [version]
    lineage = load_study(path.parent).lineage(version.version)
    return lineage[-1], lineage


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Study folders and loose files to validate, from files, study folders or a root of studies."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            children = sorted(p.iterdir())
            if any(c.is_file() and c.suffix in (".yaml", ".yml") for c in children):
                out.append(p)
            else:
                out.extend(c for c in children if c.is_dir() and not c.name.startswith("."))
        else:
            out.append(p)
    return out
