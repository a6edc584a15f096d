"""``orchestrator space lint``: the checks a space repository's CI runs on every change.

Everything ``space validate`` checks (files, lineage, parents, trainables), plus: version
numbers of a study folder leave no gap (a deleted version loses the record of the space its
trials ran in), and with a tracking store, every version that has recorded trials still has
its file, with the content hash those trials recorded. An edited version makes its old
trials look as if they came from the new space; the fix is a new version, never an edit.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.engine.checks import validate_with_trainables
from orchestrator.spaces import Problem, StudyVersion, discover
from orchestrator.spaces.check import ValidationReport
from orchestrator.spaces.io import VERSION_FILE

if TYPE_CHECKING:
    from orchestrator.tracking.mlflow_store import MlflowStore


@dataclass
class LintReport:
    validation: ValidationReport
    problems: list[Problem] = field(default_factory=list)
    versions_with_trials: int = 0

    @property
    def all_problems(self) -> list[Problem]:
        return [*self.validation.problems, *self.problems]

    @property
    def ok(self) -> bool:
        return not self.all_problems


def lint(paths: Iterable[str | Path], store: MlflowStore | None = None) -> LintReport:
    """Structural checks always; the recorded-hash checks when a tracking ``store`` is given."""
    paths = list(paths)
    report = LintReport(validate_with_trainables(paths))
    folders = [p for p in discover(paths) if p.is_dir()]
    for folder in folders:
        report.problems.extend(_gaps(folder))
    by_study: dict[str, dict[int, StudyVersion]] = defaultdict(dict)
    for v in report.validation.valid:
        by_study[v.study][v.version] = v
    for versions in by_study.values():
        report.problems.extend(same_space_problems(versions))
    if store is not None:
        linted_folders = {f.name for f in folders}
        for study, versions in sorted(by_study.items()):
            recorded = recorded_hashes(store, study)
            report.versions_with_trials += len(recorded)
            report.problems.extend(hash_problems(versions, recorded, whole_study=study in linted_folders))
    return report


def same_space_problems(versions: Mapping[int, StudyVersion]) -> list[Problem]:
    """A version with the content hash of an earlier one: the same space again, which changes nothing a search
    does (the hash ignores notes, formatting and numbers) and makes trials of two versions look alike."""
    first: dict[str, StudyVersion] = {}
    problems = []
    for n, version in sorted(versions.items()):
        earlier = first.setdefault(version.content_hash, version)
        if earlier is not version:
            problems.append(
                Problem(
                    "version",
                    f"v{n} is the same space as v{earlier.version} (content hash {version.short_hash}): a new "
                    "version must change what runs; change it, or remove it if it has no recorded trials",
                    version.source,
                )
            )
    return problems


def _gaps(folder: Path) -> list[Problem]:
    numbers = sorted(int(m.group(1)) for f in folder.iterdir() if (m := VERSION_FILE.match(f.name)))
    missing = sorted(set(range(1, max(numbers, default=0) + 1)) - set(numbers))
    return [
        Problem(
            "version",
            f"v{n}.yaml is missing: versions are never deleted (their trials ran in them); restore it",
            str(folder),
        )
        for n in missing
    ]


def recorded_hashes(store: MlflowStore, study: str) -> dict[int, Counter[str]]:
    """For each version with trials in the store: how many trials recorded each space hash."""
    out: dict[int, Counter[str]] = defaultdict(Counter)
    for row in store.trials(study):
        if row.version is not None and row.space_hash:
            out[row.version][row.space_hash] += 1
    return dict(out)


def hash_problems(
    versions: Mapping[int, StudyVersion], recorded: Mapping[int, Counter[str]], whole_study: bool = True
) -> list[Problem]:
    """A version edited after its trials were recorded, or (``whole_study``) one whose file is gone."""
    problems = []
    next_number = max([*versions, *recorded], default=0) + 1
    for n, hashes in sorted(recorded.items()):
        trials = sum(hashes.values())
        version = versions.get(n)
        if version is None:
            if whole_study:
                some = next(iter(versions.values()), None)
                where = str(Path(some.source).parent) if some and some.source else None
                problems.append(
                    Problem(
                        "version",
                        f"v{n} has {trials} recorded trial(s) but no file v{n}.yaml; restore it from version control",
                        where,
                    )
                )
            continue
        if version.content_hash in hashes:
            continue
        ran = ", ".join(f"{h[:12]} ({k} trial{'s' if k > 1 else ''})" for h, k in hashes.most_common())
        problems.append(
            Problem(
                "version",
                f"v{n} was edited after its trials were recorded: the file's hash is {version.short_hash} but its "
                f"{trials} recorded trial(s) ran with {ran}; restore v{n} and write the change as a new version "
                f"(v{next_number}.yaml with parent: {n}) instead",
                version.source,
            )
        )
    return problems
