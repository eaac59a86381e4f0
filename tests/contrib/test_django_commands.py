"""The management commands of backupkit.contrib.django, run as ``python manage.py ...`` of a
tiny project (tests/contrib/django_project) against a real PostgreSQL and SQLite."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django_site import PROJECT, Manage

from backupkit.sources.postgres.tools import find_program
from backupkit.testing.postgres import Database

pytestmark = pytest.mark.integration

WRAPPED = ("pg_dump", "pg_restore", "psql", "pg_dumpall")


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


def _wrapping_bin_dir(tmp_path: Path) -> Path:
    """A bin_dir whose client programs log their argv (one argument a line) and, per call,
    a hash of the PGPASSWORD they got; then they run the real ones."""
    wrap = tmp_path / "bin"
    wrap.mkdir()
    for name in WRAPPED:
        script = wrap / name
        script.write_text(
            "#!/bin/sh\n"
            f'printf "%s\\n" "$0" "$@" >> "{tmp_path}/argv.log"\n'
            f'printf "%s %s %s\\n" "$(printf %s "$PGPASSWORD" | sha256sum | cut -c1-64)" {name} "$1" '
            f'>> "{tmp_path}/calls.log"\n'
            f'exec "{find_program(name, None)}" "$@"\n')
        script.chmod(0o755)
    return wrap


def _rows(pg: Database) -> list[tuple[int, str, str]]:
    with pg.connect() as conn:
        return conn.execute("SELECT id, title, body FROM notes_note ORDER BY id").fetchall()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_backup_and_restore_a_postgresql_site_with_its_media(pg_manage: Manage, pg: Database,
                                                              tmp_path: Path) -> None:
    manage, password = pg_manage, pg_manage.env["TEST_PG_PASSWORD"]
    bin_dir = _wrapping_bin_dir(tmp_path)
    manage.configure({"sets": {"site": {"sink": str(manage.sink), "sources": [
        {"type": "django-db", "alias": "default", "bin_dir": str(bin_dir)}, {"type": "django-media"}]}}})
    manage.ok("migrate", "--noinput")
    with pg.connect() as conn:
        conn.execute("INSERT INTO notes_tag (name) VALUES ('work'), ('home')")
        conn.execute("INSERT INTO notes_note (title, body, attachment) SELECT 'note ' || i, repeat('x', i), "
                     "'attachments/a.txt' FROM generate_series(1, 50) i")
        conn.execute("INSERT INTO notes_note_tags (note_id, tag_id) SELECT n.id, t.id FROM notes_note n, "
                     "notes_tag t WHERE n.id % 2 = 0")
    (manage.media / "attachments").mkdir()
    (manage.media / "attachments" / "a.txt").write_text("attachment a")
    (manage.media / "b.bin").write_bytes(os.urandom(5000))
    rows, media = _rows(pg), _files(manage.media)
    outputs = []

    backed_up = manage(*"backupkit_backup --reason before-deploy".split())
    outputs.append(backed_up)
    assert backed_up.returncode == 0, backed_up.stderr
    assert " of set site: db, media " in backed_up.stdout
    backup_id = backed_up.stdout.split()[1]

    listed = manage("backupkit_list")
    outputs.append(listed)
    assert backup_id in listed.stdout and "db, media" in listed.stdout
    records = json.loads(manage.ok("backupkit_list", "--json"))["backups"]
    assert [(r["id"], r["reason"]) for r in records] == [(backup_id, "before-deploy")]

    with pg.connect() as conn:
        conn.execute("DELETE FROM notes_note_tags")
        conn.execute("DELETE FROM notes_note WHERE id > 10")
        conn.execute("UPDATE notes_note SET body = 'changed' WHERE id = 1")
        conn.execute("DROP TABLE notes_tag CASCADE")
    (manage.media / "attachments" / "a.txt").unlink()
    (manage.media / "b.bin").write_bytes(b"changed")
    (manage.media / "new.txt").write_text("uploaded after the backup")

    # Into the live database: without a terminal the command will not ask, so it refuses.
    refused = manage("backupkit_restore")
    outputs.append(refused)
    manage.error_line(refused, backup_id, "--noinput", "database 'default'", "MEDIA_ROOT")
    assert _rows(pg)[0][2] == "changed"
    # The database holds tables: replacing them takes --clean.
    not_clean = manage("backupkit_restore", "latest", "--noinput")
    outputs.append(not_clean)
    manage.error_line(not_clean, "is not empty", "--clean")
    assert _rows(pg)[0][2] == "changed"

    restored = manage("backupkit_restore", "latest", "--noinput", "--clean")
    outputs.append(restored)
    assert restored.returncode == 0, restored.stderr
    assert f"restored backup {backup_id}" in restored.stdout
    assert "db into database 'default', 5 tables, row counts match the backup" in restored.stdout
    assert f"media into MEDIA_ROOT {manage.media}" in restored.stdout
    assert _rows(pg) == rows
    with pg.connect() as conn:
        assert conn.execute("SELECT count(*) FROM notes_tag").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM notes_note_tags").fetchone() == (50,)
    assert _files(manage.media) == media

    # The password travelled only in pg_dump's and pg_restore's environment.
    argv = (tmp_path / "argv.log").read_text()
    assert "pg_dump" in argv and "pg_restore" in argv and "--dbname=" in argv
    calls = [line.split(" ", 2) for line in (tmp_path / "calls.log").read_text().splitlines()]
    connecting = [(name, digest) for digest, name, first in calls if first != "--version"]
    assert {name for name, _ in connecting} >= {"pg_dump", "pg_restore"}
    assert {digest for _, digest in connecting} == {hashlib.sha256(password.encode()).hexdigest()}
    stored = [p.read_bytes() for p in manage.sink.rglob("*") if p.is_file() and p.suffix in (".json", ".log")]
    assert any(b"manifest" in p.name.encode() for p in manage.sink.rglob("*.json"))
    assert list(manage.sink.rglob("logs/*.log")), "the run log is stored"
    for text in [argv, *(r.stdout + r.stderr for r in outputs), *(b.decode() for b in stored)]:
        assert password not in text


def test_restore_to_another_database_leaves_the_configured_one_alone(pg_manage: Manage, pg: Database) -> None:
    manage = pg_manage
    manage.ok("migrate", "--noinput")
    with pg.connect() as conn:
        conn.execute("INSERT INTO notes_note (title, body, attachment) VALUES ('kept', '', '')")
    manage.ok("backupkit_backup")
    with pg.connect() as conn:
        conn.execute("DELETE FROM notes_note")
    copy = pg.sibling("copy")
    out = manage.ok("backupkit_restore", "--to", f"db={copy.url}", "--create")
    assert "db into postgresql://" in out and "row counts match the backup" in out
    with copy.connect() as conn:
        assert conn.execute("SELECT title FROM notes_note").fetchall() == [("kept",)]
    assert _rows(pg) == []


def test_restore_asks_on_a_terminal_and_stops_unless_told_yes(manage: Manage) -> None:
    manage.ok("migrate", "--noinput")
    manage.ok("backupkit_backup")
    # A pseudo-terminal as stdin makes the command ask; 'no' cancels.
    script = ("import os, pty, sys; pid, fd = pty.fork()\n"
              "if pid == 0: os.execvp(sys.executable, [sys.executable, 'manage.py', 'backupkit_restore', '--clean'])\n"
              "out = b''\n"
              "while b'continue' not in out: out += os.read(fd, 1000)\n"
              "os.write(fd, b'no\\n')\n"
              "while True:\n"
              "    try: chunk = os.read(fd, 1000)\n"
              "    except OSError: break\n"
              "    if not chunk: break\n"
              "    out += chunk\n"
              "sys.stdout.write(out.decode()); sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n")
    asked = subprocess.run([sys.executable, "-c", script], cwd=PROJECT, env=manage.env, capture_output=True,
                           text=True, timeout=120, check=False)
    assert asked.returncode == 1, asked.stdout + asked.stderr
    assert "This restores backup" in asked.stdout and "database 'default'" in asked.stdout
    assert "CommandError: restore cancelled" in asked.stdout


def test_backup_and_restore_a_sqlite_site(manage: Manage, tmp_path: Path) -> None:
    manage.ok("migrate", "--noinput")
    db = tmp_path / "db.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO notes_note (title, body, attachment) VALUES (?, ?, '')",
                         [(f"note {i}", "é" * i) for i in range(30)])
    (manage.media / "logo.png").write_bytes(b"\x89PNG...")
    out = manage.ok("backupkit_backup")
    assert " of set site: db, media " in out
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM notes_note WHERE id > 3")
    (manage.media / "logo.png").unlink()
    out = manage.ok("backupkit_restore", "--noinput", "--clean")
    assert "db into database 'default'" in out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), max(body) FROM notes_note").fetchone() == (30, "é" * 29)
    assert (manage.media / "logo.png").read_bytes() == b"\x89PNG..."


def test_commands_report_a_bad_setting_in_one_line(manage: Manage) -> None:
    manage.configure(None)
    manage.error_line(manage("backupkit_backup"), "settings.BACKUPKIT is not set")
    manage.configure({"sets": {"site": {"sink": str(manage.sink), "compres": "zstd"}}})
    manage.error_line(manage("backupkit_list"), "unknown key 'compres'", "did you mean 'compress'")
    manage.configure({"sets": {"site": {"sink": str(manage.sink)}}})
    unknown = manage("backupkit_backup", "--set", "nope")
    manage.error_line(unknown, "unknown backup set 'nope'")
    assert unknown.returncode == 2  # backupkit's exit code for a configuration error
    missing = manage("backupkit_restore", "--noinput")
    manage.error_line(missing, "no backup")
    assert missing.returncode == 6


def test_checks_name_each_fault_with_its_id(manage: Manage) -> None:
    assert "no issues" in manage.ok("check")
    manage.configure(None)
    result = manage("check")
    assert result.returncode == 1 and "backupkit.E001" in result.stderr and "HINT:" in result.stderr
    manage.configure("not a dict")
    assert "backupkit.E002" in manage("check").stderr
    manage.configure({"sets": {"site": {"sources": [
        {"type": "django-db", "alias": "nope"}, {"type": "django-db", "alias": "legacy"}]}}},
        legacy={"ENGINE": "django.db.backends.mysql", "NAME": "legacy"})
    stderr = manage("check").stderr
    assert "backupkit.E003" in stderr and "set 'site' has no sink" in stderr
    assert "backupkit.E004" in stderr and "'nope' is not in settings.DATABASES" in stderr
    assert "backupkit.E005" in stderr and "django.db.backends.mysql" in stderr


def test_run_backs_up_on_schedule_until_sigterm(manage: Manage) -> None:
    manage.configure({"sets": {"site": {"sink": str(manage.sink), "schedule": [
        {"kind": "full", "every": "1d", "run_at_start": True}]}}})
    manage.ok("migrate", "--noinput")
    code, out, err = manage.terminated(["backupkit_run"], lambda: bool(list(manage.sink.rglob("*.manifest.json"))))
    assert code == 0, err
    assert list(manage.sink.rglob("*.manifest.json")), "no backup ran at start"
    assert "scheduled site" in err and "scheduler stopped" in out


def test_sigterm_during_a_backup_exits_130_and_keeps_nothing(pg_manage: Manage, tmp_path: Path) -> None:
    manage, slow = pg_manage, tmp_path / "slow"
    slow.mkdir()
    (slow / "pg_dump").write_text(f'#!/bin/sh\n[ "$1" = --version ] || {{ touch "{tmp_path}/started"; sleep 2; }}\n'
                                  f'exec "{find_program("pg_dump", None)}" "$@"\n')
    (slow / "pg_dump").chmod(0o755)
    manage.configure({"sets": {"site": {"sink": str(manage.sink), "sources": [
        {"type": "django-db", "bin_dir": str(slow)}, "django-media"]}}})
    manage.ok("migrate", "--noinput")
    code, _, err = manage.terminated(["backupkit_backup"], (tmp_path / "started").exists)
    assert code == 130, err
    assert err.splitlines() == ["CommandError: the command was terminated (SIGTERM); nothing of this run was kept"]
    assert not list(manage.sink.rglob("*.manifest.json"))
    assert not [p for p in (manage.sink / "temp").rglob("*") if p.is_file()]
