"""The team's tracking server for the tests: one ``TeamStack`` for the whole session, and its users.

``team`` starts exactly what ``deploy/team-server/start.sh`` starts (``orchestrator.tracking.team_server``):
PostgreSQL from the machine's own programs, moto's S3 in this process, ``mlflow server --app-name basic-auth``
with proxied artifacts. The admin creates two users with MLflow's own auth client: ``alice`` and ``bob``, each
with a random password (the tests plant them and look for them). Every secret of the stack is random too.

Tests that stop a part (``team.stack.down("postgres")``) start it again before they end; studies are named per
test, so the session's tests share the stack without seeing each other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.tracking.team_server import TeamServerError, TeamStack, postgres_bin

USERS = ("alice", "bob")


@dataclass
class Team:
    """The running stack, its users' passwords, and the ways in: login URIs, environments, MLflow clients."""

    stack: TeamStack
    passwords: dict[str, str]

    @property
    def uri(self) -> str:
        """The tracking URI, without a login (what users put in MLFLOW_TRACKING_URI)."""
        return self.stack.uri

    def login_uri(self, user: str) -> str:
        """The URI with ``user``'s login, for MLflow's clients only: an ``MlflowStore`` keeps a URI's login for the
        URI without it (``keep_login``), so in-process stores log in through MLflow's variables (``env``)."""
        return self.stack.server.login_uri(user, self.passwords[user])

    def env(self, user: str, **extra: str) -> dict[str, str]:
        """This process's environment as ``user``'s shell would have it: the server and the login, nothing else."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "AWS_"))}
        return {
            **base,
            "MLFLOW_TRACKING_URI": self.uri,
            "MLFLOW_TRACKING_USERNAME": user,
            "MLFLOW_TRACKING_PASSWORD": self.passwords[user],
            **extra,
        }

    def client(self, user: str) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.login_uri(user))

    def admin_client(self) -> Any:
        """MLflow's own basic-auth client, as the admin (an independent reader of what ``access`` did)."""
        from mlflow.server import get_app_client

        return get_app_client("basic-auth", tracking_uri=self.stack.admin_uri)

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        """Every object in the bucket under ``prefix``, by key (read with boto3, the store's own keys)."""
        from orchestrator.tracking.team_server import BUCKET

        s3 = self.stack.s3_client()
        keys = [
            o["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
            for o in page.get("Contents", [])
        ]
        return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def require_postgres() -> None:
    """Skip where PostgreSQL's programs are missing; fail in CI, which must run these tests (.ci/run installs it)."""
    try:
        postgres_bin()
    except TeamServerError as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the team server's tests: {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """The team stack, started once for the session (about 20 s here: initdb, two migrated databases)."""
    require_postgres()
    # PostgreSQL runs as the 'postgres' user when the tests run as root: its folder must be one that user can
    # reach, so not under pytest's private temporary folder.
    pg_folder = Path(tempfile.mkdtemp(prefix="orchestrator-pg-"))
    stack = TeamStack(tmp_path_factory.mktemp("team"), postgres_folder=pg_folder, durable=False)
    try:
        with stack:
            admin = Team(stack, {}).admin_client()
            passwords = {user: f"{user}-pw-{uuid.uuid4().hex}" for user in USERS}
            for user, password in passwords.items():
                admin.create_user(user, password)
            yield Team(stack, passwords)
    finally:
        shutil.rmtree(pg_folder, ignore_errors=True)
