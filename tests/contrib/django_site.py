"""The test project's ``manage.py`` in a subprocess (:class:`Manage`), so that Django is
configured there and never in the test process: the rest of the suite runs without
DJANGO_SETTINGS_MODULE, and pytest-django stays inert. (A module, not a conftest: tests
elsewhere import the top-level conftest by name, which a second conftest would shadow.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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

    def terminated(self, args: list[str], when: Callable[[], bool]) -> tuple[int, str, str]:
        """Start ``manage.py ARGS...``, send it SIGTERM once *when* holds (60 s at most);
        return its exit code, stdout and stderr."""
        proc = subprocess.Popen([sys.executable, "manage.py", *args], cwd=PROJECT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        try:
            while proc.poll() is None and not when() and time.monotonic() < deadline:
                time.sleep(0.05)  # a command that fails early is not waited for
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return proc.returncode, out, err

    @contextmanager
    def runserver(self) -> Iterator[str]:
        """``manage.py runserver`` on a free loopback port (a real HTTP server, Django's
        own); yields its base URL, and stops it afterwards."""
        from backupkit.plugin.scratch import free_port

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**self.env, "PYTHONWARNINGS": "default"}  # runserver warns that it is for development
        log = self.tmp_path / f"runserver-{port}.log"  # a file: a pipe nobody reads would fill
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload",
                                     "--skip-checks"], cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api/backup/status", timeout=5)
                except urllib.error.HTTPError:
                    break  # it answers (401: no token)
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(f"runserver did not start:\n{log.read_text()}") from None
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

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
