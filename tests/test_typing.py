"""The package type-checks under mypy --strict (pyproject's [tool.mypy]); py.typed ships."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_package_is_typed_and_passes_mypy_strict() -> None:
    assert (ROOT / "backupkit" / "py.typed").is_file()
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
