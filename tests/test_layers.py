"""The one import rule (pyproject.toml's import-linter contract): the composition root on
top, then the API and the seed, the services, the domains, and models, telemetry and core
at the bottom; no arrow runs upward. Inside the reservation engine, a second contract orders
its modules (the Redis store knows nothing of the saga, the ledger or the facade)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = (
    "from importlinter.cli import lint_imports; "
    "raise SystemExit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
)


def test_every_import_points_down() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LINT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout
