"""The ``sqlite`` source of ``examples/backupkit-sqlite``, loaded from its entry point.

It is installed into the test environment (``.ci/run`` does
``pip install -e examples/backupkit-sqlite``), so these tests go through the same
entry-point door a real third-party package does.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from plugin_helpers import _autoload_on, run_cli, sqlite_config  # noqa: F401

import backupkit
from backupkit.core.manifest import PluginSpec
from backupkit.errors import IntegrityError, RestoreError, SourceError
from backupkit.plugins import DEFAULT_PLUGINS


# -- helpers ---------------------------------------------------------------------------------
def make_db(path: Path, rows: Iterable[tuple[int, str, bytes]], *, wal: bool = False) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        with conn:
            conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB)")
            conn.executemany("INSERT INTO notes VALUES (?, ?, ?)", rows)


def read_rows(path: Path) -> list[tuple[Any, ...]]:
    uri = path.absolute().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        return conn.execute("SELECT id, body, data FROM notes ORDER BY id").fetchall()


ROWS = [(i, f"note {i} \N{SNOWMAN}", os.urandom(64)) for i in range(1, 501)]


# -- the entry-point path: examples/backupkit-sqlite -----------------------------------------
def test_sqlite_source_from_entry_point_round_trips_rows_of_a_live_database(tmp_path: Path) -> None:
    db = tmp_path / "live" / "app.db"
    db.parent.mkdir()
    make_db(db, ROWS, wal=True)
    # A writer keeps the database open, its last commit only in the WAL: the online
    # backup API must still copy a consistent, complete database.
    with contextlib.closing(sqlite3.connect(db)) as writer:
        with writer:
            writer.execute("INSERT INTO notes VALUES (9999, 'only in the wal', x'00ff')")
        engine = backupkit.Engine.from_config(sqlite_config(db, tmp_path / "sink"))  # no plugins=
        manifest = engine.backup("app")

    (artifact,) = manifest.artifacts
    assert artifact.source == PluginSpec("sqlite", {"path": str(db)})
    assert artifact.key.endswith(".sqlite.zst")
    assert artifact.extra["database"] == "app.db"

    result = engine.restore("latest", to=tmp_path / "restored")
    restored = tmp_path / "restored" / "app.db"
    assert result.targets == {"sqlite": str(tmp_path / "restored")}
    assert sorted(p.name for p in restored.parent.iterdir()) == ["app.db"]  # no temp files left
    assert read_rows(restored) == [*ROWS, (9999, "only in the wal", b"\x00\xff")]


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
def test_sqlite_backup_finishes_while_a_writer_commits_every_few_milliseconds(
    tmp_path: Path, wal: bool
) -> None:
    db = tmp_path / "busy.db"
    make_db(db, ((i, "", os.urandom(1000)) for i in range(1, 30_001)), wal=wal)  # ~32 MB
    stop = threading.Event()
    errors: list[sqlite3.Error] = []

    def write() -> None:
        try:
            with contextlib.closing(sqlite3.connect(db, timeout=60)) as conn:
                while not stop.is_set():
                    with conn:
                        conn.execute("INSERT INTO notes (body, data) VALUES ('new', x'00')")
                    stop.wait(0.002)
        except sqlite3.Error as exc:
            errors.append(exc)

    engine = backupkit.Engine.from_config(sqlite_config(db, tmp_path / "sink"))
    result: list[backupkit.Manifest] = []
    writer = threading.Thread(target=write, daemon=True)
    backup = threading.Thread(target=lambda: result.append(engine.backup()), daemon=True)
    writer.start()
    try:
        backup.start()
        backup.join(timeout=60)  # generous: without writers it takes a fraction of a second
        assert not backup.is_alive(), "the backup restarts for ever while the writer commits"
    finally:
        stop.set()
        writer.join(timeout=60)
    assert errors == [] and len(result) == 1

    engine.restore("latest", to=tmp_path / "restored")
    uri = (tmp_path / "restored" / "busy.db").absolute().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM notes WHERE id <= 30000").fetchone() == (30_000,)


def test_sqlite_restore_refuses_an_existing_database_unless_overwrite(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db, ROWS[:3])
    engine = backupkit.Engine.from_config(sqlite_config(db, tmp_path / "sink"))
    engine.backup()
    target = tmp_path / "restored"
    target.mkdir()
    make_db(target / "app.db", [(1, "local change", b"")])

    with pytest.raises(RestoreError, match=r"app\.db already exists.*--overwrite"):
        engine.restore(to=target)
    assert read_rows(target / "app.db") == [(1, "local change", b"")]

    engine.restore(to=target, overwrite=True)
    assert read_rows(target / "app.db") == ROWS[:3]


def test_sqlite_restore_of_a_damaged_artifact_makes_nothing_visible(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db, ROWS)
    config = sqlite_config(db, tmp_path / "sink")
    config["sets"]["app"]["compress"] = "none"  # the stream decodes; only the checksum can tell
    engine = backupkit.Engine.from_config(config)
    manifest = engine.backup()
    stored = tmp_path / "sink" / manifest.artifacts[0].key
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    target = tmp_path / "restored"
    with pytest.raises(IntegrityError, match="sqlite"):
        engine.restore(to=target)
    assert not target.exists() or list(target.iterdir()) == []


def test_sqlite_source_with_a_missing_database_is_a_source_error(tmp_path: Path) -> None:
    engine = backupkit.Engine.from_config(sqlite_config(tmp_path / "nope.db", tmp_path / "sink"))
    with pytest.raises(SourceError, match=r"nope\.db does not exist"):
        engine.backup()
    assert engine.catalog().to_records() == []


@pytest.mark.integration
def test_sqlite_backup_and_restore_through_the_cli_with_a_config_file(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    make_db(db, ROWS)
    config = tmp_path / "backupkit.toml"
    config.write_text(
        f'[sets.app]\nsink = "{tmp_path / "sink"}"\n\n'
        f'[[sets.app.sources]]\ntype = "sqlite"\nname = "db"\npath = "{db}"\n'
    )
    backup = run_cli("backup", "--config", str(config), "--json")
    assert backup.returncode == 0, backup.stderr
    assert json.loads(backup.stdout)["artifacts"][0]["source"]["id"] == "sqlite"

    restore = run_cli("restore", "latest", "--config", str(config), "--to", str(tmp_path / "out"))
    assert restore.returncode == 0, restore.stderr
    assert read_rows(tmp_path / "out" / "app.db") == ROWS


@pytest.mark.integration
def test_plugins_json_lists_the_installed_sqlite_plugin() -> None:
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert "sqlite" in listing["sources"]
    assert "sqlite" in listing["plugins"]  # the entry-point name
    assert set(DEFAULT_PLUGINS) <= set(listing["plugins"])
