"""Which searcher runs a space's ``search.algorithm``: one table, names to lazily imported classes.

Light on purpose (no ray, hyperopt or optuna: ``orchestrator space validate`` and
``orchestrator.checks`` read it), in the manner of Ray Tune's ``SEARCH_ALG_IMPORT``. Each entry
names the module and class of the searcher and the library it needs; a library outside the core
dependencies comes with the pip extra that installs it, so its absence is one clear line before
any run is created.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.errors import OrchestratorError, did_you_mean
from orchestrator.spaces.version import LIARS

if TYPE_CHECKING:
    from .base import SpaceSearcher


@dataclass(frozen=True)
class SearcherEntry:
    """Where a searcher lives and what it needs: ``library`` is an import name, ``extra`` its pip extra."""

    module: str
    class_name: str
    library: str
    extra: str | None = None
    liars: tuple[str, ...] = LIARS  # the ``search.liar`` settings it supports
    learns: bool = True  # whether scored trials steer its suggestions (random search: no)

    def install_hint(self) -> str:
        """The command that installs the library."""
        return f"pip install 'orchestrator[{self.extra}]'" if self.extra else "pip install orchestrator"


_HYPEROPT = SearcherEntry("orchestrator.engine.searchers.hyperopt", "HyperoptSearcher", "hyperopt")
_OPTUNA = SearcherEntry("orchestrator.engine.searchers.optuna", "OptunaSearcher", "optuna", extra="optuna")

SEARCHERS: dict[str, SearcherEntry] = {
    "tpe": _HYPEROPT,  # HyperOpt TPE, the default
    "random": dataclasses.replace(_HYPEROPT, learns=False),  # the same searcher, every suggestion drawn at random
    "optuna_tpe": _OPTUNA,  # Optuna's multivariate TPE
}


def searcher_names() -> list[str]:
    """Every ``search.algorithm`` a space file may name, in the table's order."""
    return list(SEARCHERS)


def unknown_searcher(name: str) -> str | None:
    """Why ``name`` is not a searcher (with a did-you-mean and the known names), or ``None`` when it is one."""
    if name in SEARCHERS:
        return None
    return f"unknown search algorithm {name!r}{did_you_mean(name, SEARCHERS)} (known: {', '.join(SEARCHERS)})"


def unsupported_liar(name: str, liar: str) -> str | None:
    """Why searcher ``name`` cannot run with ``search.liar: liar``, or ``None`` when it can (or is unknown)."""
    entry = SEARCHERS.get(name)
    if entry is None or liar in entry.liars:
        return None
    return f"{name} takes {' or '.join(entry.liars)}, not {liar!r}"


def _entry(name: str) -> SearcherEntry:
    problem = unknown_searcher(name)
    if problem:
        raise OrchestratorError(f"search.algorithm: {problem}")
    return SEARCHERS[name]


def check_available(name: str) -> None:
    """Raise ``OrchestratorError`` (one line) when ``name`` is unknown or its library is not installed.

    Finds the library without importing it, so this is cheap enough for any command.
    """
    entry = _entry(name)
    if importlib.util.find_spec(entry.library) is None:
        raise OrchestratorError(
            f"search.algorithm {name!r} needs {entry.library}, which is not installed: {entry.install_hint()}"
        )


def searcher_class(name: str) -> type[SpaceSearcher]:
    """The searcher class for ``search.algorithm`` ``name``, imported now (after ``check_available``)."""
    check_available(name)
    entry = _entry(name)
    return getattr(importlib.import_module(entry.module), entry.class_name)


__all__ = [
    "SEARCHERS",
    "SearcherEntry",
    "check_available",
    "searcher_class",
    "searcher_names",
    "unknown_searcher",
    "unsupported_liar",
]
