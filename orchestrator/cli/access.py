"""``orchestrator access STUDY``: who may do what with a study on a team server (``orchestrator.tracking.access``).

Listed lazily by the command group (``orchestrator.cli.COMMANDS``); it imports neither ray nor torch.
"""

from __future__ import annotations

import click

from orchestrator.settings import default_tracking_uri
from orchestrator.tracking.access import PERMISSIONS, Held

from . import options


@click.command()
@click.argument("study")
@click.option("--user", help="The user to grant --permission to; without it: list who holds what.")
@click.option(
    "--permission",
    type=click.Choice(PERMISSIONS),
    help="READ (look), EDIT (search, train, register, refine) or MANAGE (also grant).",
)
@options.tracking_uri()
def access(study: str, user: str | None, permission: str | None, tracking_uri: str | None) -> None:
    """List, or with --user and --permission set, the permission on STUDY: its experiment and every model
    registered from it (STUDY, STUDY-<class>), on a tracking server with logins (`mlflow server --app-name
    basic-auth`). Granting needs MANAGE on the study; another user's permissions are listed to admins only."""
    from orchestrator.tracking import access as acc
    from orchestrator.tracking.mlflow_store import open_store

    if (user is None) != (permission is None):
        raise click.UsageError("give --user and --permission together (or neither, to list)")
    store = open_store(tracking_uri or default_tracking_uri())
    if user is not None and permission is not None:
        resources = acc.grant(store, study, user, permission)
        click.echo(f"granted {user} {permission} on study {study}: " + ", ".join(r.describe() for r in resources))
        held = acc.permissions(store, study, [user])
        if held:
            click.echo("read back: " + _row(held))
        else:
            click.echo(f"(only an admin or {user} can read it back: `orchestrator access {study}` as {user})")
        return
    held = acc.permissions(store, study)
    if held is None:
        click.echo(f"{store.uri}: no logins on this store, so no permissions: everyone who reaches it may do anything")
        return
    resources = acc.study_resources(store, study)
    if not resources:
        raise click.ClickException(f"no study {study!r} on the tracking server yet: its first search creates it")
    click.echo(f"study {study}: " + ", ".join(r.describe() for r in resources))
    for name in dict.fromkeys(h.user for h in held):
        click.echo(f"  {name}: " + _row([h for h in held if h.user == name]))
    if len({h.user for h in held}) == 1:
        click.echo("  (other users' permissions are listed to admins only)")


def _row(held: list[Held]) -> str:
    if any(h.admin for h in held):
        return "admin (may do anything)"
    return ", ".join(f"{h.resource.describe()} {h.permission}" for h in held)
