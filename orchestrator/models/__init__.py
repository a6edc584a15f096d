"""Logged and registered models: a trial's checkpoint logged with ``mlflow.pytorch`` and registered (``register``),
and the metadata prediction reads back from any logged model (``metadata``). Shared by the review of a search
(its best model) and production (a train's models; prediction). mlflow and torch are imported when called.
"""
