"""The one error type the spaces package raises for bad input, and its parts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.errors import OrchestratorError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a space file: where (file, line, key path) and what was expected."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or "<space>"
        if self.line is not None:
            where += f":{self.line}"
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class SpaceError(OrchestratorError):
    """Invalid search-space input. Carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(path="", message=problems)]
        self.problems: list[Problem] = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems:"] + [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class ValueNotInSpace(ValueError):
    """A configuration value that a space cannot produce, at its dotted path (``optimizer.momentum``).

    Raised by ``SearchSpace.active`` and when carrying old trials; ``category`` groups the
    reasons for the carry report.
    """

    def __init__(self, path: str, reason: str, category: str = ""):
        self.path = path
        self.reason = reason
        self.category = category or reason
        super().__init__(f"{path}: {reason}")
