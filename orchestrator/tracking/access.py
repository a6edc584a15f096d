"""Per-study access on a team server with MLflow's logins (``mlflow server --app-name basic-auth``).

A study is an experiment (``<study>``) plus the models registered from it (``<study>``, and ``<study>-<class>``
from ``orchestrator train --per-class``); granting a teammate one of them by hand leaves the others as they were.
``grant`` sets the same permission on all of them, ``permissions`` reads each back, and ``require`` checks, before a
command runs anything, that the current user holds what it needs on every one: EDIT to search, train, register or
write a refined version (``require_edit``), MANAGE to grant (``require_manage``). A user who falls short gets one line:
who they are, the study, the permission they hold and the one needed.

A server without logins (no basic-auth app), a database or a folder store has no permissions: every check passes.
An admin passes every check. A study that has no experiment yet passes too: whoever creates it owns it (MLflow
gives its creator MANAGE).

The calls are MLflow's basic-auth REST endpoints (``mlflow.server.auth.routes``: a test keeps the paths here equal
to them), sent with MLflow's own request helpers and the login the tracking store uses. MLflow's
``AuthServiceClient`` (``mlflow.server.get_app_client("basic-auth")``) sends the same requests, but importing it
imports the whole auth server (about 4 s and a deprecation warning on every search start).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from orchestrator.errors import first_line

from .mlflow_store import (
    FORBIDDEN,
    MlflowStore,
    TrackingError,
    describe_uri,
    http_status,
    with_login,
)

# What ``orchestrator access`` grants; MLflow knows USE and DENY too (a held USE or DENY is shown as it is).
PERMISSIONS = ("READ", "EDIT", "MANAGE")
RANK = {"DENY": -1, "NO_PERMISSIONS": 0, "READ": 1, "USE": 2, "EDIT": 3, "MANAGE": 4}
EDIT, MANAGE = "EDIT", "MANAGE"
EXPERIMENT, REGISTERED_MODEL = "experiment", "registered_model"

# MLflow's basic-auth endpoints (mlflow.server.auth.routes; tests/tracking/test_access.py keeps them equal).
CURRENT_USER = "/api/2.0/mlflow/users/current"
LIST_USERS = "/api/2.0/mlflow/users/list"
GET_USER_PERMISSION = "/api/3.0/mlflow/users/permissions/get"
GRANT_USER_PERMISSION = "/api/3.0/mlflow/users/permissions/grant"
REVOKE_USER_PERMISSION = "/api/3.0/mlflow/users/permissions/revoke"


class AccessDenied(TrackingError):
    """The current user lacks the permission a command needs on a study (one line, before anything runs)."""


@dataclass(frozen=True)
class Resource:
    """One MLflow object of a study: its experiment (``key`` = the experiment id) or a registered model (the name)."""

    kind: str  # EXPERIMENT or REGISTERED_MODEL
    name: str
    key: str

    def describe(self) -> str:
        return f"experiment {self.name!r}" if self.kind == EXPERIMENT else f"registered model {self.name!r}"


@dataclass(frozen=True)
class Identity:
    """Who the tracking server says the client is."""

    username: str
    is_admin: bool


@dataclass(frozen=True)
class Held:
    """The permission ``user`` holds on ``resource`` (what the server resolves: a grant, or its default)."""

    user: str
    resource: Resource
    permission: str
    admin: bool = False  # an admin may do anything, whatever ``permission`` says


def is_server(uri: str) -> bool:
    return urlparse(uri).scheme.lower() in ("http", "https")


def _rank(permission: str) -> int:
    return RANK.get(permission, 0)


class AuthClient:
    """The basic-auth endpoints of the server at ``uri`` (with the login the tracking store connects with)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def _call(self, endpoint: str, method: str, **kwargs: Any) -> dict[str, Any]:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        response = http_request(get_default_host_creds(with_login(self.uri)), endpoint, method, **kwargs)
        response = verify_rest_response(response, endpoint)
        return response.json() if response.content else {}

    def current_user(self) -> Identity | None:
        """The logged-in user; None for a server without logins (it has no such endpoint)."""
        try:
            user = self._call(CURRENT_USER, "GET")["user"]
        except Exception as e:
            if http_status(e) == 404 or getattr(e, "error_code", "") == "ENDPOINT_NOT_FOUND":
                return None
            raise
        return Identity(str(user["username"]), bool(user.get("is_admin")))

    def users(self) -> dict[str, bool]:
        """Every user the server lists, and whether each is an admin."""
        listed = self._call(LIST_USERS, "GET").get("users", [])
        return {str(u["username"]): bool(u.get("is_admin")) for u in sorted(listed, key=lambda u: u["username"])}

    def permission(self, user: str, resource: Resource) -> str:
        """What ``user`` may do with ``resource``, as the server decides it for a real request."""
        params = {"username": user, "resource_type": resource.kind, "resource_id": resource.key}
        return str(self._call(GET_USER_PERMISSION, "GET", params=params)["permission"])

    def grant(self, user: str, resource: Resource, permission: str) -> None:
        """Give ``user`` exactly ``permission`` on ``resource``. A permission granted before is revoked first (MLflow
        refuses a second grant), so for a moment the user holds the server's default permission."""
        body = {"username": user, "resource_type": resource.kind, "resource_id": resource.key}
        try:
            self._call(GRANT_USER_PERMISSION, "POST", json={**body, "permission": permission})
        except Exception as e:
            if getattr(e, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
            self._call(REVOKE_USER_PERMISSION, "POST", json=body)
            self._call(GRANT_USER_PERMISSION, "POST", json={**body, "permission": permission})


def study_resources(store: MlflowStore, study: str) -> list[Resource]:
    """The study's experiment and every model registered from it: ``<study>``, and each ``<study>-<suffix>``
    whose versions were logged by runs of the study's experiment (another study may be named ``<study>-x``)."""
    experiment = store.experiment_id(study, create=False)
    if experiment is None:
        return []
    found = [Resource(EXPERIMENT, study, experiment)]
    for model in store.client.search_registered_models(filter_string=f"name LIKE '{study}%'"):
        if model.name == study or (model.name.startswith(f"{study}-") and _from(store, model, experiment)):
            found.append(Resource(REGISTERED_MODEL, model.name, model.name))
    return sorted(found, key=lambda r: (r.kind != EXPERIMENT, r.name))


def _from(store: MlflowStore, model: Any, experiment: str) -> bool:
    """The registered ``model`` has a version logged by a run of ``experiment`` (or no version to tell by)."""
    versions = list(model.latest_versions or [])
    if not versions:
        return True
    runs = {v.run_id for v in versions if v.run_id}
    return any(store.client.get_run(run).info.experiment_id == experiment for run in runs)


def require(store: MlflowStore, study: str, needed: str, what: str) -> Identity | None:
    """Raise ``AccessDenied`` unless the current user holds ``needed`` on every resource of ``study``; ``what``
    names the command in the message. Returns who the user is (None: a store without logins)."""
    if not is_server(store.uri):
        return None
    client = AuthClient(store.uri)
    me = client.current_user()
    if me is None or me.is_admin:
        return me
    for resource in study_resources(store, study):
        held = client.permission(me.username, resource)
        if _rank(held) < _rank(needed):
            raise AccessDenied(
                f"user {me.username!r} holds {held} on study {study!r} ({resource.describe()}) at "
                f"{describe_uri(store.uri)}; {what} needs {needed}: ask a user with MANAGE on it "
                f"to run `orchestrator access {study} --user {me.username} --permission {needed}`"
            )
    return me


def require_edit(store: MlflowStore, study: str, what: str) -> None:
    """Before ``what`` (a search, a train, a refine that writes, a registration) runs anything: EDIT on ``study``."""
    require(store, study, EDIT, what)


def require_manage(store: MlflowStore, study: str) -> None:
    """Before granting anything on ``study``: MANAGE on each of its resources."""
    require(store, study, MANAGE, "granting access")


def grant(store: MlflowStore, study: str, user: str, permission: str) -> list[Resource]:
    """Give ``user`` ``permission`` on the experiment and every registered model of ``study``; returns them."""
    if permission not in PERMISSIONS:
        raise TrackingError(f"permission {permission!r}: give one of {', '.join(PERMISSIONS)}")
    if not is_server(store.uri):
        raise TrackingError(f"{describe_uri(store.uri)} is not a tracking server: permissions live on one with logins")
    require_manage(store, study)
    resources = study_resources(store, study)
    if not resources:
        raise TrackingError(f"no study {study!r} at {describe_uri(store.uri)} yet: its first search creates it")
    client = AuthClient(store.uri)
    for resource in resources:
        try:
            client.grant(user, resource, permission)
        except Exception as e:
            raise TrackingError(f"granting {user!r} {permission} on {resource.describe()}: {first_line(e)}") from None
    return resources


def permissions(store: MlflowStore, study: str, users: Iterable[str] | None = None) -> list[Held] | None:
    """What each of ``users`` (default: every user the server lists) holds on each resource of ``study``.

    None where the server has no logins. Another user's permissions are readable by an admin only: for anyone
    else the list holds their own."""
    if not is_server(store.uri):
        return None
    client = AuthClient(store.uri)
    me = client.current_user()
    if me is None:
        return None
    admins = client.users() if me.is_admin else {me.username: False}
    held = []
    for user in admins if users is None else users:
        for resource in study_resources(store, study):
            try:
                held.append(Held(user, resource, client.permission(user, resource), admins.get(user, False)))
            except Exception as e:
                if http_status(e) != FORBIDDEN:
                    raise
    return held
