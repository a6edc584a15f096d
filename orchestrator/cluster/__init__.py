"""Run searches on Kubernetes as KubeRay RayJobs: build, submit, inspect, follow, cancel.

``rayjob`` builds the objects (pure), ``client`` talks to the API server through the official
``kubernetes`` client, ``cli`` holds the ``submit`` and ``jobs`` commands. Importing this
package stays light: no kubernetes client, torch, ray or mlflow.
"""

from orchestrator.cluster.errors import ClusterError

__all__ = ["ClusterError"]
