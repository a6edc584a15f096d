"""The evidence ``space refine`` decides from: one model of every usable trial, read per parameter.

**The model, and why.** A Gaussian process (``surrogate.Surrogate``: Matérn 5/2 with a length scale per
input, fitted noise, on Yeo-Johnson-transformed losses) of every usable trial, over the whole space:
numbers in [0, 1] of their range (log space for log scales), choices one-hot, and a conditional option's
parameters as inputs too, at ``INACTIVE`` in the trials that did not take the option. It is chosen over the
alternatives the issue names because the rules need *the probability that a region holds a value better
than the best seen*: a regression forest predicts leaf means of observed losses, so it never puts a value
below the best seen (that probability would always be 0) and cannot tell an unexplored region from a bad
one; TPE's good/bad density ratio models where trials were drawn, not the loss, and cannot account for one
parameter when judging another. A process gives both from one fit: its posterior is a distribution over
functions, so the chance that a region beats the best seen, or that the loss is lowest at a bound, is
counted over sample functions of it; it interpolates from 15 trials; an unexplored region keeps a wide
posterior, so it is not cut off; a parameter that does not matter gets a long length scale, a flat partial
dependence and an importance near 0. Its cost grows as n^3: the kernel is fitted on at most
``surrogate.FIT_MAX`` trials, and beyond ``MODEL_MAX`` trials the model keeps the best half of that
number and a seeded sample of the rest.

**Scopes.** The top level is one scope, with the posterior of every trial; each option of a choice is
another, with the posterior of the trials that took it only (``Surrogate.posterior``: the same fitted kernel,
the option's own inputs at most ``surrogate.SUB_LENGTH`` long), so a handful of trials there leave a wide
posterior there, whatever the rest of the study says. This is how an option is "weighed by how many trials
took it": measured on the benchmark's conditional space, a model of all trials alone called an under-tried
option hopeless (it borrowed the leading option's data through the kernel and learned from 4-7 trials that
the option's own parameter did not matter) and cut the optimum off in 1 seed in 20 to 1 in 2. A scope's
parameters are judged against its *best seen*: the best trial of the scope, as its posterior predicts it.

**Reference and search configurations.** A scope's *reference* configurations are its best
``RefineOptions.reference(n)`` trials (at most ``MAX_REFERENCE``) plus the best trial of each option of each
choice of the scope; its *search* configurations are the reference ones plus ``RANDOM`` seeded random
configurations of the scope (uniform on each input, the scope's options taken).

**Per parameter** (``orchestrator.spaces.refine`` documents the dataclasses), over ``SAMPLES`` posterior
sample functions:

* *Partial dependence*: the prediction with the parameter set to each point of a grid (``GRID`` points
  across its range, in log space for log scales; every value of a short integer or quantized range),
  averaged over the reference configurations.
* *Toward a bound*: the share of samples whose partial dependence is lowest at that bound.
* *Cuts*: for each grid point, the share of samples in which some search configuration with the
  parameter anywhere from the bound to that point (both included) is better than the best seen: the
  lowest posterior mean at a trial of the scope, i.e. the best observed value less its noise (a lucky
  noisy result would otherwise make every region look hopeless). A sample counts when the scope's
  posterior *or* the posterior of any option inside the scope (over that option's search configurations)
  finds a better value there: an option's own trials can keep a region that the study as a whole would cut.
* *Options*: the share of samples in which some search configuration with the choice set to that option
  is better than the best seen (the option's sub-space inputs from the configuration, else random), by the
  scope's posterior or by the option's own.
* *Importance*: the variance of the posterior mean's partial dependence across the grid (across the options
  for a choice), as a share of the sum over the parameters active in the scope (the top-level ones, and the
  option's own): the main-effect share of a functional ANOVA, with the process in place of fANOVA's forest
  and the reference configurations in place of the uniform measure. ``importance.parameter_importance``
  (the review artifacts) logs the top-level scope's shares.

Deterministic: the trials are ordered before fitting (``spaces.refine.rank``), the kernel fit starts from
fixed values, and every random draw comes from a generator seeded with ``RefineOptions.seed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.spaces import Choice, Param, SearchSpace, StudyVersion
from orchestrator.spaces.refine import (
    ChoiceEvidence,
    Cut,
    Evidence,
    ModelRow,
    NumberEvidence,
    OptionEvidence,
    Ranking,
    RefineOptions,
    Side,
    option_prefix,
    param_path,
)

if TYPE_CHECKING:
    import numpy as np

    from .surrogate import Posterior, Sampler, Surrogate

GRID = 21  # points across a numeric range
SAMPLES = 256  # posterior sample functions the probabilities are counted over
MAX_REFERENCE = 32  # reference trials per scope (plus each option's best)
RANDOM = 48  # random configurations added to the reference ones when searching for a better value
INACTIVE = -0.5  # the input of a conditional number in a trial that did not take its option
MIN_MODEL_TRIALS = 3  # fewer usable trials: no model
MODEL_MAX = 1000  # trials the model conditions on; beyond, the best MODEL_MAX // 2 and a seeded sample of the rest


# --------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class Feature:
    """A searched parameter as model input: ``keys`` lead to its value in a configuration; ``conditions`` are the
    enclosing choices (feature index, option index) that must select their option for it to be active."""

    path: str
    keys: tuple[str, ...]
    param: Param
    conditions: tuple[tuple[int, int], ...]
    scope: str

    @property
    def columns(self) -> int:
        return len(self.param.options) if isinstance(self.param, Choice) else 1

    def value(self, config: Mapping[str, Any]) -> Any:
        for key in self.keys:
            config = config[key]
        return config

    def unit(self, v: float) -> float:
        p: Any = self.param
        if p.is_log:
            return (math.log(v) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
        return (v - p.low) / (p.high - p.low)

    def grid(self) -> list[Any]:
        """The values partial dependence is computed at, lowest first: every value of a short stepped range,
        else ``GRID`` points evenly spaced (in log space for log scales), snapped onto a stepped range."""
        p: Any = self.param
        if p.is_stepped and p.steps + 1 <= GRID:
            return [p.value_at(k) for k in range(p.steps + 1)]
        lo, hi = (math.log(p.low), math.log(p.high)) if p.is_log else (p.low, p.high)
        values = [lo + (hi - lo) * k / (GRID - 1) for k in range(GRID)]
        values = [math.exp(x) if p.is_log else x for x in values]
        values[0], values[-1] = p.low, p.high
        if p.is_stepped:
            return list(dict.fromkeys(p.snap(v) for v in values))
        return values


@dataclass(frozen=True)
class Scope:
    """The top level (``prefix`` ""), or one option's sub-space: the conditions that select it, its own
    features and every feature active in it (the enclosing ones too)."""

    prefix: str
    conditions: tuple[tuple[int, int], ...]
    own: tuple[int, ...]
    active: tuple[int, ...]


class Encoding:
    """The whole space's features in file order (a choice before its options' parameters), their columns, and
    configurations encoded as rows."""

    def __init__(self, space: SearchSpace) -> None:
        self.features: list[Feature] = []
        self.scopes: list[Scope] = []
        self._walk(space, "", (), ())
        self.offsets: list[int] = []
        total = 0
        for f in self.features:
            self.offsets.append(total)
            total += f.columns
        self.width = total

    def _walk(
        self, space: SearchSpace, prefix: str, keys: tuple[str, ...], conditions: tuple[tuple[int, int], ...]
    ) -> None:
        own = []
        for name, p in space.params.items():
            if p.is_fixed:
                continue
            own.append(len(self.features))
            self.features.append(Feature(param_path(prefix, name), (*keys, name), p, conditions, prefix))
        selecting = {c for c, _ in conditions}  # the choices that select this scope: constant in it
        enclosing = [
            i
            for s in self.scopes
            if s.conditions == conditions[: len(s.conditions)]
            for i in s.own
            if i not in selecting
        ]
        # Every option is a scope, its own parameters or none: the trials that took it judge it.
        self.scopes.append(Scope(prefix, conditions, tuple(own), (*enclosing, *own)))
        for i in own:
            f = self.features[i]
            if isinstance(f.param, Choice):
                for option in range(len(f.param.options)):
                    sub = f.param.sub_space(option) or SearchSpace({})
                    self._walk(sub, option_prefix(f.path, f.param, option), f.keys, (*conditions, (i, option)))

    def is_active(self, feature: int, config: Mapping[str, Any]) -> bool:
        for c, option in self.features[feature].conditions:
            choice = self.features[c]
            if choice.param.select(choice.value(config)) != option:  # type: ignore[union-attr]
                return False
        return True

    def encode(self, config: Mapping[str, Any]) -> list[float]:
        row: list[float] = []
        for i, f in enumerate(self.features):
            active = self.is_active(i, config)
            if isinstance(f.param, Choice):
                selected = f.param.select(f.value(config)) if active else None
                row += [1.0 if j == selected else 0.0 for j in range(f.columns)]
            else:
                row.append(f.unit(f.value(config)) if active else INACTIVE)
        return row

    def columns(self, feature: int) -> slice:
        return slice(self.offsets[feature], self.offsets[feature] + self.features[feature].columns)

    def random(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` rows with every input drawn (uniform numbers, a uniform option per choice), activity ignored."""
        import numpy as np

        rows = rng.uniform(0.0, 1.0, size=(count, self.width))
        for i, f in enumerate(self.features):
            if isinstance(f.param, Choice):
                cols = self.columns(i)
                picks = rng.integers(0, f.columns, size=count)
                rows[:, cols] = np.eye(f.columns)[picks]
        return rows

    def settle(self, rows: np.ndarray, completion: np.ndarray) -> np.ndarray:
        """``rows`` made consistent after choices were set: an input that becomes active takes ``completion``'s
        value, one that becomes inactive its inactive code (features in order: a choice before its options)."""
        rows = rows.copy()
        for i, f in enumerate(self.features):
            cols = self.columns(i)
            active = rows.shape[0] * [True]
            for c, option in f.conditions:
                active = [a and rows[r, self.offsets[c] + option] == 1.0 for r, a in enumerate(active)]
            for r, a in enumerate(active):
                choice = isinstance(f.param, Choice)
                inactive_now = (rows[r, cols] == 0.0).all() if choice else rows[r, cols.start] == INACTIVE
                if a and inactive_now:
                    rows[r, cols] = completion[r, cols]
                elif not a:
                    rows[r, cols] = 0.0 if choice else INACTIVE
        return rows

    def force(self, rows: np.ndarray, conditions: Sequence[tuple[int, int]], completion: np.ndarray) -> np.ndarray:
        """``rows`` with each (choice feature, option) of ``conditions`` selected, then settled."""
        rows = rows.copy()
        for c, option in conditions:
            cols = self.columns(c)
            rows[:, cols] = 0.0
            rows[:, cols.start + option] = 1.0
        return self.settle(rows, completion)


# --------------------------------------------------------------------------- evidence


def gather_evidence(version: StudyVersion, ranking: Ranking, options: RefineOptions | None = None) -> Evidence:
    """The model's evidence about every searched parameter of ``version`` whose scope has at least
    ``options.min_trials`` usable trials (``orchestrator.spaces.refine`` reads it)."""
    from .surrogate import one_blas_thread

    opts = options or RefineOptions()
    if len(ranking.rows) < max(opts.min_trials, MIN_MODEL_TRIALS):
        return Evidence("no model (too few trials)", SAMPLES, {})
    with one_blas_thread():
        model = StudyModel(version.params, ranking.rows, opts)
        params: dict[str, NumberEvidence | ChoiceEvidence] = {}
        for scope in model.encoding.scopes:
            params.update(model.evidence(scope))
    return Evidence(model.description(), SAMPLES, params)


def scope_importance(space: SearchSpace, rows: Sequence[ModelRow], options: RefineOptions | None = None) -> dict:
    """The importance of each top-level searched parameter (path -> share, summing to 1 unless all are 0)."""
    from .surrogate import one_blas_thread

    with one_blas_thread():
        model = StudyModel(space, rows, options or RefineOptions())
        top = model.encoding.scopes[0]
        shares = model.importance(top)
    return {model.encoding.features[i].path: shares[i] for i in top.own}


class StudyModel:
    """One fitted model of a study's usable trials, a posterior per scope, and what they say per parameter."""

    def __init__(self, space: SearchSpace, rows: Sequence[ModelRow], opts: RefineOptions) -> None:
        import numpy as np

        from .surrogate import Surrogate

        self.encoding = Encoding(space)
        self.rows = _model_rows(rows, opts.seed)
        self.opts = opts
        self.X = np.array([self.encoding.encode(r.config) for r in self.rows], dtype=float)
        self.losses = np.array([r.loss for r in self.rows], dtype=float)
        rng = np.random.default_rng(opts.seed)
        self.model: Surrogate | None = None if np.ptp(self.losses) == 0 else Surrogate(self.X, self.losses, opts.seed)
        self._random = self.encoding.random(RANDOM, rng)
        options = sum(f.columns for f in self.encoding.features if isinstance(f.param, Choice))
        self._completion = self.encoding.random(MAX_REFERENCE + options + RANDOM, rng)
        self._views: dict[str, _View] = {}
        if self.model is not None:
            for scope in self.encoding.scopes:
                members = self._members(scope)
                reference = self._reference(scope, members)
                search = self._search(scope, reference)
                posterior = self._posterior(scope, members)
                sampler = posterior.sampler(SAMPLES, rng)
                self._views[scope.prefix] = _View(scope, members, reference, search, posterior, sampler)

    def _posterior(self, scope: Scope, members: Sequence[int]) -> Posterior:
        """The whole study's posterior for the top level; an option's: its trials only, its own inputs short."""
        assert self.model is not None
        if not scope.conditions:
            return self.model.posterior()
        inside = [
            col
            for i, f in enumerate(self.encoding.features)
            if f.conditions[: len(scope.conditions)] == scope.conditions
            for col in range(self.encoding.offsets[i], self.encoding.offsets[i] + f.columns)
        ]
        return self.model.posterior(members, short=inside)

    def description(self) -> str:
        if self.model is None:
            return f"every one of the {len(self.rows)} trials has the same value: no model"
        top = self.encoding.scopes[0]
        return (
            f"a Gaussian process of {len(self.rows)} trials (Matern 5/2, a length scale per input; an option's "
            f"sub-space from the trials that took it), partial dependence over the best "
            f"{len(self._views[top.prefix].reference)}, probabilities over {SAMPLES} sample functions"
        )

    # ------------------------------------------------------------------ scopes

    def _members(self, scope: Scope) -> list[int]:
        """Indexes of the trials in ``scope`` (best first)."""
        offsets = self.encoding.offsets
        return [r for r, row in enumerate(self.X) if all(row[offsets[c] + o] == 1.0 for c, o in scope.conditions)]

    def _reference(self, scope: Scope, members: Sequence[int]) -> list[int]:
        reached = [r for r in members if self.rows[r].value is not None] or list(members)
        chosen = reached[: min(MAX_REFERENCE, self.opts.reference(len(reached)))]
        for i in scope.own:
            if isinstance(self.encoding.features[i].param, Choice):
                cols = self.encoding.columns(i)
                seen = {int(self.X[r, cols].argmax()) for r in chosen}
                for r in reached:
                    option = int(self.X[r, cols].argmax())
                    if option not in seen:
                        seen.add(option)
                        chosen.append(r)
        return chosen

    def _search(self, scope: Scope, reference: list[int]) -> np.ndarray:
        """The reference rows, then ``RANDOM`` random rows of the scope."""
        import numpy as np

        randoms = self.encoding.force(self._random, scope.conditions, self._random)
        return np.vstack([self.X[reference], randoms])

    def _within(self, scope: Scope, prefix: tuple[tuple[int, int], ...] | None = None) -> list[_View]:
        """The views of the scopes inside ``scope`` (its options' sub-spaces, nested), or inside the option
        ``prefix`` of it."""
        start = prefix if prefix is not None else scope.conditions
        return [
            v
            for v in self._views.values()
            if len(v.scope.conditions) > len(scope.conditions) and v.scope.conditions[: len(start)] == start
        ]

    def _set(self, rows: np.ndarray, feature: int, values: Sequence[Sequence[float]]) -> np.ndarray:
        """(len(values) * len(rows)) x width: ``rows`` with ``feature``'s columns set to each of ``values`` in
        turn (a choice's one-hot: then settled, sub-space inputs from the completion rows)."""
        import numpy as np

        cols = self.encoding.columns(feature)
        blocks = []
        for v in values:
            block = rows.copy()
            block[:, cols] = np.asarray(v, dtype=float)
            if isinstance(self.encoding.features[feature].param, Choice):
                block = self.encoding.settle(block, self._completion[: len(block)])
            blocks.append(block)
        return np.vstack(blocks)

    def _values(self, feature: int) -> list[list[float]]:
        f = self.encoding.features[feature]
        if isinstance(f.param, Choice):
            return [[1.0 if j == i else 0.0 for j in range(f.columns)] for i in range(f.columns)]
        return [[f.unit(v)] for v in f.grid()]

    # ------------------------------------------------------------------ per parameter

    def importance(self, scope: Scope) -> dict[int, float]:
        """Each feature active in ``scope``: its share of the variance of the posterior mean's partial dependence."""
        if self.model is None:
            return dict.fromkeys(scope.active, 0.0)
        view = self._views[scope.prefix]
        posterior = view.posterior
        reference = self.X[view.reference]
        spread = {}
        for i in scope.active:
            values = self._values(i)
            pd = posterior.mean(self._set(reference, i, values)).reshape(len(values), -1).mean(axis=1)
            spread[i] = float(pd.var())
        total = sum(spread.values())
        return {i: (v / total if total > 0 else 0.0) for i, v in spread.items()}

    def evidence(self, scope: Scope) -> dict[str, NumberEvidence | ChoiceEvidence]:
        members = self._members(scope)
        if not scope.own or len(members) < max(self.opts.min_trials, MIN_MODEL_TRIALS):
            return {}
        shares = self.importance(scope)
        out: dict[str, NumberEvidence | ChoiceEvidence] = {}
        for i in scope.own:
            f = self.encoding.features[i]
            if isinstance(f.param, Choice):
                out[f.path] = self._choice(scope, i, shares[i], members)
            else:
                out[f.path] = self._number(scope, i, shares[i], members)
        return out

    def _best(self, view: _View) -> float:
        """The best seen in ``view``'s scope, on the model's scale: the lowest posterior mean at a trial of the scope
        that reached the budget (the best observed value less its noise; the same value without noise)."""
        reached = [r for r in view.members if self.rows[r].value is not None] or view.members[:1]
        return float(view.posterior.mean(self.X[reached]).min())

    def _draws(self, view: _View, feature: int) -> np.ndarray:
        """``view``'s sample values with ``feature`` set to each of its values: samples x values x search rows."""
        values = self._values(feature)
        return view.sampler(self._set(view.search, feature, values)).reshape(SAMPLES, len(values), len(view.search))

    def _number(self, scope: Scope, feature: int, share: float, members: Sequence[int]) -> NumberEvidence:
        import numpy as np

        grid = self.encoding.features[feature].grid()
        if self.model is None:
            return NumberEvidence(share, len(members), grid[0], Side(0.0), Side(0.0))
        view = self._views[scope.prefix]
        best = self._best(view)
        draws = self._draws(view, feature)
        pd = draws[:, :, : len(view.reference)].mean(axis=2)  # samples x grid
        lowest = pd.argmin(axis=1)
        better = draws.min(axis=2) < best  # samples x grid: some search configuration beats the best seen
        for inner in self._within(scope):  # an option's own trials may know better than the study as a whole
            better |= self._draws(inner, feature).min(axis=2) < best
        from_low = np.logical_or.accumulate(better, axis=1).mean(axis=0)
        from_high = np.logical_or.accumulate(better[:, ::-1], axis=1).mean(axis=0)[::-1]
        last = len(grid) - 1
        lower = Side(float(np.mean(lowest == 0)), tuple(Cut(grid[k], float(from_low[k])) for k in range(1, last)))
        upper = Side(
            float(np.mean(lowest == last)), tuple(Cut(grid[k], float(from_high[k])) for k in range(last - 1, 0, -1))
        )
        return NumberEvidence(share, len(members), grid[int(pd.mean(axis=0).argmin())], lower, upper)

    def _choice(self, scope: Scope, feature: int, share: float, members: Sequence[int]) -> ChoiceEvidence:
        cols = self.encoding.columns(feature)
        f = self.encoding.features[feature]
        tried = [0] * f.columns
        for r in members:
            tried[int(self.X[r, cols].argmax())] += 1
        if self.model is None:
            return ChoiceEvidence(share, len(members), tuple(OptionEvidence(t, 1.0) for t in tried))
        view = self._views[scope.prefix]
        best = self._best(view)
        better = self._draws(view, feature).min(axis=2) < best  # samples x options
        for option in range(f.columns):
            for inner in self._within(scope, (*scope.conditions, (feature, option))):
                better[:, option] |= inner.sampler(inner.search).min(axis=1) < best
        options = tuple(OptionEvidence(t, float(c)) for t, c in zip(tried, better.mean(axis=0), strict=True))
        return ChoiceEvidence(share, len(members), options)


@dataclass(frozen=True)
class _View:
    """A scope as the model sees it: its trials, reference and search rows, and its posterior's sample functions."""

    scope: Scope
    members: list[int]
    reference: list[int]
    search: np.ndarray
    posterior: Posterior
    sampler: Sampler


def _model_rows(rows: Sequence[ModelRow], seed: int) -> tuple[ModelRow, ...]:
    """``rows`` (best first), or beyond ``MODEL_MAX`` the best half of that and a seeded sample of the rest."""
    if len(rows) <= MODEL_MAX:
        return tuple(rows)
    import numpy as np

    keep = MODEL_MAX // 2
    rest = np.sort(np.random.default_rng(seed).choice(len(rows) - keep, MODEL_MAX - keep, replace=False)) + keep
    return (*rows[:keep], *(rows[i] for i in rest))
