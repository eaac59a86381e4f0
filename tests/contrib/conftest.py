"""Fixtures for backupkit.contrib.django's tests: the test project's ``manage.py`` in a
subprocess, so that Django is configured there and never in the test process (the rest
of the suite runs without DJANGO_SETTINGS_MODULE, and pytest-django stays inert)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backupkit.testing.postgres import Database

PROJECT = Path(__file__).resolve().parent / "django_project"


class Manage:
    """Runs ``python manage.py ARGS...`` of the test project (``django_project/``), configured
    through its environment (see ``project/settings.py``). Calls return the CompletedProcess
    and never raise on a non-zero exit."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.media = tmp_path / "site" / "media"
        self.sink = tmp_path / "sink"
        self.media.mkdir(parents=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "AWS_", "DJANGO_", "TEST_"))}
        self.env.update(DJANGO_SETTINGS_MODULE="project.settings", PYTHONDONTWRITEBYTECODE="1",
                        PYTHONWARNINGS="error", TEST_DB="sqlite", TEST_SQLITE_PATH=str(tmp_path / "db.sqlite3"),
                        TEST_MEDIA_ROOT=str(self.media))
        self.configure({"sets": {"site": {"sink": str(self.sink)}}})

    def configure(self, backupkit: Any, **databases: Any) -> None:
        """Set the BACKUPKIT setting (``None``: unset) and extra DATABASES aliases."""
        self.env["TEST_BACKUPKIT"] = json.dumps(backupkit)
        self.env["TEST_EXTRA_DATABASES"] = json.dumps(databases)

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT, env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=300, check=False)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start ``manage.py ARGS...`` in the background (stdout and stderr piped)."""
        return subprocess.Popen([sys.executable, "manage.py", *args], cwd=PROJECT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ok(self, *args: str) -> str:
        """Run and check the exit status; return stdout."""
        result = self(*args)
        assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
        return result.stdout

    @staticmethod
    def error_line(result: subprocess.CompletedProcess[str], *names: str) -> str:
        """Check the contract for errors a user can fix: non-zero exit, no traceback, one line
        on stderr (``CommandError: ...``) naming each of *names*; return it."""
        assert result.returncode != 0, f"expected a failure, got exit 0; stdout: {result.stdout}"
        assert "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
        assert lines[0].startswith("CommandError: "), lines[0]
        for name in names:
            assert name in lines[0], f"{name!r} is not named in {lines[0]!r}"
        return lines[0]


@pytest.fixture
def manage(tmp_path: Path) -> Manage:
    """The test project on a SQLite database in *tmp_path*, sink ``tmp_path/sink``."""
    return Manage(tmp_path)


@pytest.fixture
def pg_manage(manage: Manage, pg: Database) -> Manage:
    """:func:`manage` on the PostgreSQL database *pg*, with a password in DATABASES
    (the test cluster trusts every login, so any password connects; it still travels as one)."""
    info = psycopg.conninfo.conninfo_to_dict(pg.url)
    manage.env.update(TEST_DB="postgres", TEST_PG_HOST=str(info["host"]), TEST_PG_PORT=str(info["port"]),
                      TEST_PG_NAME=pg.name, TEST_PG_USER=str(info.get("user") or "postgres"),
                      TEST_PG_PASSWORD=f"pw-{secrets.token_hex(8)}")
    return manage
