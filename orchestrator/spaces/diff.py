"""What changed between two versions of a study, in the words a reviewer uses.

Parameters are matched by path; parameters under a choice option are addressed by the
option's label (``optimizer[sgd].momentum``) so that reordering options does not read as
a change of every nested parameter.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .errors import Problem, SpaceError
from .kinds import NO_DEFAULT, same_value
from .space import Param, SearchSpace
from .version import StudyVersion, vars_of

ChangeKind = Literal[
    "added",
    "removed",
    "narrowed",
    "widened",
    "shifted",
    "changed-kind",
    "choices",
    "fixed",
    "default",
    "limits",
    "setting",
]
ORDER: tuple[str, ...] = ChangeKind.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Change:
    kind: str
    path: str
    old: str
    new: str
    detail: str = ""


def _describe(p: Param | None) -> str:
    return "-" if p is None else p.describe()


def _by_path(space: SearchSpace, prefix: str = "") -> dict[str, Param]:
    out: dict[str, Param] = {}
    for name, p in space.params.items():
        path = f"{prefix}{name}"
        out[path] = p
        for i, sub in p.sub_spaces():
            out.update(_by_path(sub, f"{path}[{p.option_label(i)}]."))
    return out


def _compare(path: str, a: Param, b: Param) -> list[Change]:
    old, new = _describe(a), _describe(b)
    if a.is_fixed and b.is_fixed:
        return [] if a.canonical() == b.canonical() else [Change("fixed", path, old, new)]
    if a.kind != b.kind:
        return [Change("changed-kind", path, old, new)]
    changes: list[Change] = []
    if a.is_choice:
        la = [a.option_label(i) for i in range(len(a.options))]
        lb = [b.option_label(i) for i in range(len(b.options))]
        added = [x for x in lb if x not in la]
        removed = [x for x in la if x not in lb]
        if added or removed:
            detail = ", ".join([f"+{x}" for x in added] + [f"-{x}" for x in removed])
            changes.append(Change("choices", path, old, new, detail))
        elif la != lb:
            changes.append(Change("choices", path, old, new, "options reordered"))
    else:
        ca, cb = a.canonical(), b.canonical()
        kind = a.kind
        if {k: v for k, v in ca.items() if k not in (kind, "default", "limits")} != {
            k: v for k, v in cb.items() if k not in (kind, "default", "limits")
        } or ca[kind][2:] != cb[kind][2:]:
            changes.append(Change("changed-kind", path, old, new, "step, q or scale changed"))
        (alo, ahi), (blo, bhi) = ca[kind][:2], cb[kind][:2]
        if (alo, ahi) != (blo, bhi):
            if blo >= alo and bhi <= ahi:
                changes.append(Change("narrowed", path, old, new))
            elif blo <= alo and bhi >= ahi:
                changes.append(Change("widened", path, old, new))
            else:
                changes.append(Change("shifted", path, old, new))
        if getattr(a, "limits", None) != getattr(b, "limits", None):
            changes.append(Change("limits", path, str(a.limits), str(b.limits)))
    da, db = a.default, b.default
    if (da is NO_DEFAULT) != (db is NO_DEFAULT) or (da is not NO_DEFAULT and not same_value(da, db)):
        show = lambda d: "none" if d is NO_DEFAULT else json.dumps(d)  # noqa: E731
        changes.append(Change("default", path, show(da), show(db)))
    return changes


def diff(old: StudyVersion, new: StudyVersion) -> list[Change]:
    """Every change from ``old`` to ``new``, parameters first, in a stable order.

    Both must be versions of one study (``SpaceError`` naming both otherwise): across studies nothing
    carries, so a list of changes would suggest a lineage that does not exist."""
    if old.study != new.study:
        raise SpaceError([Problem("study", _different_studies(old, new), _where(new))])
    pa, pb = _by_path(old.params), _by_path(new.params)
    changes: list[Change] = []
    for path in pa.keys() | pb.keys():
        a, b = pa.get(path), pb.get(path)
        if a is None:
            changes.append(Change("added", path, "-", _describe(b), _default_note(b)))
        elif b is None:
            changes.append(Change("removed", path, _describe(a), "-"))
        else:
            changes.extend(_compare(path, a, b))
    changes.extend(_settings(old, new))
    changes.sort(key=lambda c: (ORDER.index(c.kind), c.path))
    return changes


def _different_studies(old: StudyVersion, new: StudyVersion) -> str:
    """Why two versions of different studies have no diff, naming both studies (the new file is the problem's)."""
    return (
        f"{new.study!r}, but {_where(old) or 'the old version'} is study {old.study!r}: a diff compares two "
        "versions of one study"
    )


def _where(version: StudyVersion) -> str | None:
    return str(version.source) if version.source else None


def _default_note(p: Param | None) -> str:
    if p is None:
        return ""
    if p.is_fixed:
        return "old trials carried with this value"
    if p.default is NO_DEFAULT:
        return "no default: old trials will not be carried"
    return f"old trials carried with default {json.dumps(p.default)}"


def _settings(old: StudyVersion, new: StudyVersion) -> list[Change]:
    out: list[Change] = []
    pairs: list[tuple[str, Any, Any]] = [("trainable", old.trainable, new.trainable)]
    pairs += [("metric", _goals(old), _goals(new))]
    pairs += [("constraints", _constraints(old), _constraints(new))]
    for section in ("schedule", "resources", "search"):
        va, vb = vars_of(getattr(old, section)), vars_of(getattr(new, section))
        pairs += [(f"{section}.{k}", va[k], vb[k]) for k in va]
    for k in old.fixed.keys() | new.fixed.keys():
        pairs.append((f"fixed.{k}", old.fixed.get(k, "-"), new.fixed.get(k, "-")))
    for path, a, b in pairs:
        if not same_value(a, b):  # 1 and 1.0 are one setting (as in the hash); True and 1 are not
            out.append(Change("setting", path, json.dumps(a), json.dumps(b)))
    return out


def render(old: StudyVersion, new: StudyVersion, changes: list[Change], fmt: str = "text") -> str:
    """``text`` (aligned columns), ``markdown`` (a table for pull requests) or ``json``."""
    head = f"{old.study} v{old.version} -> v{new.version}  (hash {old.short_hash} -> {new.short_hash})"
    if fmt == "json":
        return json.dumps(
            {
                "study": old.study,
                "old": {"version": old.version, "hash": old.content_hash},
                "new": {"version": new.version, "hash": new.content_hash},
                "changes": [asdict(c) for c in changes],
            },
            indent=2,
        )
    if fmt == "markdown":
        lines = [f"### {head}", ""]
        if not changes:
            return "\n".join([*lines, "No changes."])
        lines += [f"| change | parameter | v{old.version} | v{new.version} | note |", "|---|---|---|---|---|"]
        lines += [f"| {c.kind} | `{c.path}` | {c.old} | {c.new} | {c.detail} |" for c in changes]
        return "\n".join(lines)
    if not changes:
        return f"{head}\nno changes"
    wk = max(len(c.kind) for c in changes)
    wp = max(len(c.path) for c in changes)
    lines = [head]
    for c in changes:
        arrow = f"{c.old} -> {c.new}" if c.kind not in ("added", "removed") else (c.new if c.kind == "added" else c.old)
        lines.append(f"  {c.kind:<{wk}}  {c.path:<{wp}}  {arrow}" + (f"  ({c.detail})" if c.detail else ""))
    counts: dict[str, int] = {}
    for c in changes:
        counts[c.kind] = counts.get(c.kind, 0) + 1
    lines.append("summary: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return "\n".join(lines)


def _goals(version: StudyVersion) -> str:
    """The metric, or the objectives, as a diff row shows them."""
    return ", ".join(f"{m.name}/{m.mode}" for m in version.goals)


def _constraints(version: StudyVersion) -> str:
    return "; ".join(c.describe() for c in version.constraints) or "-"
