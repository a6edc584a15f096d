"""orchestrator: versioned search spaces, Ray Tune + HyperOpt TPE searches, MLflow tracking."""

__version__ = "0.1.0"
