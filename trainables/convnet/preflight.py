"""The ``convnet`` family's driver-side check (``TrainableSpec.preflight``): the data a trial would read.

Runs before any trial is scheduled, so a missing IDX folder or a corrupt file is one line naming the
key instead of every trial failing. It reads the files as a trial would (``data.check_idx_folder``)
without keeping them; ``data: digits`` is bundled with scikit-learn and needs no check. No torch.
"""

from __future__ import annotations

from ..config import Config
from . import data as data_mod


def check(cfg: Config) -> None:
    """Raise ``TrainableConfigError`` naming ``data`` when the data it names cannot be loaded."""
    try:
        folder = data_mod.idx_folder_of(cfg["data"])
        if folder is not None:
            data_mod.check_idx_folder(folder)
    except data_mod.DataError as error:
        raise cfg.error("data", str(error)) from None
