"""What a kind of run adds to the engine: callbacks beside its trials, and the work at its end.

The engine runs searches and trains alike and names neither review nor production: the composition layer
(``orchestrator.api``) fills a table ``kind -> RunHooks`` (the review artifacts of a search, the
registration of a train's models) and hands it to ``runner.run_search``, ``runner.start_run`` and
``runner.resume_search``; a resumed run finds its hooks by the kind its plan recorded. A kind without
hooks runs its trials and ends FINISHED.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.console import Echo
from orchestrator.spaces import StudyVersion

from .plan import TrialCallbacks

if TYPE_CHECKING:
    from orchestrator.tracking.mlflow_store import MlflowStore

    from .leaderboard import Leaderboard
    from .plan import SearchPlan
    from .runner import SearchResult


@dataclass(frozen=True)
class Ended:
    """A run whose planned trials all ended, as its end hook gets it: its parent run is still RUNNING, with the
    counts, the best value and (for a warm-started run) the ledger logged; the engine ends it FINISHED after."""

    store: MlflowStore
    plan: SearchPlan
    result: SearchResult
    board: Leaderboard  # this driver's trials, ranked
    grid: Any  # Ray Tune's ``ResultGrid`` of this driver's trials (empty when a resume had none left to run)
    echo: Echo


# Around a whole run, from before Ray starts to after its end (whatever way it ends): (the version it runs, its
# tracking URI, whether review artifacts were asked for) -> a context manager. What a kind starts there (the review
# process) warms up while Ray and the first trials start.
Around = Callable[[StudyVersion, str, bool], AbstractContextManager[Any]]


@dataclass(frozen=True)
class RunHooks:
    """``trial_callbacks(plan, tracking_callback)``: Ray Tune callbacks beside the trials. ``finish(ended)``: the
    kind's work at the end; an error it raises fails the run (a hook that must never fail a run catches its own).
    ``around``: entered before Ray starts, left once the run has ended (``Around``)."""

    trial_callbacks: TrialCallbacks | None = None
    finish: Callable[[Ended], None] | None = None
    around: Around | None = None

    def entered(self, version: StudyVersion, tracking_uri: str, review_artifacts: bool) -> AbstractContextManager[Any]:
        """The ``around`` context of a run (nothing when the kind has none)."""
        return self.around(version, tracking_uri, review_artifacts) if self.around else nullcontext()


HookTable = Mapping[str, RunHooks]  # a parent run's kind (``schema.SEARCH_RUN``, ``schema.TRAIN_RUN``) -> its hooks
NO_HOOKS = RunHooks()
