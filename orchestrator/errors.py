"""Errors a user can act on, and the one set of rules for turning any error into a line of text.

Every error the project raises for bad input or a bad environment derives from
:class:`OrchestratorError` (the spaces' ``SpaceError`` and the trainables' ``TrainableConfigError``
and ``UnknownTrainable`` too), so the command line tells them from bugs by type alone. The rest of the
module is text: :func:`first_line` (one redacted line of any error), :func:`failure_line` (what a
failure is recorded under), :func:`describe` (what the command line prints) and :func:`did_you_mean`.
This module is the bottom of the package: it imports only ``orchestrator.redaction``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from orchestrator.redaction import redact_text, redact_uri

MAX_LINE = 300  # characters of an error's line we show or record; longer ones end with "..."

# MLflow's REST client wraps a connection error in one long line; its cause is what to show.
_HTTP_REQUEST = re.compile(r"^API request to (?P<url>\S+) failed with exception (?P<cause>.*)$")
_CONNECTION_CAUSE = re.compile(
    r"\[Errno -?\d+\] [^\"')]+|Read timed out|Connection aborted|Connection reset by peer"
    r"|too many \d{3} error responses"
)


class OrchestratorError(Exception):
    """A problem with the user's input or environment, explained in the message."""


def first_line(error: BaseException) -> str:
    """One short line for ``error``, without credentials: its message's first line (its type's name when it has
    none), at most :data:`MAX_LINE` characters; a failed HTTP request names its URL and the connection error."""
    message = str(error).strip()
    text = redact_text(message.splitlines()[0]) if message else type(error).__name__
    request = _HTTP_REQUEST.match(text)
    if request is not None:
        cause = _CONNECTION_CAUSE.search(request["cause"])
        text = f"request to {redact_uri(request['url'])} failed: {cause.group(0) if cause else request['cause']}"
    return text if len(text) < MAX_LINE else text[: MAX_LINE - 3] + "..."


def failure_line(error: BaseException) -> str:
    """The one line a failure is recorded under: our own message, or the error's type and first line."""
    text = first_line(error)
    if isinstance(error, OrchestratorError) or text == type(error).__name__:
        return text
    return f"{type(error).__name__}: {text}"


def describe(error: BaseException) -> str:
    """What the command line prints for ``error``: ``error: <message>`` (every line of our own errors, which may
    list several problems), else the type and first line with a hint to ``--debug``; no credentials."""
    if isinstance(error, OrchestratorError):
        return "error: " + redact_text(str(error))
    return f"error: {failure_line(error)} (run with --debug for the traceback)"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``options`` to ``word``, or an empty string."""
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
