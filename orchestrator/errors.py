"""Errors a user can act on, and how the command line prints any error in one line."""

from __future__ import annotations


class OrchestratorError(Exception):
    """A problem with the user's input or environment, explained in the message."""


def describe(error: BaseException) -> str:
    """One readable line (or a short block) for an error, without a traceback or credentials in URIs."""
    from orchestrator.redaction import redact_text

    return redact_text(_line(error))


def _line(error: BaseException) -> str:
    from orchestrator.spaces.errors import SpaceError

    if isinstance(error, SpaceError | OrchestratorError):
        return f"error: {error}"
    try:
        from trainables.api import TrainableConfigError, UnknownTrainable

        if isinstance(error, TrainableConfigError | UnknownTrainable):
            return f"error: {error}"
    except ImportError:  # pragma: no cover - trainables ship with the package
        pass
    return f"error: {type(error).__name__}: {error} (run with --debug for the traceback)"
