#!/usr/bin/env bash
# The team's tracking server on this machine, as deploy/k8s runs it: PostgreSQL (the machine's own, Debian's
# `postgresql` package), an S3 store (moto in memory, or --s3-endpoint for one that keeps objects) and
# `mlflow server --app-name basic-auth --serve-artifacts --artifacts-destination s3://mlflow/artifacts`.
# Runs until SIGTERM or Ctrl-C, then stops all three. Needs `pip install 'orchestrator[server]'`.
#
#   deploy/team-server/start.sh /srv/orchestrator-tracking [--host 0.0.0.0] [--port 5000] [--s3-endpoint URL]
#
# The folder keeps the database and secrets.env (mode 0600: the admin's password, generated the first time).
# Run as root, PostgreSQL runs as the `postgres` user, which must be able to enter the folder's parents.
# docs/team-setup.md says how users, permissions and credentials work.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: $0 FOLDER [--host ADDRESS] [--port PORT] [--db-port PORT] [--workers N] [--s3-endpoint URL]" >&2
    exit 2
fi
root=$1
shift
# The interpreter that has orchestrator[server] installed: $PYTHON, else the repository's .venv, else python3.
here=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-}
if [ -z "$python" ]; then
    if [ -x "$here/.venv/bin/python" ]; then python=$here/.venv/bin/python; else python=python3; fi
fi
exec "$python" -m orchestrator.tracking.team_server --root "$root" "$@"
