"""Today's rule before issue 25, kept for the benchmark only: refine from the raw top-K positions.

``refine_topk(version, trials, TopKOptions())`` is ``orchestrator.spaces.refine.refine`` as of 9c07789 (the
rules ``orchestrator space refine`` applied then): trials are ranked, each numeric range is narrowed to the
span of the top K (plus a margin) and a bound is widened when the top K crowd it; a choice option is pruned
when it misses the top K more often than chance allows. ``bench.search_quality`` runs it side by side with the
model-based rule (``orchestrator.evolution.refining.refine_trials``) on the same trials. The lattice and
rounding helpers are the product's, so both rules write bounds the same way.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.spaces import NO_DEFAULT, Choice, Param, SearchSpace, StudyVersion
from orchestrator.spaces.refine import (
    Change,
    ChangeKind,
    NotEnoughTrials,
    Numeric,
    RefineError,
    _fmt,
    _fmt_list,
    _inside,
    _outward,
    _show,
    ranking_budget,
    usable_trials,
)
from orchestrator.spaces.trials import RecordedTrial


@dataclass(frozen=True)
class TopKOptions:
    """The knobs of the top-K rule, with the defaults it had."""

    top: int | None = None
    top_fraction: float = 0.25
    min_top: int = 3
    min_trials: int = 5
    margin: float = 0.1
    min_narrow: float = 0.05
    near_bound: float = 0.1
    near_share: float = 0.3
    widen: float = 0.5
    prune: bool = True
    prune_min_trials: int = 5
    prune_alpha: float = 0.01


@dataclass(frozen=True)
class TopKRefinement:
    """The version the top-K rule proposes and its changes."""

    version: StudyVersion
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class _Ranked:
    """A usable trial's fitted configuration, its loss (lower is better) and the metric's value."""

    config: Mapping[str, Any]
    loss: float
    value: float


def refine_topk(
    version: StudyVersion,
    trials: Sequence[RecordedTrial],
    options: TopKOptions | None = None,
    number: int | None = None,
) -> TopKRefinement:
    """The next version of ``version`` (numbered ``number``, default ``version + 1``) from ``trials``.

    Raises ``NotEnoughTrials`` when fewer than ``options.min_trials`` usable trials exist, and
    ``RefineError`` when the trials give no reason to change anything.
    """
    opts = options or TopKOptions()
    usable = usable_trials(version, trials)
    if len(usable) < opts.min_trials:
        raise NotEnoughTrials(
            f"{version.label}: {len(usable)} finished trial(s) with a finite {version.metric.name} fit this "
            f"version; refine needs at least {opts.min_trials} (run more trials or lower --min-trials)"
        )
    budget = ranking_budget([t for _, t in usable], opts.min_trials)
    ranked = _ranked(version, usable, budget)
    k = opts.top if opts.top is not None else max(opts.min_top, math.ceil(opts.top_fraction * len(ranked)))
    k = min(k, len(ranked))
    changes: list[Change] = []
    params = _refine_space(version.params, "", ranked, k, opts, changes)
    if params == version.params:
        kept = "".join(f"; {c.note}" for c in changes)
        why = f"the top {k} of {len(ranked)} trials give no reason to change the space"
        raise RefineError(f"{version.label}: {why}{kept}")
    on = (
        f"epoch {budget} (the highest epoch at least {opts.min_trials} trials reached)"
        if budget is not None
        else "their final value"
    )
    head = (
        f"Refined from v{version.version} by `orchestrator space refine`: {len(usable)} finished trials fit "
        f"v{version.version}; {len(ranked)} ranked on {on} by {version.metric.name} ({version.metric.mode}); "
        f"top {k}."
    )
    notes = "\n".join([head, *(c.note for c in changes)])
    new = dataclasses.replace(
        version,
        version=number if number is not None else version.version + 1,
        parent=version.version,
        params=params,
        notes=notes,
        source=None,
    )
    return TopKRefinement(new, tuple(changes))


def _ranked(
    version: StudyVersion, usable: Sequence[tuple[dict[str, Any], RecordedTrial]], budget: int | None
) -> list[_Ranked]:
    """Best first, on ``budget``; trials that did not reach it are left out; ties by run id, then config."""
    rows = []
    for config, t in usable:
        value = t.value if budget is None else t.history.get(budget)
        if value is None or not math.isfinite(value):
            continue
        rows.append(
            (
                version.metric.loss(value),
                t.run_id,
                json.dumps(config, sort_keys=True, default=str),
                _Ranked(config, version.metric.loss(value), value),
            )
        )
    rows.sort(key=lambda r: r[:3])
    return [r[3] for r in rows]


# --------------------------------------------------------------------------- spaces and choices


def _refine_space(
    space: SearchSpace, prefix: str, ranked: Sequence[_Ranked], k: int, opts: TopKOptions, changes: list[Change]
) -> SearchSpace:
    """Choices first (their surviving options' best trials widen what the numbers must cover), notes in file order."""
    notes: dict[str, list[Change]] = {name: [] for name in space.params}
    params: dict[str, Param] = {}
    cover = list(ranked[:k])
    for name, p in space.params.items():
        if p.is_choice:
            params[name], best_of_options = _refine_choice(p, f"{prefix}{name}", name, ranked, k, opts, notes[name])
            cover += [r for r in best_of_options if all(r is not c for c in cover)]
    what = (
        f"top {k}"
        if len(cover) == k
        else f"{len(cover)} trials covered (top {k} and {len(cover) - k} best of other options)"
    )
    for name, p in space.params.items():
        if p.is_fixed:
            params[name] = p
        elif not p.is_choice:
            values = [r.config[name] for r in cover]
            params[name] = _refine_number(p, f"{prefix}{name}", values, what, opts, notes[name])
    changes.extend(c for name in space.params for c in notes[name])
    return SearchSpace({name: params[name] for name in space.params})


def _refine_choice(
    p: Choice, path: str, name: str, ranked: Sequence[_Ranked], k: int, opts: TopKOptions, changes: list[Change]
) -> tuple[Choice, list[_Ranked]]:
    """The choice refined, and the best trials of each option it keeps (its share of the top K)."""
    took: dict[int, list[_Ranked]] = {i: [] for i in range(len(p.options))}
    for r in ranked:
        i = p.select(r.config[name])
        if i is not None:
            took[i].append(r)
    in_top = {p.select(r.config[name]) for r in ranked[:k]}
    kth = ranked[k - 1]
    keep: list[int] = []
    for i, mine in took.items():
        chance = miss_chance(len(ranked), k, len(mine))
        strong = len(mine) >= opts.prune_min_trials and chance < opts.prune_alpha
        if opts.prune and strong and i not in in_top and mine[0].loss > kth.loss:
            label = p.option_label(i)
            changes.append(
                Change(
                    "pruned",
                    path,
                    p.describe(),
                    f"option {label} removed",
                    f"option {label} tried {len(mine)} times, none in the top {k} (chance {chance:.2g} for an option "
                    f"as good as the rest), its best {_fmt(mine[0].value)} worse than the {_ordinal(k)} best "
                    f"{_fmt(kth.value)}",
                )
            )
        else:
            keep.append(i)
    options: list[Any] = []
    for i in keep:
        sub_space = p.sub_space(i)
        if sub_space is None:
            options.append(p.options[i])
            continue
        sub = [_Ranked(r.config[name], r.loss, r.value) for r in took[i]]
        options.append(_refine_option(sub_space, f"{path}[{p.option_label(i)}].", sub, len(ranked), k, opts, changes))
    refined = dataclasses.replace(p, options=tuple(options), default=NO_DEFAULT)
    if p.default is not NO_DEFAULT:
        if p.select(p.default) not in keep:
            why = "the default's option was pruned"
        elif not refined.contains(p.default):
            why = f"the default {_show(p.default)} is outside its refined option"
        else:
            why = ""
        if why:
            changes.append(
                Change(
                    "default-removed",
                    path,
                    f"default {_show(p.default)}",
                    "default removed",
                    f"{why}, so trials without this parameter are not carried",
                )
            )
        else:
            refined = dataclasses.replace(refined, default=p.default)
    best_of_options = [r for i in keep for r in took[i][: max(1, round(k * len(took[i]) / len(ranked)))]]
    return refined, best_of_options


def miss_chance(ranked: int, top: int, tried: int) -> float:
    """The chance that ``tried`` of ``ranked`` trials drawn at random all miss the ``top``: C(N-K, n) / C(N, n)."""
    return math.comb(ranked - top, tried) / math.comb(ranked, tried)


def _refine_option(
    opt: SearchSpace,
    prefix: str,
    took: Sequence[_Ranked],
    parent_n: int,
    parent_k: int,
    opts: TopKOptions,
    changes: list[Change],
) -> SearchSpace:
    """An option's sub-space from the ranked trials that took it, keeping the parent's top share."""
    if all(q.is_fixed for q in opt.params.values()):
        return opt
    if len(took) < opts.min_trials:
        changes.append(
            Change(
                "kept",
                prefix.rstrip("."),
                "sub-space",
                "sub-space kept",
                f"only {len(took)} ranked trial(s) took this option (need {opts.min_trials})",
            )
        )
        return opt
    k = min(len(took), max(opts.min_top, round(parent_k * len(took) / parent_n)))
    return _refine_space(opt, prefix, took, k, opts, changes)


# --------------------------------------------------------------------------- numeric ranges


def _refine_number(
    p: Numeric, path: str, values: Sequence[float], what: str, opts: TopKOptions, changes: list[Change]
) -> Any:
    """Narrow ``p`` around ``values`` (best first) and widen a bound they crowd, within ``limits``, on its lattice."""
    scale, unscale = (math.log, math.exp) if p.is_log else (float, float)
    lo, hi = scale(p.low), scale(p.high)
    width, band = hi - lo, opts.near_bound * (hi - lo)
    best, ts = scale(values[0]), sorted(scale(v) for v in values)
    need = max(2, math.ceil(opts.near_share * len(ts)))
    crowd_low = sum(1 for t in ts if t - lo <= band)
    crowd_high = sum(1 for t in ts if hi - t <= band)
    widen_low, widen_high = crowd_low >= need and best - lo <= band, crowd_high >= need and hi - best <= band
    low, high = _outward(
        p,
        unscale(lo - opts.widen * width if widen_low else max(lo, ts[0] - opts.margin * width)),
        unscale(hi + opts.widen * width if widen_high else min(hi, ts[-1] + opts.margin * width)),
    )
    low = min(low, p.low) if widen_low else max(low, p.low)
    high = max(high, p.high) if widen_high else min(high, p.high)
    if not widen_low and scale(low) - lo < opts.min_narrow * width:  # not worth a new bound
        low = p.low
    if not widen_high and hi - scale(high) < opts.min_narrow * width:
        high = p.high
    stopped = {"lower": False, "upper": False}
    if p.limits is not None:
        floor_, ceiling = _inside(p, p.limits[0], up=True), _inside(p, p.limits[1], up=False)
        stopped = {"lower": low < floor_, "upper": high > ceiling}
        low, high = max(low, floor_), min(high, ceiling)
    if not low < high:  # a lattice too coarse to narrow on
        return p
    evidence: list[str] = []
    for side, crowd, widen, old, new, top_end in (
        ("lower", crowd_low, widen_low, p.low, low, ts[0]),
        ("upper", crowd_high, widen_high, p.high, high, ts[-1]),
    ):
        if widen:
            near = f"{crowd} of the {what} within {opts.near_bound:.0%} of the {side} bound {_fmt(old)}"
            if new == old:
                evidence.append(f"{near}, which is its limit: not widened")
            else:
                stop = f", stopped by limits {_fmt_list(p.limits)}" if stopped[side] else ""
                evidence.append(f"{near}: {side} bound widened by {opts.widen:.0%} of the width{stop}")
        elif new != old:
            reach = "lowest" if side == "lower" else "highest"
            evidence.append(
                f"{side} bound: the {reach} of the {what} is {_fmt(unscale(top_end))}, plus a {opts.margin:.0%} margin"
            )
    old_range = _fmt_list([p.low, p.high])
    if (low, high) == (p.low, p.high):
        if evidence:  # a widening the limits stopped: say so
            changes.append(Change("kept", path, old_range, f"kept {old_range}", "; ".join(evidence)))
        return p
    new_param = dataclasses.replace(p, low=low, high=high, default=NO_DEFAULT)
    if p.default is not NO_DEFAULT:
        if new_param.contains(p.default):
            new_param = dataclasses.replace(new_param, default=p.default)
        else:
            changes.append(
                Change(
                    "default-removed",
                    path,
                    f"default {_show(p.default)}",
                    "default removed",
                    f"the default {_show(p.default)} is outside the new range, so trials "
                    "without this parameter are not carried",
                )
            )
    kind: ChangeKind = "narrowed" if p.low <= low and high <= p.high else "widened"
    changes.append(Change(kind, path, old_range, f"{kind} to {_fmt_list([low, high])}", "; ".join(evidence)))
    return new_param


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
