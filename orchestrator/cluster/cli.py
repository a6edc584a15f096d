"""``orchestrator submit`` and ``orchestrator jobs list|status|logs|cancel``.

The main command attaches ``submit`` and ``jobs`` lazily. Importing this module loads click
and the pure builders only; the ``kubernetes`` client is imported when a command contacts a
cluster (never for ``--help`` or ``submit --dry-run``), and torch, ray and mlflow never.
Errors print one line (``error: ...``) and exit with status 1, without a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from orchestrator.cluster.errors import ClusterError
from orchestrator.cluster.rayjob import CREDENTIAL_KEYS, DEFAULT_TRACKING_SECRET, DEFAULT_TRACKING_URI

if TYPE_CHECKING:
    from orchestrator.cluster.client import JobReport, KubeClient

F = TypeVar("F", bound=Callable[..., Any])
RESUME_PATCH = '\'{"spec":{"suspend":false}}\''


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


def _connect(namespace: str | None, kubeconfig: str | None, context: str | None) -> KubeClient:
    from orchestrator.cluster import names
    from orchestrator.cluster.client import KubeClient

    if namespace is not None:
        names.check_name(namespace, names.NAMESPACE_RULE, "--namespace")

    return KubeClient.connect(kubeconfig=kubeconfig, context=context, namespace=namespace)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]
    )


# --------------------------------------------------------------------------- submit


@click.command()
@click.argument("space_file", type=click.Path(path_type=Path, dir_okay=False))
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
    default=DEFAULT_TRACKING_URI,
    show_default=True,
    help="MLflow URI, as seen from the cluster; a user:password in it is never sent (see --tracking-secret)",
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
@click.option("--dry-run", is_flag=True, help="print the YAML of every object to create; contact no cluster")
@cluster_options
@click.pass_context
def submit(
    ctx: click.Context,
    space_file: Path,
    cluster: str | None,
    new_cluster: bool,
    image: str | None,
    trials: int | None,
    concurrency: int | None,
    tracking_uri: str,
    tracking_secret: str,
    max_workers: int | None,
    ttl_seconds: int,
    dry_run: bool,
    namespace: str | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Run the search in SPACE_FILE on Kubernetes as a KubeRay RayJob.

    The space file and every vN.yaml beside it travel with the job. With --new-cluster the
    job gets its own Ray cluster (head + autoscaled workers sized from the space's
    resources); with --cluster NAME it runs on an existing RayCluster.
    """
    from orchestrator.cluster.bundle import SpaceBundle
    from orchestrator.cluster.rayjob import JobOptions, build_submission, credentials_note, to_yaml

    if bool(cluster) == new_cluster:
        raise click.UsageError("choose where to run: --cluster NAME or --new-cluster", ctx)
    if cluster and image and ctx.get_parameter_source("image") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--image applies to --new-cluster; an existing cluster runs its own image", ctx)
    if cluster and ctx.get_parameter_source("tracking_secret") == click.core.ParameterSource.COMMANDLINE:
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


# --------------------------------------------------------------------------- jobs


@click.group()
def jobs() -> None:
    """List, inspect, follow and cancel searches running as RayJobs."""


@jobs.command("list")
@click.option("--all", "all_jobs", is_flag=True, help="every RayJob, not only those submitted by orchestrator")
@cluster_options
def jobs_list(all_jobs: bool, namespace: str | None, kubeconfig: str | None, context: str | None) -> None:
    """RayJobs in the namespace, oldest first."""
    from orchestrator.cluster.status import age, summarize

    with _errors():
        client = _connect(namespace, kubeconfig, context)
        found = [summarize(j) for j in client.list_jobs(all_jobs=all_jobs)]
    if not found:
        click.echo(f"no RayJobs in namespace {client.namespace}")
        return
    rows = [
        [
            s.name,
            s.study or "-",
            s.version or "-",
            s.space_hash or "-",
            s.cluster or "-",
            s.deployment_status,
            s.job_status,
            age(s.created),
        ]
        for s in found
    ]
    click.echo(_table(["NAME", "STUDY", "VERSION", "SPACE", "CLUSTER", "DEPLOYMENT", "JOB", "AGE"], rows))


def _print_report(report: JobReport) -> None:
    s = report.summary
    owned = "own cluster, deleted after the job" if s.new_cluster else "existing cluster"
    lines = [
        ("rayjob", f"{s.name} (namespace {s.namespace})"),
        ("study", f"{s.study} v{s.version} (space {s.space_hash})" if s.study else "-"),
        ("cluster", f"{s.cluster or '(not created yet)'} ({owned})"),
        (
            "deployment",
            s.deployment_status + (" (suspended)" if s.suspended and s.deployment_status != "Suspended" else ""),
        ),
        ("ray job", s.job_status),
        ("message", s.message),
        ("dashboard", s.dashboard),
        ("started", s.started),
        ("ended", s.ended),
    ]
    for key, value in lines:
        if value:
            click.echo(f"{key + ':':<12} {value}")
    if report.problems:
        click.echo("problems:")
        for p in report.problems:
            click.echo(f"  {'x' if p.fatal else '!'} {p}")
    for note in report.notes:
        click.echo(f"note: {note}")


@jobs.command("status")
@click.argument("name")
@cluster_options
def jobs_status(name: str, namespace: str | None, kubeconfig: str | None, context: str | None) -> None:
    """State of RayJob NAME, and what is wrong with its pods if anything is.

    Exit status 1 when a pod cannot start (for example its image cannot be pulled).
    """
    with _errors():
        report = _connect(namespace, kubeconfig, context).inspect(name)
    _print_report(report)
    if report.fatal:
        first = report.fatal[0]
        raise ClusterCommandError(f"RayJob {name} cannot start: {first}")


@jobs.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="keep printing as the search writes (Ctrl-C stops)")
@cluster_options
def jobs_logs(name: str, follow: bool, namespace: str | None, kubeconfig: str | None, context: str | None) -> None:
    """Output of RayJob NAME's search (the log of KubeRay's submitter pod)."""
    with _errors():
        stream = _connect(namespace, kubeconfig, context).logs(name, follow=follow)
        try:
            for text in stream:
                click.echo(text, nl=False)
        except KeyboardInterrupt:
            return


@jobs.command("cancel")
@click.argument("name")
@click.option("--delete", is_flag=True, help="delete the RayJob instead of suspending it")
@cluster_options
def jobs_cancel(name: str, delete: bool, namespace: str | None, kubeconfig: str | None, context: str | None) -> None:
    """Stop RayJob NAME: suspend it (its cluster is deleted, the RayJob kept), or --delete it."""
    with _errors():
        client = _connect(namespace, kubeconfig, context)
        outcome = client.cancel(name, delete=delete)
    ns = client.namespace
    messages = {
        "deleted": f"deleted RayJob {name}; KubeRay stops its Ray job and removes what it created",
        "suspended": (
            f"suspended RayJob {name}: KubeRay stops the Ray job and deletes its cluster.\n"
            f"  resume: kubectl patch rayjob {name} -n {ns} --type merge -p {RESUME_PATCH}\n"
            f"  remove: orchestrator jobs cancel {name} -n {ns} --delete"
        ),
        "already-suspended": f"RayJob {name} is already suspended (remove it with --delete)",
        "finished": f"RayJob {name} has already finished, nothing to stop (remove: --delete)",
    }
    click.echo(messages[outcome])
