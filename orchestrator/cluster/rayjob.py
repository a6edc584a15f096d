"""Build the Kubernetes objects of a search: a KubeRay ``RayJob`` (``ray.io/v1``) and,
for a job with its own cluster, the ConfigMap that carries the space files.

Pure: plain dicts in, plain dicts out, no cluster contact, so ``submit --dry-run`` and the
schema tests see exactly what ``submit`` would create.

Two placements:

* ``--new-cluster``: ``spec.rayClusterSpec`` inline (head + one worker group sized from the
  space's per-trial resources, autoscaling from ``min_workers`` to ``max_workers``); the
  space files come from a ConfigMap mounted into the head pod, where the entrypoint runs;
  the cluster is deleted ``ttl_seconds`` after the job finishes.
* ``--cluster NAME``: ``spec.clusterSelector`` picks an existing RayCluster; its pods cannot
  mount a new ConfigMap, so the files travel inside the entrypoint (see ``bundle``).

Both use ``submissionMode: K8sJobMode``: KubeRay runs ``ray job submit`` in a Kubernetes Job
named after the RayJob, whose pod (label ``job-name=<rayjob>``) holds the search's logs.

No credential is ever inline: the tracking URI goes into the objects without its
``user:password@`` (``orchestrator.redaction``), and the Ray pods of a new cluster read
``CREDENTIAL_KEYS`` from the Secret ``JobOptions.tracking_secret`` through ``secretKeyRef``
(required when the URI carried credentials, optional otherwise). Pods of an existing cluster
use their own environment (``deploy/k8s/base/raycluster.yaml``). Nothing is read from the
submitting shell's environment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from orchestrator.cluster import names
from orchestrator.cluster.bundle import MAX_CONFIGMAP_BYTES, SpaceBundle, pack
from orchestrator.cluster.errors import ClusterError
from orchestrator.redaction import redact_uri

API_VERSION = "ray.io/v1"
RAY_VERSION = "2.60.0"
DEFAULT_TRACKING_URI = "http://mlflow:5000"
CLUSTER_SELECTOR_KEY = "ray.io/cluster"
SPACES_MOUNT = "/home/ray/search_spaces"
UNPACK_ROOT = "/tmp/orchestrator"
DEFAULT_TRACKING_SECRET = "mlflow-auth"  # the Secret deploy/ creates for the MLflow login
# Keys of the tracking Secret, each the name of the environment variable MLflow reads.
CREDENTIAL_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
# The keys a URI's user:password@ stands for; the token is always optional.
LOGIN_KEYS = CREDENTIAL_KEYS[:2]
LOGIN_SCHEMES = ("http", "https")  # MLflow reads the login variables for a tracking server only
GPU_RESOURCE = "nvidia.com/gpu"
RAY_UID, RAY_GID = 1000, 100  # the `ray` user of the rayproject/ray images

# Characters that pass unquoted through both shells the entrypoint meets (KubeRay's
# submitter script, then Ray's job manager); anything else is refused rather than escaped.
_SHELL_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


@dataclass(frozen=True)
class WorkerShape:
    """One worker pod: what it requests and how many trials of the space fit on it."""

    cpus: int
    memory_gib: int
    gpus: int
    trials_per_worker: int

    @property
    def group_name(self) -> str:
        return "gpu-workers" if self.gpus else "cpu-workers"


def worker_shape(cpu: float, gpu: float, gpus_per_worker: int | None = None) -> WorkerShape:
    """Size a worker pod from per-trial resources.

    GPU trials: ``gpus_per_worker`` cards (default: the smallest whole number that fits one
    trial), as many trials as share them (``gpu: 0.5`` -> two trials per card), and the CPUs
    those trials need. CPU-only trials: one trial per pod. Memory: 4 GiB per CPU, at least 4.
    """
    if gpu < 0 or cpu <= 0:
        raise ValueError(f"per-trial resources must be cpu > 0 and gpu >= 0, got cpu={cpu}, gpu={gpu}")
    if gpu > 0:
        gpus = gpus_per_worker or max(1, math.ceil(gpu))
        if gpus < gpu:
            raise ValueError(f"a worker with {gpus} GPU(s) cannot hold a trial that needs {gpu}")
        trials = max(1, math.floor(round(gpus / gpu, 6)))
    else:
        gpus, trials = 0, 1
    cpus = max(1, math.ceil(round(cpu * trials, 6)))
    return WorkerShape(cpus=cpus, memory_gib=max(4, 4 * cpus), gpus=gpus, trials_per_worker=trials)


@dataclass(frozen=True)
class JobOptions:
    """Everything about a submission that is not in the space file."""

    namespace: str
    cluster: str | None = None  # an existing RayCluster; None: a new cluster for this job
    image: str | None = None  # required for a new cluster
    trials: int | None = None  # default: the space's search.trials
    concurrency: int | None = None  # default: the space's search.concurrency (if any)
    tracking_uri: str = DEFAULT_TRACKING_URI
    min_workers: int = 0
    max_workers: int | None = None  # default: enough workers for the concurrency (or 2)
    gpus_per_worker: int | None = None
    ttl_seconds: int = 600
    head_cpus: int = 2
    head_memory_gib: int = 8
    tracking_secret: str = DEFAULT_TRACKING_SECRET  # Secret with CREDENTIAL_KEYS, for a new cluster
    storage: str | None = None  # `orchestrator run --storage` on the cluster (default: the cluster's own)

    @property
    def new_cluster(self) -> bool:
        return self.cluster is None

    def check_names(self) -> None:
        """Every Kubernetes name taken from the user follows its rule (one line per failure)."""
        names.check_name(self.namespace, names.NAMESPACE_RULE, "--namespace")
        if self.cluster is not None:
            names.check_name(self.cluster, names.RAYCLUSTER_RULE, "--cluster")
        names.check_name(self.tracking_secret, names.SECRET_RULE, "--tracking-secret")
        if self.image is not None:
            names.check_image(self.image)


def pod_tracking_uri(uri: str) -> str:
    """``uri`` as it may appear in a Kubernetes object: without credentials.

    The credentials of an MLflow server's URI reach the pods through the tracking Secret
    instead; a database store's cannot (MLflow reads them from the URI only), so such a URI
    is refused, naming the fix.
    """
    clean = redact_uri(uri)
    scheme = clean.partition("://")[0].lower()
    if clean != uri and scheme not in LOGIN_SCHEMES:
        raise ClusterError(
            f"--tracking-uri {clean}: a {scheme} store's credentials would have to be inline in the RayJob; "
            "point the cluster at an MLflow server (http://...) and give its login through --tracking-secret"
        )
    return clean


def credentials_note(opts: JobOptions) -> str | None:
    """What happened to credentials in ``opts.tracking_uri``, for the user; None if it had none."""
    if pod_tracking_uri(opts.tracking_uri) == opts.tracking_uri:
        return None
    keys = " and ".join(LOGIN_KEYS)
    if opts.new_cluster:
        where = f"the pods read {keys} from the Secret {opts.tracking_secret!r} (see deploy/README.md)"
    else:
        where = f"the pods of cluster {opts.cluster!r} use the {keys} of their own environment"
    return f"the credentials in --tracking-uri are not put into the RayJob: {where}"


@dataclass(frozen=True)
class Submission:
    """The objects ``submit`` creates, in order: the RayJob, then its ConfigMap (if any)."""

    rayjob: dict[str, Any]
    configmap: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.rayjob["metadata"]["name"]

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [self.rayjob] + ([self.configmap] if self.configmap else [])


# --------------------------------------------------------------------------- labels


def job_labels(bundle: SpaceBundle) -> dict[str, str]:
    """Selectable labels: who made the job and which study/version/space it runs."""
    return {
        names.MANAGED_BY: names.MANAGED_BY_VALUE,
        names.STUDY_LABEL: names.label_value(bundle.study),
        names.VERSION_LABEL: str(bundle.version),
        names.HASH_LABEL: bundle.short_hash,
    }


def job_annotations(bundle: SpaceBundle) -> dict[str, str]:
    """The full values that labels may have had to shorten."""
    return {
        names.STUDY_ANNOTATION: bundle.study,
        names.SPACE_FILE_ANNOTATION: bundle.source or bundle.file_name,
        names.CONTENT_HASH_ANNOTATION: bundle.content_hash,
    }


# --------------------------------------------------------------------------- RayCluster


def _ray_env(tracking_uri: str, tracking_secret: str) -> list[dict[str, Any]]:
    """Tracking settings for every Ray process: the URI without credentials, and the
    credentials by reference to ``tracking_secret`` (the login keys are required when
    ``tracking_uri`` carried a login, so a missing Secret stops the pod visibly)."""
    clean = pod_tracking_uri(tracking_uri)
    login_required = clean != tracking_uri

    def secret(var: str) -> dict[str, Any]:
        optional = not (login_required and var in LOGIN_KEYS)
        ref = {"name": tracking_secret, "key": var, "optional": optional}
        return {"name": var, "valueFrom": {"secretKeyRef": ref}}

    return [{"name": "MLFLOW_TRACKING_URI", "value": clean}, *(secret(var) for var in CREDENTIAL_KEYS)]


def _pod_spec(container: dict[str, Any], extra_volumes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RAY_UID,
            "runAsGroup": RAY_GID,
            "fsGroup": RAY_GID,
        },
        "containers": [container],
        # Ray's object store lives in /dev/shm; the container default (64 MiB) is far too small.
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}, *extra_volumes],
    }


def _container(
    name: str,
    image: str,
    cpus: int,
    memory_gib: int,
    gpus: int,
    env: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    amounts = {"cpu": str(cpus), "memory": f"{memory_gib}Gi"}
    if gpus:
        amounts[GPU_RESOURCE] = str(gpus)
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "env": env,
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}, *mounts],
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    if ports:
        container["ports"] = ports
    return container


def build_ray_cluster_spec(
    image: str,
    shape: WorkerShape,
    *,
    max_workers: int,
    min_workers: int = 0,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    tracking_secret: str = DEFAULT_TRACKING_SECRET,
    head_cpus: int = 2,
    head_memory_gib: int = 8,
    labels: Mapping[str, str] | None = None,
    space_volume: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A RayCluster ``spec``: a head that runs no trials plus one autoscaled worker group.

    ``space_volume`` is ``(configmap name, mount path)`` to mount into the head pod.
    Credentials in ``tracking_uri`` are replaced by references to ``tracking_secret``.
    """
    if not 0 <= min_workers <= max_workers or max_workers < 1:
        raise ClusterError(f"need 0 <= min workers <= max workers and max >= 1, got {min_workers}..{max_workers}")
    env = _ray_env(tracking_uri, tracking_secret)
    head_mounts, head_volumes = [], []
    if space_volume:
        configmap, mount_path = space_volume
        head_mounts.append({"name": "search-space", "mountPath": mount_path, "readOnly": True})
        head_volumes.append({"name": "search-space", "configMap": {"name": configmap}})
    ports = [
        {"name": "gcs-server", "containerPort": 6379},
        {"name": "dashboard", "containerPort": 8265},
        {"name": "client", "containerPort": 10001},
    ]
    head = _container("ray-head", image, head_cpus, head_memory_gib, 0, env, head_mounts, ports)
    worker = _container("ray-worker", image, shape.cpus, shape.memory_gib, shape.gpus, env, [])
    worker_pod = _pod_spec(worker, [])
    if shape.gpus:
        worker_pod["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]

    return {
        "rayVersion": RAY_VERSION,
        "enableInTreeAutoscaling": True,
        "autoscalerOptions": {"upscalingMode": "Default", "idleTimeoutSeconds": 120},
        "headGroupSpec": {
            # No trials on the head: it runs the driver (the search) and Ray's control plane.
            "rayStartParams": {"num-cpus": "0"},
            "template": {
                "metadata": {"labels": dict(labels or {})},
                "spec": _pod_spec(head, head_volumes),
            },
        },
        "workerGroupSpecs": [
            {
                "groupName": shape.group_name,
                "replicas": min_workers,
                "minReplicas": min_workers,
                "maxReplicas": max_workers,
                "rayStartParams": {},
                "template": {"metadata": {"labels": dict(labels or {})}, "spec": worker_pod},
            }
        ],
    }


# --------------------------------------------------------------------------- RayJob


def shell_command(tokens: list[str]) -> str:
    for token in tokens:
        if not _SHELL_SAFE.match(token):
            raise ClusterError(
                f"{token!r} cannot be passed to the cluster safely: a job's entrypoint goes through a shell "
                "(two shells for a RayJob), so use only letters, digits and _ @ % + = : , . / -"
            )
    return " ".join(tokens)


def run_arguments(
    space_path: str, trials: int, tracking_uri: str, concurrency: int | None, storage: str | None = None
) -> list[str]:
    """``orchestrator run FILE --address auto ...``: the search itself, as the Ray job's driver."""
    args = ["orchestrator", "run", space_path, "--address", "auto", "--trials", str(trials)]
    args += ["--tracking-uri", tracking_uri]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    if storage:
        args += ["--storage", storage]
    return args


def build_entrypoint(bundle: SpaceBundle, opts: JobOptions, job_name: str) -> str:
    """The command Ray runs on the head node for this job."""
    trials = opts.trials or bundle.trials
    concurrency = opts.concurrency or bundle.concurrency
    tracking_uri = pod_tracking_uri(opts.tracking_uri)
    if opts.new_cluster:
        path = f"{SPACES_MOUNT}/{bundle.study}/{bundle.file_name}"
        return shell_command(run_arguments(path, trials, tracking_uri, concurrency, opts.storage))
    folder = f"{UNPACK_ROOT}/{job_name}/{bundle.study}"
    launcher = [
        "python",
        "-m",
        "orchestrator.cluster.bundle",
        "--into",
        folder,
        "--bundle",
        pack(bundle.files),
        "--",
    ]
    space = f"{folder}/{bundle.file_name}"
    return shell_command(launcher + run_arguments(space, trials, tracking_uri, concurrency, opts.storage))


def default_max_workers(shape: WorkerShape, concurrency: int | None) -> int:
    """Enough workers for ``concurrency`` trials at once; 2 when the space sets no concurrency."""
    if not concurrency:
        return 2
    return max(1, math.ceil(concurrency / shape.trials_per_worker))


def configmap_name(job_name: str) -> str:
    return f"{job_name}-space"


def build_configmap(bundle: SpaceBundle, job_name: str, namespace: str) -> dict[str, Any]:
    """The space files, one key per file, for the head pod of a job's own cluster."""
    if bundle.size > MAX_CONFIGMAP_BYTES:
        raise ClusterError(
            f"the space files are too large for a ConfigMap ({bundle.size} bytes, limit {MAX_CONFIGMAP_BYTES})"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(job_name),
            "namespace": namespace,
            "labels": {**job_labels(bundle), names.RAYJOB_LABEL: job_name},
            "annotations": job_annotations(bundle),
        },
        "data": dict(sorted(bundle.files.items())),
    }


def with_owner(configmap: dict[str, Any], rayjob: Mapping[str, Any]) -> dict[str, Any]:
    """``configmap`` owned by the created ``rayjob`` (deleted with it), if it has a uid."""
    uid = (rayjob.get("metadata") or {}).get("uid")
    if not uid:
        return configmap
    owner = {
        "apiVersion": API_VERSION,
        "kind": "RayJob",
        "name": rayjob["metadata"]["name"],
        "uid": uid,
        # No blockOwnerDeletion: it would need `update rayjobs/finalizers`, which the Role omits.
        "controller": False,
    }
    metadata = {**configmap["metadata"], "ownerReferences": [owner]}
    return {**configmap, "metadata": metadata}


def build_rayjob(bundle: SpaceBundle, opts: JobOptions, job_name: str) -> dict[str, Any]:
    """The RayJob body for ``bundle`` placed as ``opts`` says."""
    names.check_name(job_name, names.RAYJOB_NAME, "RayJob name")
    labels = job_labels(bundle)
    env_vars = {"MLFLOW_TRACKING_URI": pod_tracking_uri(opts.tracking_uri), "ORCHESTRATOR_RAYJOB": job_name}
    spec: dict[str, Any] = {
        "entrypoint": build_entrypoint(bundle, opts, job_name),
        "submissionMode": "K8sJobMode",
        "runtimeEnvYAML": yaml.safe_dump({"env_vars": env_vars}, sort_keys=True),
        # Ray job metadata: shown by `ray job list` and the Ray dashboard.
        "metadata": {
            "study": bundle.study,
            "version": str(bundle.version),
            "space_hash": bundle.short_hash,
        },
    }
    if opts.new_cluster:
        if not opts.image:
            raise ClusterError(
                "--new-cluster needs an image with the project installed: pass --image (see deploy/README.md)"
            )

        shape = worker_shape(bundle.cpu, bundle.gpu, opts.gpus_per_worker)
        concurrency = opts.concurrency or bundle.concurrency
        spec["shutdownAfterJobFinishes"] = True
        spec["ttlSecondsAfterFinished"] = opts.ttl_seconds
        spec["rayClusterSpec"] = build_ray_cluster_spec(
            opts.image,
            shape,
            min_workers=opts.min_workers,
            max_workers=opts.max_workers or default_max_workers(shape, concurrency),
            tracking_uri=opts.tracking_uri,
            tracking_secret=opts.tracking_secret,
            head_cpus=opts.head_cpus,
            head_memory_gib=opts.head_memory_gib,
            labels=labels,
            space_volume=(configmap_name(job_name), f"{SPACES_MOUNT}/{bundle.study}"),
        )
    else:
        spec["clusterSelector"] = {CLUSTER_SELECTOR_KEY: opts.cluster}
    return {
        "apiVersion": API_VERSION,
        "kind": "RayJob",
        "metadata": {
            "name": job_name,
            "namespace": opts.namespace,
            "labels": labels,
            "annotations": job_annotations(bundle),
        },
        "spec": spec,
    }


def build_submission(bundle: SpaceBundle, opts: JobOptions, suffix: str | None = None) -> Submission:
    """The RayJob (and, for a new cluster, its ConfigMap) that run ``bundle`` as ``opts`` say."""
    if opts.trials is not None and opts.trials < 1:
        raise ClusterError(f"--trials must be >= 1, got {opts.trials}")
    opts.check_names()
    name = names.rayjob_name(bundle.study, bundle.version, suffix or names.random_suffix())
    names.check_name(configmap_name(name), names.CONFIGMAP_RULE, "ConfigMap name")
    rayjob = build_rayjob(bundle, opts, name)
    configmap = build_configmap(bundle, name, opts.namespace) if opts.new_cluster else None
    return Submission(rayjob, configmap)


# --------------------------------------------------------------------------- YAML


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (space files in a ConfigMap) as readable ``|`` blocks, no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_presenter)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """Objects as one multi-document YAML stream, ready for ``kubectl apply -f -``."""
    return yaml.dump_all(objects, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, width=120)
