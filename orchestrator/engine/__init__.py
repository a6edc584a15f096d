"""The search engine: Ray Tune + a warm-started HyperOpt TPE searcher + MLflow tracking.

Imports Ray; never imported by light commands.
"""

import os as _os

# Read by Ray Tune at import: Tune's forced snapshots with `num_to_keep` are expected here.
_os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Ray Tune's own console output stays off (verbose=0 with the legacy reporter): the live view is ours.
_os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
