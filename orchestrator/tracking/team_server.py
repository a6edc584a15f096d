"""The team's tracking server on one machine, as ``deploy/k8s`` runs it: PostgreSQL, an S3 store, MLflow with logins.

Three processes (or two and a thread), started in order and stopped together, newest first:

* **PostgreSQL** from the machine's own programs (``initdb``, ``pg_ctl``; Debian's ``postgresql`` package): a
  cluster in ``<root>/postgres`` listening on 127.0.0.1 only, the role ``mlflow`` owning the databases ``mlflow``
  (runs, metrics, registered models) and ``mlflow_auth`` (users and permissions). PostgreSQL refuses to run as
  root, so as root its programs run as the ``postgres`` user (the folders are handed to it).
* **An S3-compatible store**: ``moto``'s S3 on loopback, in this process (a thread), holding the bucket
  ``mlflow``; or an existing store (``s3_endpoint``: MinIO, AWS S3), which this module then only uses.
  moto keeps objects in memory: they live as long as this process, which is what tests need (stopping and
  starting the S3 server keeps the bucket, as an outage of a real store does) and not what a team's records need.
* **``mlflow server --app-name basic-auth``** with ``--serve-artifacts --artifacts-destination s3://mlflow/artifacts``:
  the arguments of ``deploy/k8s/base/mlflow.yaml`` plus its ``mlflow-basic-auth`` component
  (``tests/team/test_team_manifest.py`` keeps the two equal). Clients talk to the server only: they need a login,
  never the database's password or the bucket's keys.

Secrets are given to the processes through their environment and a mode-0600 file (the auth database's URI),
never on a command line (``ps`` shows those to every local user). ``python -m orchestrator.tracking.team_server``
(``deploy/team-server/start.sh``) runs the stack until SIGTERM or Ctrl-C; the tests start the same class.

Server-side packages are the extra ``orchestrator[server]``; a missing one is one line naming it.
"""

from __future__ import annotations

import argparse
import configparser
import importlib.util
import io
import logging
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from orchestrator.errors import OrchestratorError

from .server import LOOPBACK, LoopbackMlflowServer, free_loopback_port

SERVER_EXTRA = "orchestrator[server]"
# module -> the package that provides it, for the one-line error when the extra is missing
SERVER_MODULES = {"flask_wtf": "mlflow[auth]", "psycopg": "psycopg[binary]", "boto3": "boto3", "moto": "moto[s3]"}

# The names deploy/k8s uses (base/mlflow.yaml, base/secrets.example.env, components/mlflow-basic-auth).
BUCKET = "mlflow"
ARTIFACTS_DESTINATION = f"s3://{BUCKET}/artifacts"
DB_SCHEME = "postgresql+psycopg"  # psycopg 3, named: SQLAlchemy 2.1's default for postgresql://, 2.0's psycopg2
DB_USER = "mlflow"
DB_NAME = "mlflow"
AUTH_DB_NAME = "mlflow_auth"
ADMIN_USER = "admin"
DEFAULT_PERMISSION = "READ"  # what a logged-in user may do where nobody granted more (basic_auth.example.ini)
# Seconds a worker of the server trusts a login it checked: checking costs a scrypt hash (0.1-0.2 s of CPU here) on
# every request otherwise, 3 s per logged run and 9 s per warm start on this machine (bench.warmstart). A changed or
# deleted password is seen at once by the worker that changed it, by the others within this time.
AUTH_CACHE_TTL_S = 60
REGION = "us-east-1"
SUPERUSER = "postgres"  # the cluster's superuser: reachable only through its private socket folder
AUTH_INI = "basic_auth.ini"
SECRETS_FILE = "secrets.env"
PG_START_TIMEOUT_S = 60
MIN_PASSWORD_LENGTH = 12  # MLflow's basic auth refuses shorter passwords


class TeamServerError(OrchestratorError):
    """The team stack cannot start: a missing program or package, a folder the database cannot use, a failure."""


def require_server_packages(modules: Mapping[str, str] = SERVER_MODULES) -> None:
    """Raise ``TeamServerError`` in one line for the first server-side package that is not installed."""
    for module, package in modules.items():
        if importlib.util.find_spec(module) is None:
            raise TeamServerError(
                f"the team server needs the Python package {package!r} (module {module}), which is not installed: "
                f"pip install '{SERVER_EXTRA}'"
            )


# --------------------------------------------------------------------------- secrets


@dataclass(frozen=True, repr=False)
class TeamSecrets:
    """What the stack's processes share and nobody else sees: the database's, the bucket's and the admin's."""

    db_password: str
    s3_access_key: str
    s3_secret_key: str
    admin_password: str
    flask_secret_key: str

    def __repr__(self) -> str:
        return "TeamSecrets(***)"

    @classmethod
    def generate(cls) -> TeamSecrets:
        """Random values: letters and digits only (they go into URIs unquoted elsewhere)."""
        return cls(
            db_password=secrets.token_hex(16),
            s3_access_key="AK" + secrets.token_hex(9).upper(),
            s3_secret_key=secrets.token_hex(20),
            admin_password=secrets.token_hex(16),
            flask_secret_key=secrets.token_hex(24),
        )

    @classmethod
    def load_or_create(cls, path: Path) -> TeamSecrets:
        """The secrets kept in ``path`` (``NAME=value`` lines, mode 0600), made and written there the first time."""
        if path.exists():
            values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
            try:
                return cls(**{f.name: values[f.name.upper()] for f in fields(cls)})
            except KeyError as e:
                raise TeamServerError(f"{path}: no {e.args[0]}= line; remove the file to make new secrets") from None
        made = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{field.name.upper()}={getattr(made, field.name)}\n" for field in fields(cls))
        return made

    def values(self) -> dict[str, str]:
        """Every secret by name (for tests that look for them where they must not be)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _private_file(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (created so from the start, never wider)."""
    with suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs: where ``pg_ctl`` on PATH lives, else Debian's newest."""
    found = shutil.which("pg_ctl")
    if found is not None:
        folder = Path(found).resolve().parent
        if (folder / "initdb").exists():
            return folder
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    raise TeamServerError(
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed: apt-get install postgresql, "
        "or put their folder on PATH"
    )


def _as_user() -> str | None:
    """The account PostgreSQL's programs run as: ``postgres`` when this process is root (it refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise TeamServerError(
            f"PostgreSQL refuses to run as root, and there is no '{SUPERUSER}' user to run it as: "
            f"start this as another user, or create one (useradd --system {SUPERUSER})"
        ) from None
    return SUPERUSER


class Postgres:
    """A PostgreSQL cluster in ``folder`` on ``127.0.0.1:port``: ``init`` once, then ``start`` / ``stop`` any time."""

    def __init__(self, folder: Path, password: str, *, port: int | None = None, durable: bool = True) -> None:
        """``durable=False`` turns off fsync (tests: a lost machine may lose the last writes, a stop never does)."""
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.sockets = self.folder / "run"
        self.log_path = self.folder / "postgres.log"
        self.port = port if port is not None else free_loopback_port()
        self.durable = durable
        self._password = password
        self._user = _as_user()
        self._bin = postgres_bin()

    def uri(self, database: str = DB_NAME, *, login: bool = True) -> str:
        """The SQLAlchemy URI of ``database`` as the role ``mlflow`` (without the login: for messages)."""
        auth = f"{DB_USER}:{quote(self._password, safe='')}@" if login else ""
        return f"{DB_SCHEME}://{auth}{LOOPBACK}:{self.port}/{database}"

    @property
    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            [str(self._bin / args[0]), *args[1:]],
            user=self._user,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd="/",
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-1500:]
            raise TeamServerError(f"{args[0]} failed (exit {done.returncode}) in {self.folder}: {tail}")

    def init(self) -> Postgres:
        """Create the cluster once (superuser ``postgres``, local socket only, scram passwords over TCP)."""
        if self.initialized:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self._user is not None:
            _hand_over(self.folder, self._user)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-instructions",
        )
        return self

    def start(self) -> Postgres:
        """Start the server and wait until it accepts connections; the role and the databases exist afterwards."""
        options = [
            f"-c listen_addresses={LOOPBACK}",
            f"-p {self.port}",
            f"-c unix_socket_directories={shlex.quote(str(self.sockets))}",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(PG_START_TIMEOUT_S),
            "-o",
            " ".join(options),
            "start",
            timeout=PG_START_TIMEOUT_S + 30,
        )
        self._ensure_databases()
        return self

    def stop(self) -> None:
        """Stop it (``fast``: open connections are cut, everything committed is kept); nothing if it is not running."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def dump(self, database: str = DB_NAME) -> str:
        """``pg_dump`` of ``database`` as SQL text (a backup; the tests search it for secrets)."""
        done = subprocess.run(
            [str(self._bin / "pg_dump"), "-h", str(self.sockets), "-p", str(self.port), "-U", SUPERUSER, database],
            user=self._user,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd="/",
        )
        if done.returncode != 0:
            raise TeamServerError(f"pg_dump {database} failed (exit {done.returncode}): {done.stderr.strip()[-1500:]}")
        return done.stdout

    def _ensure_databases(self) -> None:
        """The role ``mlflow`` with its password and the two databases it owns (made once, kept after)."""
        import psycopg
        from psycopg import sql

        # autocommit: CREATE DATABASE cannot run inside a transaction
        connect = {"host": str(self.sockets), "port": self.port, "user": SUPERUSER, "dbname": "postgres"}
        with psycopg.connect(**connect, autocommit=True) as con, con.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DB_USER,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            role = sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}")
            cur.execute(role.format(sql.Identifier(DB_USER), sql.Literal(self._password)))
            for database in (DB_NAME, AUTH_DB_NAME):
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cur.fetchone() is None:
                    cur.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(DB_USER))
                    )


def _hand_over(folder: Path, user: str) -> None:
    """Give ``folder`` (and what is in it) to ``user``, and check that ``user`` can reach it at all."""
    entry = pwd.getpwnam(user)
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    folder.chmod(0o700)
    for parent in folder.resolve().parents:
        if parent.stat().st_mode & 0o001 == 0 and parent.stat().st_uid != entry.pw_uid:
            raise TeamServerError(
                f"{folder}: PostgreSQL runs as '{user}', which cannot enter {parent} (mode "
                f"{parent.stat().st_mode & 0o777:o}); put its folder where '{user}' can reach it (under /srv, /tmp)"
            )


# --------------------------------------------------------------------------- S3


class MotoS3:
    """moto's S3 on ``127.0.0.1:port`` in this process. ``stop`` then ``start`` keeps the objects (moto's state is
    this process's), so a stop is an outage of the store, not its loss."""

    def __init__(self, access_key: str, secret_key: str, *, port: int | None = None) -> None:
        self.port = port if port is not None else free_loopback_port()
        self.endpoint = f"http://{LOOPBACK}:{self.port}"
        self._keys = (access_key, secret_key)
        self._server: Any = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> MotoS3:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
        if self._server is None:
            self._server = ThreadedMotoServer(ip_address=LOOPBACK, port=self.port, verbose=False)
            self._server.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def client(self) -> Any:
        """A boto3 S3 client of this store."""
        return s3_client(self.endpoint, *self._keys)


def s3_client(endpoint: str, access_key: str, secret_key: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
    )


def ensure_bucket(client: Any, bucket: str = BUCKET) -> None:
    """Create ``bucket`` unless it exists."""
    names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in names:
        client.create_bucket(Bucket=bucket)


# --------------------------------------------------------------------------- MLflow


def server_arguments() -> list[str]:
    """``mlflow server``'s arguments that make it the team's server (deploy/k8s: base/mlflow.yaml and the
    mlflow-basic-auth component); the network ones (host, port, workers, allowed hosts) are each place's own."""
    return ["--app-name=basic-auth", "--serve-artifacts", f"--artifacts-destination={ARTIFACTS_DESTINATION}"]


SERVER_ENVIRONMENT = (  # the variables the server reads its stores and secrets from, as the manifests set them
    "MLFLOW_BACKEND_STORE_URI",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "MLFLOW_AUTH_CONFIG_PATH",
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)


class TeamMlflowServer(LoopbackMlflowServer):
    """``mlflow server --app-name basic-auth`` on PostgreSQL with artifacts proxied to S3 (``server_arguments``)."""

    def __init__(
        self,
        root: Path,
        *,
        backend_store_uri: str,
        auth_database_uri: str,
        s3_endpoint: str,
        team_secrets: TeamSecrets,
        host: str = LOOPBACK,
        port: int | None = None,
        workers: int = 1,
    ) -> None:
        super().__init__(root, port=port, workers=workers, backend_store_uri=backend_store_uri)
        self.host = host
        self.uri = f"http://{LOOPBACK if host in ('0.0.0.0', '::') else host}:{self.port}"
        self._auth_database_uri = auth_database_uri
        self._s3_endpoint = s3_endpoint
        self._secrets = team_secrets

    def command(self) -> list[str]:
        """The command line: no secret in it (the store URIs and keys travel in ``environment()``)."""
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--workers={self.workers}",
            *server_arguments(),
            f"--allowed-hosts={LOOPBACK},{LOOPBACK}:{self.port},localhost,localhost:{self.port}"
            + ("" if self.host in (LOOPBACK, "0.0.0.0", "::") else f",{self.host},{self.host}:{self.port}"),
        ]

    def auth_config_path(self) -> Path:
        return self.root / AUTH_INI

    def environment(self) -> dict[str, str]:
        """The stores and secrets, as deploy/k8s gives them (``SERVER_ENVIRONMENT``); writes the auth config."""
        config = configparser.ConfigParser()
        config["mlflow"] = {
            "default_permission": DEFAULT_PERMISSION,
            "database_uri": self._auth_database_uri,
            "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
            "auth_cache_ttl_seconds": str(AUTH_CACHE_TTL_S),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        text = io.StringIO()
        config.write(text)
        ini = _private_file(self.auth_config_path(), text.getvalue())  # it holds the auth database's password
        values = {
            "MLFLOW_BACKEND_STORE_URI": self.backend_store_uri,
            "AWS_ACCESS_KEY_ID": self._secrets.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self._secrets.s3_secret_key,
            "MLFLOW_S3_ENDPOINT_URL": self._s3_endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN_USER,
            "MLFLOW_AUTH_ADMIN_PASSWORD": self._secrets.admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self._secrets.flask_secret_key,
        }
        assert set(values) == set(SERVER_ENVIRONMENT)
        return values

    def login_uri(self, user: str, password: str) -> str:
        """The server's URI with a login in it (for this process's own clients; never printed)."""
        return self.uri.replace("http://", f"http://{quote(user, safe='')}:{quote(password, safe='')}@", 1)

    @property
    def admin_uri(self) -> str:
        return self.login_uri(ADMIN_USER, self._secrets.admin_password)


# --------------------------------------------------------------------------- the stack


class TeamStack:
    """PostgreSQL, S3 and the MLflow server, started in that order and stopped together (newest first).

    ``root`` holds the database cluster (``root/postgres``), the server's log and its auth config; the secrets are
    ``team_secrets`` (the script keeps them in ``root/secrets.env``, mode 0600). Each part has its own ``stop`` /
    ``start`` for outages: ``postgres``, ``s3`` (moto only), ``server``.
    """

    def __init__(
        self,
        root: Path,
        *,
        team_secrets: TeamSecrets | None = None,
        host: str = LOOPBACK,
        port: int | None = None,
        db_port: int | None = None,
        workers: int = 1,
        s3_endpoint: str | None = None,
        durable: bool = True,
        postgres_folder: Path | None = None,
    ) -> None:
        """``s3_endpoint``: an existing S3-compatible store (its keys: ``team_secrets``) instead of moto.
        ``postgres_folder``: where the cluster lives (default ``root/postgres``); as root it must be a folder the
        ``postgres`` user can reach."""
        require_server_packages()
        self.root = Path(root)
        self.secrets = team_secrets or TeamSecrets.generate()
        self.postgres = Postgres(
            postgres_folder or self.root / "postgres", self.secrets.db_password, port=db_port, durable=durable
        )
        self.s3: MotoS3 | None = (
            MotoS3(self.secrets.s3_access_key, self.secrets.s3_secret_key) if s3_endpoint is None else None
        )
        self.s3_endpoint = s3_endpoint or (self.s3.endpoint if self.s3 else "")
        self.server = TeamMlflowServer(
            self.root / "mlflow",
            backend_store_uri=self.postgres.uri(DB_NAME),
            auth_database_uri=self.postgres.uri(AUTH_DB_NAME),
            s3_endpoint=self.s3_endpoint,
            team_secrets=self.secrets,
            host=host,
            port=port,
            workers=workers,
        )
        self.startup_s = 0.0

    @property
    def uri(self) -> str:
        """The tracking URI (no login in it)."""
        return self.server.uri

    @property
    def admin_uri(self) -> str:
        return self.server.admin_uri

    def s3_client(self) -> Any:
        return s3_client(self.s3_endpoint, self.secrets.s3_access_key, self.secrets.s3_secret_key)

    def start(self) -> TeamStack:
        """Start every part (PostgreSQL first, MLflow last), each waited for; any failure stops what started."""
        t0 = time.perf_counter()
        try:
            self.postgres.init().start()
            if self.s3 is not None:
                self.s3.start()
            ensure_bucket(self.s3_client())
            self.server.start()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - t0
        return self

    def stop(self) -> None:
        """Stop every part that runs, MLflow first; each is tried even when an earlier one fails."""
        errors: list[str] = []
        for part in (self.server, self.s3, self.postgres):
            if part is None:
                continue
            try:
                part.stop()
            except Exception as e:  # stop the others all the same
                errors.append(f"{type(part).__name__}: {e}")
        if errors:
            raise TeamServerError("; ".join(errors))

    def __enter__(self) -> TeamStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @contextmanager
    def down(self, part: str) -> Iterator[None]:
        """``postgres`` or ``s3`` stopped for the block, started again after it (an outage and its end)."""
        target = {"postgres": self.postgres, "s3": self.s3}[part]
        if target is None:
            raise TeamServerError(f"{part} is not run by this stack")
        target.stop()
        try:
            yield
        finally:
            target.start()


# --------------------------------------------------------------------------- the script


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m orchestrator.tracking.team_server",
        description="Run the team's tracking server on this machine until SIGTERM or Ctrl-C: PostgreSQL, an S3 "
        "store and `mlflow server --app-name basic-auth` with proxied artifacts (docs/team-setup.md).",
    )
    p.add_argument("--root", type=Path, required=True, help="Folder for the database, the secrets and the logs.")
    p.add_argument("--host", default=LOOPBACK, help="Address the MLflow server listens on (default: 127.0.0.1).")
    p.add_argument("--port", type=int, default=5000, help="Port of the MLflow server (default: 5000).")
    p.add_argument(
        "--db-port", type=int, default=5433, help="Port of PostgreSQL on 127.0.0.1 (default: 5433, not a system one's)."
    )
    p.add_argument("--workers", type=int, default=2, help="MLflow server workers (default: 2, as deploy/k8s).")
    p.add_argument(
        "--s3-endpoint",
        help="An S3-compatible store that keeps objects (MinIO, AWS S3), its keys in AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY; default: moto in this process (objects live in memory until it stops).",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = args.root.resolve()
    try:
        team_secrets = TeamSecrets.load_or_create(root / SECRETS_FILE)
        if args.s3_endpoint:
            keys = (os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY"))
            if not all(keys):
                raise TeamServerError("--s3-endpoint: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to its keys")
            team_secrets = replace(team_secrets, s3_access_key=str(keys[0]), s3_secret_key=str(keys[1]))
        stack = TeamStack(
            root,
            team_secrets=team_secrets,
            host=args.host,
            port=args.port,
            db_port=args.db_port,
            workers=args.workers,
            s3_endpoint=args.s3_endpoint,
        )
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        stack.start()
    except OrchestratorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    store = "moto (in memory: lost when this stops)" if stack.s3 is not None else args.s3_endpoint
    print(
        f"team tracking server at {stack.uri} (basic auth; admin user '{ADMIN_USER}', password in "
        f"{root / SECRETS_FILE})\n  PostgreSQL {stack.postgres.uri(login=False)}, artifacts "
        f"{ARTIFACTS_DESTINATION} on {store}\n  SIGTERM or Ctrl-C stops all three",
        flush=True,
    )
    try:
        while not stopping.wait(1.0):
            if not stack.server.running:
                print(f"error: the MLflow server exited:\n{stack.server.log_tail()}", file=sys.stderr)
                return 1
    finally:
        print("stopping the MLflow server, S3 and PostgreSQL", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
