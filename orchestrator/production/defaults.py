"""The defaults of ``orchestrator predict``, stated once; light (the command line reads them)."""

from __future__ import annotations

DEFAULT_OVERLAP = 0.5  # fraction of a window shared with its neighbour
DEFAULT_BATCH_SIZE = 16  # windows per forward pass (times 8 with D4)
DEFAULT_THRESHOLD = 0.5  # a pixel is in a class when its probability is at least this
DEFAULT_D4 = True  # average each window over the 8 symmetries of the square
