"""What a command writes to its user: the ``Echo`` every long operation reports through, and whether a live
(redrawn) view is shown. Bottom layer: the standard library only."""

from __future__ import annotations

import sys
from collections.abc import Callable

Echo = Callable[[str], None]  # prints one line (``print``, ``click.echo``, a test's list.append)


def live_view(live: bool | None) -> bool:
    """Whether to redraw a live view: as asked, else only when standard output is a terminal (a CI log or
    ``kubectl logs`` gets plain lines)."""
    return sys.stdout.isatty() if live is None else live
