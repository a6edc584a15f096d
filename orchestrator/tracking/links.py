"""Links into the MLflow UI, one rule for every link we print or write.

MLflow 3's UI opens in its GenAI view; a link whose route ends ``?workflowType=machine_learning`` (after the
``#/experiments/ID`` route, checked in MLflow 3.17's UI with a headless browser) opens the training view, where
the runs of a search are. Every link here ends so.
"""

from __future__ import annotations

TRAINING_VIEW = "workflowType=machine_learning"


def experiment_url(base: str, experiment_id: str) -> str:
    """The experiment's page (the study's runs) in the UI at ``base``, in the training view."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?{TRAINING_VIEW}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """A run's page in the UI at ``base``, in the training view."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{TRAINING_VIEW}"
