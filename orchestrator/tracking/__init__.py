"""MLflow as the trial store and what is read from it: every name (``schema``), the store (``mlflow_store``), the
logger that sends a search's updates off the driver (``async_logger``), Parquet ledgers (``ledger``), the warm
start's read (``carried``), a study's metric and best trial (``study``), a loopback ``mlflow server``
(``server``). mlflow is imported inside the functions that talk to a store, never at import.
"""
