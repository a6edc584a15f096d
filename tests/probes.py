"""What import probes (a fresh interpreter) look for, and the probe itself."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.spacefiles import ROOT

HEAVY = ("torch", "ray", "mlflow", "hyperopt", "optuna")  # light modules import none of these


def modules_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported once it ran ``code`` (in the repository root)."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))
