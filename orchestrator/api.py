"""The public API of the runs: the engine composed with what runs beside and after each kind of run.

The engine (``orchestrator.engine``) runs searches and trains alike and names neither review nor
production; this module fills its table of ``kind -> RunHooks``: a search's trials get the review callback
(per-trial artifacts) and its end the search's review (leaderboard, importance, best model); a train's end
registers its models. ``run_search``, ``resume_search`` and ``train_models`` are what the command line calls
(and what a notebook or a script should call); ``resume_search`` finds the hooks by the kind the run recorded.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.console import Echo
from orchestrator.engine import runner
from orchestrator.engine.hooks import HookTable, RunHooks
from orchestrator.engine.runner import SearchOptions, SearchResult
from orchestrator.production import train
from orchestrator.review.search import review_search
from orchestrator.review.trial_callback import early_reviews, review_callbacks, with_trial_reviews
from orchestrator.tracking import schema

# Each kind's review process starts before Ray (early_reviews) and its end waits for the per-trial reviews after the
# kind's own end (with_trial_reviews).
HOOKS: HookTable = {
    schema.SEARCH_RUN: RunHooks(
        trial_callbacks=review_callbacks, finish=with_trial_reviews(review_search), around=early_reviews
    ),
    schema.TRAIN_RUN: RunHooks(
        trial_callbacks=review_callbacks, finish=with_trial_reviews(train.register_models), around=early_reviews
    ),
}


def run_search(path: str | Path, options: SearchOptions, echo: Echo = print) -> SearchResult:
    """Run a search of the space file ``path`` (``orchestrator run``)."""
    return runner.run_search(path, options, HOOKS, echo)


def resume_search(experiment: str, options: SearchOptions, echo: Echo = print) -> SearchResult:
    """Continue the search or train in the folder ``experiment`` (``orchestrator resume``)."""
    return runner.resume_search(experiment, options, HOOKS, echo)


def train_models(
    study: str,
    options: SearchOptions,
    *,
    trial_id: str | None = None,
    epochs: int | None = None,
    per_class: bool = False,
    space: str | Path | None = None,
    echo: Echo = print,
) -> train.TrainResult:
    """Train a trial of ``study`` longer and register its models (``orchestrator train``)."""
    return train.train_models(
        study, options, HOOKS, trial_id=trial_id, epochs=epochs, per_class=per_class, space=space, echo=echo
    )
