"""How a team evolves a study's space: refine from the tracking store, preview carry-over, lint, report.

``orchestrator.spaces.refine`` holds the pure rules; this package reads the tracking store
(``orchestrator.tracking``) for them and serves the ``space refine``, ``space diff
--tracking-uri``, ``space lint`` and ``report`` commands. It imports mlflow only through
``orchestrator.tracking``, inside the functions that read the store.
"""
