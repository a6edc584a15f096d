#!/usr/bin/env bash
# The package installed the way a user installs it, then used: a fresh venv, the pinned CPU
# build of torch, `pip install <repo>` with no extras, and a tiny real search with the installed
# `orchestrator` command. Then a space asking for Optuna (an extra) must fail with one line
# naming the extra, and so must the team server without orchestrator[server], while `orchestrator access`
# (a client) works. Everything happens in a temporary folder; the checkout is only read.
#
#   bash .ci/user_install_check.sh     (PYTHON, TORCH_SPEC may be set; KEEP=1 or CI=true keeps the folder)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
# The CPU build the Makefile pins (one place for it).
TORCH_SPEC="${TORCH_SPEC:-$(sed -n 's/^TORCH_SPEC ?= *//p' "$REPO/Makefile")}"
CONSTRAINTS="$REPO/requirements/ci-constraints.txt"
OPTUNA_EXTRA="orchestrator[optuna]"

[[ -n "$TORCH_SPEC" ]] || { echo "user install check: no TORCH_SPEC in $REPO/Makefile" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/orchestrator-user-install.XXXXXX")"
# 2 GiB of venv: removing it takes a minute on a busy disk, for nothing on a CI machine that is thrown away.
if [[ "${KEEP:-}" == 1 || "${CI:-}" == true ]]; then
    echo "user install check: working in $WORK (kept)"
else
    trap 'rm -rf "$WORK"' EXIT
fi
VENV="$WORK/venv"
SRC="$WORK/src"
RUN_DIR="$WORK/run"
START=$SECONDS

step() { echo "user install check [$((SECONDS - START))s]: $*"; }
fail() { echo "user install check FAILED: $*" >&2; exit 1; }

# The files a clone would have (tracked or new, not ignored) as they are now, so that building
# the wheel writes nothing (build/, *.egg-info) into the checkout.
git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1 || fail "$REPO is not a git checkout"
step "copying the sources to $SRC"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard) | (cd "$REPO" && "$PYTHON" -c '
import shutil, sys
from pathlib import Path
dest = Path(sys.argv[1])
for name in sys.stdin.buffer.read().decode().split("\0"):
    if name and Path(name).is_file():  # a file deleted in the working tree stays out
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(name, dest / name)
' "$SRC")

step "creating a fresh venv with $("$PYTHON" --version)"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q)
step "installing $TORCH_SPEC"
"${PIP[@]}" "$TORCH_SPEC"
step "installing the package, no extras"
"${PIP[@]}" -c "$CONSTRAINTS" "$SRC"

# ------------------------------------------------------------------ a tiny real search
mkdir -p "$RUN_DIR/search_spaces/user_install" "$RUN_DIR/search_spaces/user_install_optuna"
cat >"$RUN_DIR/search_spaces/user_install/v1.yaml" <<'YAML'
study: user_install
version: 1
trainable: analytic
metric: {name: loss, mode: min}
schedule: {scheduler: fifo, max_epochs: 2, grace_period: 1}
resources: {cpu: 1, gpu: 0}
search: {trials: 3, startup_trials: 2}
fixed: {function: quadratic}
params:
  x: {uniform: [-1.0, 1.0]}
YAML
sed -e 's/^study: user_install$/study: user_install_optuna/' \
    -e 's/^search: {/search: {algorithm: optuna_tpe, /' \
    "$RUN_DIR/search_spaces/user_install/v1.yaml" >"$RUN_DIR/search_spaces/user_install_optuna/v1.yaml"
grep -q "algorithm: optuna_tpe" "$RUN_DIR/search_spaces/user_install_optuna/v1.yaml" || fail "could not write the Optuna space"

# Only the installed command, in a folder of its own: no tracking server, no Ray of anyone else's.
orchestrator() {
    (cd "$RUN_DIR" && env -u MLFLOW_TRACKING_URI -u PYTHONPATH ORCHESTRATOR_HOME="$RUN_DIR/$1" RAY_ADDRESS=local \
        "$VENV/bin/orchestrator" "${@:2}")
}

step "running a search of 3 trials with the installed orchestrator"
if ! out="$(orchestrator home run search_spaces/user_install/v1.yaml --concurrency 1 --no-live 2>&1)"; then
    printf '%s\n' "$out" >&2
    fail "orchestrator run exited with an error"
fi
printf '%s\n' "$out" | tail -n 5
grep -Eq "\b3 finished, 0 failed\b" <<<"$out" || fail "expected '3 finished, 0 failed' in the output above"

# ------------------------------------------------------------------ an extra that is not installed
if "$VENV/bin/python" -c "import optuna" 2>/dev/null; then
    fail "optuna is installed without the extra $OPTUNA_EXTRA: a plain install pulls it in"
fi
step "running an optuna_tpe space without $OPTUNA_EXTRA"
status=0
out="$(orchestrator home-optuna run search_spaces/user_install_optuna/v1.yaml --concurrency 1 --no-live 2>&1)" \
    || status=$?
lines="$(grep -c . <<<"$out" || true)"
if [[ $status == 0 || $lines != 1 ]] || ! grep -qF "$OPTUNA_EXTRA" <<<"$out"; then
    echo "--- got (exit $status, $lines lines):" >&2
    printf '%s\n' "$out" >&2
    fail "expected an exit status other than 0 and one line naming $OPTUNA_EXTRA"
fi
echo "  $out"
# ... and it said so before creating any run.
"$VENV/bin/python" - "$RUN_DIR/home-optuna/mlflow.db" <<'PY' || fail "the failed Optuna search created MLflow runs"
import sys
from pathlib import Path

db = Path(sys.argv[1])
if db.exists():
    import sqlite3

    with sqlite3.connect(db) as conn:
        (runs,) = conn.execute("select count(*) from runs").fetchone()
    sys.exit(1 if runs else 0)
PY

# ------------------------------------------------------------------ the team server: a client needs no server extra
SERVER_EXTRA="orchestrator[server]"
step "orchestrator access on the local store, without $SERVER_EXTRA (a client command)"
out="$(orchestrator home access user_install 2>&1)" || { printf '%s\n' "$out" >&2; fail "orchestrator access failed"; }
grep -q "no logins on this store" <<<"$out" || { printf '%s\n' "$out" >&2; fail "unexpected output of access"; }
step "starting the team server without $SERVER_EXTRA"
status=0
out="$("$VENV/bin/python" -m orchestrator.tracking.team_server --root "$RUN_DIR/team" 2>&1)" || status=$?
lines="$(grep -c . <<<"$out" || true)"
if [[ $status == 0 || $lines != 1 ]] || ! grep -qF "pip install '$SERVER_EXTRA'" <<<"$out"; then
    echo "--- got (exit $status, $lines lines):" >&2
    printf '%s\n' "$out" >&2
    fail "expected an exit status other than 0 and one line naming $SERVER_EXTRA"
fi
echo "  $out"

step "passed"
