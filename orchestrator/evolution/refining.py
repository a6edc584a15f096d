"""``orchestrator space refine``: find the version to refine, read its study's trials, propose, write.

``refine_trials`` is the whole decision from any trials (the command, the benchmarks and the tests call
it): the usable trials and their budget (``spaces.refine.rank``), the model's evidence about them
(``analysis.evidence.gather_evidence``), the rules (``spaces.refine.refine``). The proposal is the next
free version number of the study folder, with ``parent`` the refined version; it is written beside the
others and never over an existing file (``--dry-run`` prints it as a diff of the two files instead, with
the evidence per parameter).

With several objectives (``objectives:``) the trials are ranked by Pareto front instead (``pareto_ranking``,
``engine.pareto``), the model is one of the fronts, and each objective gets a model of its own too, read where
Pareto trials sit at a bound (``orchestrator.spaces.refine`` states the rules).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.engine.checks import version_problems
from orchestrator.errors import OrchestratorError
from orchestrator.spaces import Study, StudyVersion, load_study
from orchestrator.spaces.io import VERSION_FILE
from orchestrator.spaces.refine import (
    Evidence,
    ModelRow,
    NotEnoughTrials,
    Ranking,
    RefineError,
    Refinement,
    RefineOptions,
    rank,
    refine,
    usable_trials,
)
from orchestrator.spaces.trials import RecordedTrial
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

    @property
    def newer(self) -> list[int]:
        """The study's versions after the refined one (refining an older version branches the study)."""
        return sorted(n for n in self.study.versions if n > self.version.version)


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

    def evidence_lines(self) -> list[str]:
        """What the model says about each searched parameter, changed or not, and what refine made of it."""
        head = f"evidence per parameter ({self.refinement.model}):"
        return [head, *(f"  {c.note}" for c in self.refinement.assessed)]

    def write(self) -> Path:
        """Write the new version; a file already there is an error, never overwritten."""
        if self.store is not None:  # a teammate with READ may look (--dry-run), not write the next version
            require_edit(self.store, self.target.version.study, f"space refine (writing {self.path})")
        try:
            return write(self.refinement.version, self.path)
        except FileExistsError:
            raise OrchestratorError(f"{self.path} already exists; a space file is never overwritten") from None


def propose(path: str | Path, store: MlflowStore, options: RefineOptions | None = None) -> Proposal:
    """Refine the version at ``path`` from every trial of its study in ``store``.

    The version must be one the code can run (``space validate``'s checks: else its trials say nothing), and the
    proposal must differ from every version of the study (its content hash): a proposal that is an existing version
    again is a ``RefineError`` naming it."""
    target = find_target(path)
    problems = version_problems(target.version)
    if problems:
        raise RefineError(
            f"{target.version.label} cannot run, so its trials cannot refine it: " + "; ".join(str(p) for p in problems)
        )
    trials = scored_trials(store, target.version)
    refinement = refine_trials(target.version, trials, options, number=target.next_number)
    same = next((v for v in target.study.versions.values() if v.content_hash == refinement.version.content_hash), None)
    if same is not None:
        raise RefineError(
            f"the proposal for {target.version.label} is v{same.version} again (content hash {same.short_hash}, "
            f"{same.source}): nothing new to write; refine v{max(target.study.versions)} or run v{same.version}"
        )
    return Proposal(target, refinement, store)


def refine_trials(
    version: StudyVersion,
    trials: Sequence[RecordedTrial],
    options: RefineOptions | None = None,
    number: int | None = None,
) -> Refinement:
    """The version ``orchestrator space refine`` proposes from ``trials``: rank them, model them, apply the rules.

    Raises ``NotEnoughTrials`` / ``RefineError`` (``orchestrator.spaces.refine``) as ``refine`` does."""
    from orchestrator.analysis.evidence import gather_evidence

    opts = options or RefineOptions()
    if version.multi_objective:
        ranking = pareto_ranking(version, trials, opts)
        return refine(version, ranking, pareto_evidence(version, ranking, opts), opts, number)
    ranking = rank(version, trials, opts.min_trials)
    return refine(version, ranking, gather_evidence(version, ranking, opts), opts, number)


def pareto_ranking(version: StudyVersion, trials: Sequence[RecordedTrial], options: RefineOptions) -> Ranking:
    """The usable trials of a version of several objectives (finished, fitting it, every objective finite), ranked by
    front then crowding on their final values (``engine.pareto``: feasible first, the constraints' violations
    after), each row's loss its front; the fronts kept are the first that hold ``min_top`` trials.

    Raises ``NotEnoughTrials`` when fewer than ``min_trials`` usable trials exist."""
    from orchestrator.engine import pareto

    goals = version.goals
    usable = []
    for config, t in usable_trials(version, trials):
        values = {**{k: v for k, v in t.values.items() if v is not None}, version.metric.name: t.value}
        if all(values.get(m.name) is not None and math.isfinite(values[m.name]) for m in goals):
            usable.append((config, t, values))
    if len(usable) < options.min_trials:
        names = ", ".join(m.name for m in goals)
        raise NotEnoughTrials(
            f"{version.label}: {len(usable)} finished trial(s) with a finite value of every objective ({names}) fit "
            f"this version; refine needs at least {options.min_trials} (run more trials or lower --min-trials)"
        )
    usable.sort(key=lambda u: (u[1].run_id, json.dumps(u[0], sort_keys=True, default=str)))
    points = [[m.loss(values[m.name]) for m in goals] for _, _, values in usable]
    violations = [version.violation(values) for _, _, values in usable]
    fronts = pareto.ranks(points, violations)
    rows = []
    for i in pareto.order(points, violations):
        config, t, values = usable[i]
        objectives = {m.name: float(values[m.name]) for m in goals}
        rows.append(ModelRow(config, float(fronts[i]), float(fronts[i]), t.run_id, fronts[i], objectives))
    wanted = min(options.min_top, len(rows))
    kept_front = next(f for f in sorted(set(fronts)) if sum(1 for x in fronts if x <= f) >= wanted)
    return Ranking(tuple(rows), None, len(usable), len(usable), tuple(goals), tuple(version.constraints), kept_front)


def pareto_evidence(version: StudyVersion, ranking: Ranking, options: RefineOptions) -> Evidence:
    """The model of the fronts (``gather_evidence`` of ``ranking``), with each objective's own model of the same
    trials in ``Evidence.objectives`` (what the widening where Pareto trials sit at a bound reads)."""
    from orchestrator.analysis.evidence import gather_evidence

    fronts = gather_evidence(version, ranking, options)
    own: dict[str, Evidence] = {}
    for m in ranking.objectives:
        alone = dataclasses.replace(version, metric=m, objectives=(), constraints=())
        rows = sorted(
            (ModelRow(r.config, m.loss(r.values[m.name]), r.values[m.name], r.run_id) for r in ranking.rows),
            key=lambda r: (r.loss, r.run_id, json.dumps(r.config, sort_keys=True, default=str)),
        )
        n = len(rows)
        own[m.name] = gather_evidence(alone, Ranking(tuple(rows), None, n, n), options)
    names = ", ".join(own)
    model = f"for the Pareto ranks, {fronts.model}; for widening, the same model of each objective alone ({names})"
    return dataclasses.replace(fronts, model=model, objectives=own)
