"""``orchestrator submit`` and ``orchestrator jobs list|status|logs|cancel``, for two back ends.

``-n NAMESPACE`` (and ``--kubeconfig``/``--context``): KubeRay RayJobs on Kubernetes;
``--ray-address http://HEAD:8265``: any Ray cluster's Jobs API (``rayjobs``). The ``jobs`` commands see
either through one interface (``backend.JobBackend``).

The main command attaches ``submit`` and ``jobs`` lazily. Importing this module loads click
and the pure builders only; the ``kubernetes`` client is imported when a command contacts a
Kubernetes cluster (never for ``--help`` or ``submit --dry-run``), ray when one contacts a Ray
cluster, mlflow when ``jobs status|cancel`` read a search's run, and torch never.
Errors print one line (``error: ...``) and exit with status 1, without a traceback.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from orchestrator.cluster.errors import ClusterError
from orchestrator.cluster.rayjob import CREDENTIAL_KEYS, DEFAULT_TRACKING_SECRET, DEFAULT_TRACKING_URI

if TYPE_CHECKING:
    from orchestrator.cluster.backend import JobBackend
    from orchestrator.cluster.client import KubeClient

F = TypeVar("F", bound=Callable[..., Any])
KUBE_ONLY = ("cluster", "new_cluster", "image", "tracking_secret", "max_workers", "ttl_seconds")


class ClusterCommandError(click.ClickException):
    """A ``ClusterError`` (or an invalid space file) as a short message and exit status 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    from orchestrator.spaces import SpaceError

    try:
        yield
    except (ClusterError, SpaceError) as e:
        raise ClusterCommandError(str(e)) from None


def cluster_options(f: F) -> F:
    """``--namespace``, ``--kubeconfig`` and ``--context``, shared by every command here."""
    f = click.option("--context", metavar="NAME", help="kubeconfig context (default: the current context)")(f)
    f = click.option(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)",
    )(f)
    f = click.option(
        "--namespace",
        "-n",
        metavar="NS",
        envvar="ORCHESTRATOR_NAMESPACE",
        help="namespace (default: the context's namespace, else 'default')",
    )(f)
    return f


def backend_options(f: F) -> F:
    """Where the jobs are: ``--ray-address`` (a Ray cluster's Jobs API) or the Kubernetes options."""
    f = cluster_options(f)
    return click.option(
        "--ray-address",
        metavar="URL",
        help="a Ray cluster's Jobs API (http://HEAD:8265) instead of KubeRay on Kubernetes",
    )(f)


def with_backend(f: Callable[..., Any]) -> Callable[..., Any]:
    """``backend_options`` for a jobs command, handed to it as one argument ``backend``: a function that connects to
    the jobs' back end when called (inside the command's error handling)."""

    @functools.wraps(f)
    def command(
        *args: Any,
        ray_address: str | None,
        namespace: str | None,
        kubeconfig: str | None,
        context: str | None,
        **kwargs: Any,
    ) -> Any:
        ctx = click.get_current_context()
        return f(*args, backend=lambda: _backend(ctx, ray_address, namespace, kubeconfig, context), **kwargs)

    return backend_options(command)


def _backend(
    ctx: click.Context, ray_address: str | None, namespace: str | None, kubeconfig: str | None, context: str | None
) -> JobBackend:
    """The jobs of a Ray cluster (``--ray-address``) or of a Kubernetes namespace."""
    if ray_address:
        given = [p for p in ("namespace", "kubeconfig", "context") if _from_command_line(ctx, p)]
        if given:
            raise click.UsageError(_kube_only(["--" + p for p in given]), ctx)
        from orchestrator.cluster.rayjobs import RayJobs

        return RayJobs.connect(ray_address)
    from orchestrator.cluster.backend import KubeRayJobs

    return KubeRayJobs(_connect(namespace, kubeconfig, context))


def _kube_only(flags: list[str]) -> str:
    return f"{', '.join(flags)} {'is' if len(flags) == 1 else 'are'} for KubeRay on Kubernetes, not for --ray-address"


def _from_command_line(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


def _connect(namespace: str | None, kubeconfig: str | None, context: str | None) -> KubeClient:
    from orchestrator.cluster import names
    from orchestrator.cluster.client import KubeClient

    if namespace is not None:
        names.check_name(namespace, names.NAMESPACE_RULE, "--namespace")

    return KubeClient.connect(kubeconfig=kubeconfig, context=context, namespace=namespace)


# --------------------------------------------------------------------------- submit


@click.command()
@click.argument("space_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--ray-address",
    metavar="URL",
    help="submit to this Ray cluster's Jobs API (http://HEAD:8265), without Kubernetes",
)
@click.option("--cluster", metavar="NAME", help="run on this existing RayCluster (e.g. the one in deploy/)")
@click.option("--new-cluster", is_flag=True, help="give the job its own RayCluster, deleted after the job")
@click.option(
    "--image",
    envvar="ORCHESTRATOR_IMAGE",
    help="image with the project installed, for --new-cluster (default: $ORCHESTRATOR_IMAGE)",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    help="number of trials (default: the space's search.trials)",
)
@click.option("--concurrency", type=click.IntRange(min=1), help="trials at once (default: the space's)")
@click.option(
    "--tracking-uri",
    help=f"MLflow URI, as seen from the cluster (KubeRay default: {DEFAULT_TRACKING_URI}; required with "
    "--ray-address); a user:password in it is never sent",
)
@click.option(
    "--storage",
    metavar="PATH_OR_URI",
    help="where the search keeps its state on the cluster (a shared folder or s3://...; default: the cluster's "
    "$ORCHESTRATOR_HOME/ray_results)",
)
@click.option(
    "--tracking-secret",
    metavar="NAME",
    default=DEFAULT_TRACKING_SECRET,
    show_default=True,
    help=f"--new-cluster: Secret the Ray pods read MLflow credentials from (keys {', '.join(CREDENTIAL_KEYS)})",
)
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    help="--new-cluster: most worker pods (default: fits the concurrency)",
)
@click.option(
    "--ttl",
    "ttl_seconds",
    type=click.IntRange(min=0),
    default=600,
    show_default=True,
    help="--new-cluster: seconds to keep the cluster after the job ends",
)
@click.option("--dry-run", is_flag=True, help="print what would be submitted (YAML); contact no cluster")
@cluster_options
@click.pass_context
def submit(
    ctx: click.Context,
    space_file: Path,
    ray_address: str | None,
    cluster: str | None,
    new_cluster: bool,
    image: str | None,
    trials: int | None,
    concurrency: int | None,
    tracking_uri: str | None,
    storage: str | None,
    tracking_secret: str,
    max_workers: int | None,
    ttl_seconds: int,
    dry_run: bool,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Run the search in SPACE_FILE on a cluster: a Ray cluster's Jobs API (--ray-address), or KubeRay.

    The space file and every vN.yaml beside it travel with the job, which runs
    `orchestrator run FILE --address auto` on the cluster. With --ray-address the job goes to any
    Ray cluster (VMs, machines of your own) through its Jobs API. On Kubernetes it becomes a KubeRay
    RayJob: with --new-cluster the job gets its own Ray cluster (head + autoscaled workers sized from
    the space's resources); with --cluster NAME it runs on an existing RayCluster.
    """
    if ray_address:
        given = [p for p in (*KUBE_ONLY, "namespace", "kubeconfig", "context") if _from_command_line(ctx, p)]
        if given:
            flags = ["--" + p.replace("_", "-").removesuffix("-seconds") for p in given]
            raise click.UsageError(_kube_only(flags), ctx)
        if not tracking_uri:
            raise click.UsageError("--ray-address needs --tracking-uri: the MLflow server as the cluster reaches it")
        _submit_ray_job(space_file, ray_address, trials, concurrency, tracking_uri, storage, dry_run)
        return
    tracking_uri = tracking_uri or DEFAULT_TRACKING_URI
    from orchestrator.cluster.bundle import SpaceBundle
    from orchestrator.cluster.rayjob import JobOptions, build_submission, credentials_note, to_yaml

    if bool(cluster) == new_cluster:
        raise click.UsageError("choose where to run: --cluster NAME, --new-cluster or --ray-address URL", ctx)
    if cluster and image and _from_command_line(ctx, "image"):
        raise click.UsageError("--image applies to --new-cluster; an existing cluster runs its own image", ctx)
    if cluster and _from_command_line(ctx, "tracking_secret"):
        raise click.UsageError("--tracking-secret applies to --new-cluster; an existing cluster has its own", ctx)
    with _errors():
        bundle = SpaceBundle.from_path(space_file)
        client = None if dry_run else _connect(namespace, kubeconfig, context)
        opts = JobOptions(
            namespace=client.namespace if client else namespace or "default",
            cluster=cluster,
            image=image if new_cluster else None,
            trials=trials,
            concurrency=concurrency,
            tracking_uri=tracking_uri,
            max_workers=max_workers,
            ttl_seconds=ttl_seconds,
            tracking_secret=tracking_secret,
            storage=storage,
        )
        submission = build_submission(bundle, opts)
        note = credentials_note(opts)
        if note:
            click.echo(f"note: {note}", err=True)
        if client is None:
            click.echo(to_yaml(submission.objects), nl=False)
            return
        client.submit(submission)
    name, ns = submission.name, opts.namespace
    where = f"cluster {cluster}" if cluster else "a new cluster"
    click.echo(
        f"submitted RayJob {name} in namespace {ns}: {bundle.study} v{bundle.version} "
        f"(space {bundle.short_hash}), {opts.trials or bundle.trials} trials on {where}\n"
        f"  status:  orchestrator jobs status {name} -n {ns}\n"
        f"  logs:    orchestrator jobs logs {name} -n {ns} --follow\n"
        f"  cancel:  orchestrator jobs cancel {name} -n {ns}"
    )


def _submit_ray_job(
    space_file: Path,
    ray_address: str,
    trials: int | None,
    concurrency: int | None,
    tracking_uri: str,
    storage: str | None,
    dry_run: bool,
) -> None:
    """``submit --ray-address``: the search as a job of a Ray cluster's Jobs API (``rayjobs``)."""
    import yaml

    from orchestrator.cluster.bundle import SpaceBundle
    from orchestrator.cluster.rayjobs import RayJobOptions, RayJobs, build_ray_submission, check_address
    from orchestrator.cluster.rayjobs import credentials_note as ray_credentials_note
    from orchestrator.redaction import redact_uri

    with _errors():
        address = check_address(ray_address)
        bundle = SpaceBundle.from_path(space_file)
        opts = RayJobOptions(address, tracking_uri, trials, concurrency, storage)
        submission = build_ray_submission(bundle, opts)
        note = ray_credentials_note(opts)
        if note:
            click.echo(f"note: {note}", err=True)
        if dry_run:
            click.echo(yaml.safe_dump(submission.describe(address), sort_keys=False, width=120), nl=False)
            return
        # The token is checked when connecting: a refusal is one line, before anything is submitted.
        job = RayJobs.connect(address).submit(submission)
    shown = redact_uri(address)
    click.echo(
        f"submitted Ray job {job} to {shown}: {bundle.study} v{bundle.version} (space {bundle.short_hash}), "
        f"{submission.metadata['trials']} trials, tracking {submission.metadata['tracking_uri']}\n"
        f"  status:  orchestrator jobs status {job} --ray-address {shown}\n"
        f"  logs:    orchestrator jobs logs {job} --ray-address {shown} --follow\n"
        f"  cancel:  orchestrator jobs cancel {job} --ray-address {shown}"
    )


# --------------------------------------------------------------------------- jobs


@click.group()
def jobs() -> None:
    """List, inspect, follow and cancel searches running as jobs: -n NS (KubeRay) or --ray-address URL."""


@jobs.command("list")
@click.option("--all", "all_jobs", is_flag=True, help="every job, not only those submitted by orchestrator")
@with_backend
def jobs_list(all_jobs: bool, backend: Callable[[], JobBackend]) -> None:
    """Jobs in the namespace or on the Ray cluster, oldest first."""
    with _errors():
        table = backend().list_jobs(all_jobs=all_jobs)
    click.echo(table.text())


@jobs.command("status")
@click.argument("name")
@with_backend
def jobs_status(name: str, backend: Callable[[], JobBackend]) -> None:
    """State of job NAME (and of its search's MLflow run), and what is wrong if anything is.

    Exit status 1 when the job cannot start (for example its image cannot be pulled).
    """
    with _errors():
        report = backend().status(name)
    for line in report.lines():
        click.echo(line)
    if report.fatal:
        raise ClusterCommandError(f"{report.kind} {name} cannot start: {report.fatal[0]}")


@jobs.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="keep printing as the search writes (Ctrl-C stops)")
@with_backend
def jobs_logs(name: str, follow: bool, backend: Callable[[], JobBackend]) -> None:
    """Output of job NAME's search (its driver's log; for a RayJob, KubeRay's submitter pod)."""
    with _errors():
        stream = backend().logs(name, follow=follow)
        try:
            for text in stream:
                click.echo(text, nl=False)
        except KeyboardInterrupt:
            return


@jobs.command("cancel")
@click.argument("name")
@click.option("--delete", is_flag=True, help="also delete the job (a RayJob: instead of suspending it)")
@with_backend
def jobs_cancel(name: str, delete: bool, backend: Callable[[], JobBackend]) -> None:
    """Stop job NAME; its search ends its MLflow run KILLED with the reason.

    A RayJob is suspended (its cluster is deleted, the RayJob kept) or, with --delete, deleted. A Ray job
    is stopped (SIGTERM to the search, which closes its run; a run left RUNNING is ended here), and with
    --delete its record removed from the cluster.
    """
    with _errors():
        message = backend().cancel(name, delete=delete)
    click.echo(message)
