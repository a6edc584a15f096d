"""A resolved version as a reviewer wants to read it: hash, lineage, settings, parameters."""

from __future__ import annotations

import json
from typing import Any

from .kinds import NO_DEFAULT
from .space import SearchSpace
from .version import StudyVersion, vars_of


def _param_rows(space: SearchSpace, indent: str = "", with_fixed: bool = True) -> list[tuple[str, str, str]]:
    """``(name, distribution, modifiers)`` per parameter; options' parameters follow their choice."""
    rows: list[tuple[str, str, str]] = []
    for name, p in space.params.items():
        if p.is_fixed:
            if with_fixed:
                rows.append((f"{indent}{name}", p.describe(), ""))
            continue
        extra = []
        if p.default is not NO_DEFAULT:
            extra.append(f"default {json.dumps(p.default)}")
        if getattr(p, "limits", None) is not None:
            extra.append(f"limits {list(p.limits)}")
        rows.append((f"{indent}{name}", p.describe(), ", ".join(extra)))
        for i, sub in p.sub_spaces():
            rows += [(f"{indent}  [{p.option_label(i)}].{n}", d, e) for n, d, e in _param_rows(sub, with_fixed=False)]
    return rows


def render_version(version: StudyVersion, lineage: list[StudyVersion], fmt: str = "text") -> str:
    if fmt == "json":
        doc: dict[str, Any] = {
            "study": version.study,
            "version": version.version,
            "parent": version.parent,
            "hash": version.content_hash,
            "source": version.source,
            "lineage": [{"version": v.version, "hash": v.content_hash} for v in lineage],
            "notes": version.notes,
            **version.canonical(),
        }
        return json.dumps(doc, indent=2)
    s, r, q = version.schedule, version.resources, version.search
    settings = lambda obj: ", ".join(f"{k} {v}" for k, v in vars_of(obj).items())  # noqa: E731
    lines = [
        f"{version.label}  hash {version.content_hash}",
        f"file:       {version.source or '-'}",
        "lineage:    " + " -> ".join(f"v{v.version} ({v.short_hash})" for v in lineage),
        f"trainable:  {version.trainable}",
        *(
            [f"objectives: {', '.join(f'{m.name} ({m.mode})' for m in version.objectives)}"]
            if version.objectives
            else [f"metric:     {version.metric.name} ({version.metric.mode})"]
        ),
        *([f"constraints: {'; '.join(c.describe() for c in version.constraints)}"] if version.constraints else []),
        f"schedule:   {settings(s)}",
        f"resources:  cpu {r.cpu}, gpu {r.gpu} per trial",
        f"search:     {settings(q)}",
    ]
    if version.fixed:
        lines.append("fixed:      " + ", ".join(f"{k}={json.dumps(v)}" for k, v in version.fixed.items()))
    rows = _param_rows(version.params)
    searched = sum(1 for _, p in version.params.walk() if not p.is_fixed)
    lines.append(f"params ({searched} searched):")
    w0 = max(len(n) for n, _, _ in rows)
    w1 = max(len(d) for _, d, _ in rows)
    lines += [f"  {n:<{w0}}  {d:<{w1}}  {e}".rstrip() for n, d, e in rows]
    if version.notes:
        lines.append(f"notes:      {version.notes.strip()}")
    return "\n".join(lines)
