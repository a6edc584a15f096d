"""Validate many space files at once, collecting every problem (for ``space validate`` and CI)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Problem, SpaceError
from .io import VERSION_FILE, discover, load_study, load_version
from .version import StudyVersion


@dataclass
class ValidationReport:
    valid: list[StudyVersion] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    invalid_files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_paths(paths: Iterable[str | Path]) -> ValidationReport:
    """Files are checked alone (plus lineage when named ``v<N>.yaml``); folders as studies."""
    report = ValidationReport()
    targets = discover(paths)
    if not targets:
        report.problems.append(Problem("", "no study folders or space files found", ", ".join(map(str, paths))))
    for target in targets:
        if not target.exists():
            report.problems.append(Problem("", "no such file or folder", str(target)))
            report.invalid_files += 1
            continue
        if target.is_dir():
            _check_study(target, report)
        else:
            _check_file(target, report)
    return report


def _check_study(folder: Path, report: ValidationReport) -> None:
    try:
        study = load_study(folder)
    except SpaceError as e:
        report.problems.extend(e.problems)
        bad = {p.file for p in e.problems}
        report.invalid_files += len(bad)
        # Report the files that did load on their own as valid.
        for f in sorted(folder.iterdir()):
            if str(f) not in bad and VERSION_FILE.match(f.name):
                with contextlib.suppress(SpaceError):
                    report.valid.append(load_version(f))
        return
    report.valid.extend(study.versions[n] for n in sorted(study.versions))


def _check_file(path: Path, report: ValidationReport) -> None:
    try:
        version = load_version(path)
    except SpaceError as e:
        report.problems.extend(e.problems)
        report.invalid_files += 1
        return
    if VERSION_FILE.match(path.name) and version.parent is not None:
        try:
            load_study(path.parent)
        except SpaceError as e:
            mine = [p for p in e.problems if p.file == str(path)]
            if mine:
                report.problems.extend(mine)
                report.invalid_files += 1
                return
    report.valid.append(version)
