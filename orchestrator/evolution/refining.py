"""``orchestrator space refine``: find the version to refine, read its study's trials, propose, write.

The proposal is the next free version number of the study folder, with ``parent`` the refined
version; it is written beside the others and never over an existing file (``--dry-run``
prints it as a diff of the two files instead).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import OrchestratorError
from orchestrator.spaces import Study, StudyVersion, load_study
from orchestrator.spaces.io import VERSION_FILE
from orchestrator.spaces.refine import Refinement, RefineOptions, refine
from orchestrator.spaces.writer import dump, write
from orchestrator.tracking.access import require_edit

from .trials import scored_trials

if TYPE_CHECKING:
    from orchestrator.tracking.mlflow_store import MlflowStore


@dataclass(frozen=True)
class Target:
    """The version to refine, in its study folder."""

    study: Study
    version: StudyVersion
    folder: Path

    @property
    def next_number(self) -> int:
        return max(self.study.versions) + 1

    @property
    def next_path(self) -> Path:
        return self.folder / f"v{self.next_number}.yaml"


def find_target(path: str | Path) -> Target:
    """A study folder (its newest version) or one ``v<N>.yaml`` inside one."""
    path = Path(path)
    if path.is_dir():
        study = load_study(path)
        return Target(study, study.latest, path)
    match = VERSION_FILE.match(path.name)
    if not match:
        raise OrchestratorError(f"{path}: refine needs a study folder or a v<N>.yaml file inside one")
    study = load_study(path.parent)  # parsed once; the loader checks that each file's version is its number
    number = int(match.group(1))
    if number not in study.versions:
        raise OrchestratorError(f"{path} does not exist")
    return Target(study, study.versions[number], path.parent)


@dataclass(frozen=True)
class Proposal:
    target: Target
    refinement: Refinement
    store: MlflowStore | None = None  # where the trials came from: writing needs EDIT on the study there

    @property
    def path(self) -> Path:
        return self.target.next_path

    def as_diff(self) -> str:
        """The proposed file against the refined one, both as the writer writes them."""
        old, new = self.target.version, self.refinement.version
        return "".join(
            difflib.unified_diff(
                dump(old).splitlines(keepends=True),
                dump(new).splitlines(keepends=True),
                fromfile=str(old.source),
                tofile=str(self.path),
            )
        )

    def write(self) -> Path:
        """Write the new version; a file already there is an error, never overwritten."""
        if self.store is not None:  # a teammate with READ may look (--dry-run), not write the next version
            require_edit(self.store, self.target.version.study, f"space refine (writing {self.path})")
        try:
            return write(self.refinement.version, self.path)
        except FileExistsError:
            raise OrchestratorError(f"{self.path} already exists; a space file is never overwritten") from None


def propose(path: str | Path, store: MlflowStore, options: RefineOptions | None = None) -> Proposal:
    """Refine the version at ``path`` from every trial of its study in ``store``."""
    target = find_target(path)
    trials = scored_trials(store, target.version)
    return Proposal(target, refine(target.version, trials, options, number=target.next_number), store)
