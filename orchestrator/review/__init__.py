"""Review artifacts: what a reviewer looks at in MLflow besides the metrics, logged off the training path.

``trial`` (with ``trial_callback``, the Ray Tune callback a search's trials get): per trial, the family's review
hook (``TrainableSpec.review``) renders the model summary, a picture of the network and its predictions from the
trial's last checkpoint, in one low-priority process beside the driver, uploaded under ``review/`` of the trial's
run. ``search`` (with ``importance``; the leaderboard is the engine's, the model registry ``orchestrator.models``):
the search-level artifacts on the search's run, a search's end hook. ``ui``: ``orchestrator ui``.
"""
