"""Fixtures shared by many test files. Keep this small: put file-specific fixtures in the file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import treegen

# A real PostgreSQL per test session (skipped where the server programs are missing).
pytest_plugins = ["backupkit.testing.postgres", "backupkit.testing.redis", "backupkit.testing.s3server"]


@pytest.fixture
def source_tree(tmp_path: Path) -> Path:
    """A small generated tree (see :mod:`treegen`) at ``tmp_path/src/tree``."""
    return treegen.make_tree(tmp_path / "src" / "tree")


class Cli:
    """Runs ``python -m backupkit ARGS...`` in a subprocess, like a user at a shell.

    Calls return the CompletedProcess (text mode) and never raise on a non-zero exit.
    The working directory is the test's *tmp_path* unless ``cwd=`` says otherwise; the
    seeds' environment variables (BACKUP_DIR, AWS_*) are removed so the host cannot
    leak into a test, and warnings are errors as in the test run itself.
    """

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "AWS_"))}
        self.env["PYTHONWARNINGS"] = "error"

    def __call__(
        self, *args: str | os.PathLike[str], cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "backupkit", *map(os.fspath, args)],
            check=False,
            cwd=cwd or self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    @staticmethod
    def error_line(result: subprocess.CompletedProcess[str], *names: str) -> str:
        """Check the contract for errors a user can fix; return the one stderr line.

        Non-zero exit, no traceback, exactly one line on stderr starting with
        ``backupkit: error:`` and containing each of *names*.
        """
        assert result.returncode != 0, f"expected a failure, got exit 0; stdout: {result.stdout}"
        assert "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
        line = lines[0]
        assert line.startswith("backupkit: error: "), line
        for name in names:
            assert name in line, f"{name!r} is not named in {line!r}"
        return line


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A :class:`Cli` running in *tmp_path*."""
    return Cli(tmp_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark as ``integration`` every test that runs an external program: the CLI in a
    subprocess (the ``cli`` fixture), GNU tar, mypy... (its code calls ``subprocess`` or a
    helper that does), so ``-m "not integration"`` is the in-process suite alone."""
    import inspect

    for item in items:
        function = getattr(item, "function", None)
        if function is None or item.get_closest_marker("integration") is not None:
            continue
        try:
            code = inspect.getsource(function)
        except (OSError, TypeError):
            code = ""
        runs_programs = ("subprocess." in code or "run_cli(" in code or "start_backup(" in code
                         or ("run(" in code and "cli" in item.fixturenames))
        if "cli" in getattr(item, "fixturenames", ()) or runs_programs:
            item.add_marker(pytest.mark.integration)
