"""The package type-checks under mypy --strict (pyproject's [tool.mypy]); py.typed ships."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# The repository root: the nearest folder above this file that holds pyproject.toml.
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())


def test_package_is_typed_and_passes_mypy_strict() -> None:
    assert (ROOT / "backupkit" / "py.typed").is_file()
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
