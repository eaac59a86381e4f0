"""The json source: whole-database JSON exports of PostgreSQL (a real server) and SQLite."""

from __future__ import annotations

import contextlib
import gzip
import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import backupkit
from backupkit.errors import ConfigError, IntegrityError, RestoreError, SourceError
from backupkit.plugin import RestoreContext, Source
from backupkit.sources.jsonexport import JsonSource
from backupkit.sources.jsonexport.document import read
from backupkit.testing.postgres import Database
from backupkit.testing.source_suite import SourceConformance

pytestmark = pytest.mark.integration

PG_SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE SCHEMA shop;
CREATE TABLE public.people (
    id bigserial PRIMARY KEY, name text NOT NULL, big bigint, exact numeric(40, 10), ratio double precision,
    real4 real, photo bytea, seen timestamptz, born date, local_ts timestamp, wake time, gap interval,
    uid uuid, doc jsonb, plain json, tags text[], nums int[], mood mood, flag boolean, small smallint,
    boss bigint REFERENCES public.people (id)
);
CREATE TABLE shop.orders (id serial PRIMARY KEY, person bigint REFERENCES public.people (id), total numeric);
CREATE TABLE public.nothing (x int);
CREATE TABLE public.tickets (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text);
INSERT INTO public.tickets (title) VALUES ('a'), ('b'), ('c');
"""

PG_ROWS = """
INSERT INTO public.people (name, big, exact, ratio, real4, photo, seen, born, local_ts, wake, gap, uid, doc, plain,
                           tags, nums, mood, flag, small, boss) VALUES
 ('Ada ✓ λ', 9007199254740993, 123456789012345678901234567890.0123456789, 0.1, 0.1, '\\x00ff10',
  '2026-01-01 12:34:56.789012+02', 'infinity', '-infinity', '23:59:59.999999', '1 mon 2 days 03:04:05.000006',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"price": 12345678901234567890.123456789, "n": [1, 2]}',
  '{"b": 1,   "a": 2}', ARRAY['x', 'y, z', NULL], ARRAY[1, NULL, 3], 'ok', true, -32768, NULL),
 ('Grace', -9223372036854775808, 'NaN', 'NaN', '-Infinity', '', '-infinity', '1999-12-31', '2000-01-01 00:00:00',
  '00:00', '-1 year -2 mons', NULL, 'null', '[]', '{}', '{}', 'sad', false, 0, 1),
 ('Nulls', NULL, NULL, 'Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, 2);
INSERT INTO shop.orders (person, total) SELECT 1 + i % 3, i * 1.5 FROM generate_series(1, 500) i;
"""


def pg_content(url: str) -> dict[str, Any]:
    """Each table's rows as PostgreSQL prints them (fixed settings), in order; and sequences."""
    out: dict[str, Any] = {}
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET extra_float_digits = 3; "
                     "SET IntervalStyle = 'postgres'")
        for schema, table in conn.execute(
                "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
                "('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall():
            rows = conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t ORDER BY 1').fetchall()
            out[f"{schema}.{table}"] = [r[0] for r in rows]
        out["sequences"] = conn.execute("SELECT sequencename, last_value FROM pg_sequences ORDER BY 1").fetchall()
    return out


def sqlite_content(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%' ORDER BY 1")]
        if not tables:
            return None
        return {t: conn.execute(f'SELECT *, typeof(rowid) FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    finally:
        conn.close()


def make_sqlite(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, big INTEGER, score REAL, data BLOB,
                            price NUMERIC, created TEXT);
        CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id),
                            parent_id INTEGER REFERENCES posts(id), body TEXT);
        CREATE TABLE empty (x TEXT);
    """)
    conn.execute("INSERT INTO users VALUES (1, 'Ada ✓', 9007199254740993, 1.5, x'00ff', 12.5, '2026-01-01 00:00:00')")
    conn.execute("INSERT INTO users VALUES (2, 'Grace', -3, 1e308 * 10, x'', 7, NULL)")
    conn.executemany("INSERT INTO posts (user_id, parent_id, body) VALUES (?, ?, ?)",
                     [(1, None, "root")] + [(2, i, f"reply {i}") for i in range(1, 300)])
    conn.commit()
    conn.close()
    return path


class TestJsonSourceSqlite(SourceConformance):
    @pytest.fixture
    def params(self, tmp_path: Path) -> dict[str, Any]:
        return {"type": "json", "url": f"sqlite:///{make_sqlite(tmp_path / 'app.db')}"}

    @pytest.fixture
    def target(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'restored.db'}"

    @pytest.fixture
    def restore_options(self) -> dict[str, Any]:
        return {"create": True}

    def expected(self, source: Source) -> Any:
        assert isinstance(source, JsonSource) and source.url
        return sqlite_content(Path(source.url.removeprefix("sqlite:///")))

    def restored(self, target: str) -> Any:
        return sqlite_content(Path(target.removeprefix("sqlite:///")))


class TestJsonSourcePostgres(SourceConformance):
    @pytest.fixture
    def params(self, pg: Database) -> dict[str, Any]:
        with pg.connect() as conn:
            conn.execute(PG_SCHEMA)
            conn.execute(PG_ROWS)
        return {"type": "json", "url": pg.url, "schemas": ["public", "shop"]}

    @pytest.fixture
    def target(self, pg: Database) -> str:
        return pg.sibling("jsonrestored").create().url

    @pytest.fixture
    def restore_options(self) -> dict[str, Any]:
        return {"create": True}

    def expected(self, source: Source) -> Any:
        assert isinstance(source, JsonSource) and source.url
        return pg_content(source.url)

    def restored(self, target: str) -> Any:
        data = pg_content(target)
        return data if len(data) > 1 else None


# -- what the export is ---------------------------------------------------------------------
def test_the_export_is_plain_json_with_lossless_values(pg: Database, tmp_path: Path) -> None:
    with pg.connect() as conn:
        conn.execute(PG_SCHEMA)
        conn.execute(PG_ROWS)
    engine = backupkit.Engine.from_config({"sets": {"app": {
        "sources": [{"type": "json", "name": "db", "url": pg.url, "schemas": ["public", "shop"]}],
        "sink": str(tmp_path / "sink"), "compress": "gzip"}}}, env={})
    manifest = engine.backup()
    stored = tmp_path / "sink" / manifest.artifact("db").key
    assert stored.name.endswith(".db.json.gz")
    tool = subprocess.run(f"gunzip < {stored} | {sys.executable} -m json.tool > /dev/null", shell=True,
                          capture_output=True, text=True, check=False)
    assert tool.returncode == 0, tool.stderr
    doc = json.loads(gzip.decompress(stored.read_bytes()))
    assert doc["format"] == "backupkit.json-export" and doc["version"] == 1 and doc["dialect"] == "postgresql"
    assert doc["server_version"].startswith("15.")
    people = next(t for t in doc["tables"] if t["name"] == "public.people")
    assert people["row_count"] == 3 and people["primary_key"] == ["id"]
    kinds = {c["name"]: c["kind"] for c in people["columns"]}
    assert kinds["big"] == "bigint" and kinds["exact"] == "numeric" and kinds["seen"] == "timestamptz"
    assert kinds["gap"] == "interval" and kinds["doc"] == "json" and kinds["tags"] == "array"
    names = [c["name"] for c in people["columns"]]
    ada = dict(zip(names, doc["data"][[d["table"] for d in doc["data"]].index("public.people")]["rows"][0]))
    assert ada["big"] == "9007199254740993"
    assert ada["exact"] == "123456789012345678901234567890.0123456789"
    assert ada["ratio"] == 0.1 and ada["photo"] == "AP8Q"
    assert ada["seen"] == "2026-01-01T10:34:56.789012Z"
    assert ada["born"] == "infinity" and ada["local_ts"] == "-infinity"
    assert ada["gap"] == "P1M2DT3H4M5.000006S"
    assert '"price": 12345678901234567890.123456789' in ada["doc"]  # the exact text, no float on the way
    assert ada["plain"] == '{"b": 1,   "a": 2}'
    assert ada["tags"] == '{x,"y, z",NULL}' and ada["mood"] == "ok" and ada["small"] == -32768
    order = [d["table"] for d in doc["data"]]
    grace = dict(zip(names, doc["data"][order.index("public.people")]["rows"][1]))
    assert grace["exact"] == "NaN" and grace["ratio"] == "NaN" and grace["real4"] == "-Infinity"
    assert order.index("public.people") < order.index("shop.orders")  # parents first


def test_a_writer_during_the_export_does_not_break_its_counts(pg: Database, tmp_path: Path) -> None:
    with pg.connect() as conn:
        conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, body text)")
        conn.execute("INSERT INTO events (body) SELECT repeat('x', 200) FROM generate_series(1, 60000)")
    stop, written = threading.Event(), [0]

    def writer() -> None:
        with pg.connect(autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO events (body) VALUES ('late')")
                written[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 10:
            time.sleep(0.01)
        engine = backupkit.Engine.from_config({"sets": {"app": {
            "sources": [{"type": "json", "name": "db", "url": pg.url}], "sink": str(tmp_path / "sink")}}}, env={})
        before = written[0]
        manifest = engine.backup()
        during = written[0] - before
    finally:
        stop.set()
        thread.join()
    assert during > 0
    raw = __import__("zstandard").ZstdDecompressor().decompress(
        (tmp_path / "sink" / manifest.artifact("db").key).read_bytes(), max_output_size=1 << 30)
    header, tables = read(__import__("io").BytesIO(raw).read)
    counted = {name: sum(1 for _ in rows) for name, rows in tables}
    assert counted == {t["name"]: t["row_count"] for t in header["tables"]} == manifest.artifact("db").extra["tables"]
    assert counted["public.events"] >= 60_010


def test_restore_into_an_existing_schema_and_into_sqlite_from_postgres(pg: Database, tmp_path: Path) -> None:
    with pg.connect() as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text, price numeric(10, 2))")
        conn.execute("INSERT INTO items (name, price) SELECT 'item ' || i, i * 0.25 FROM generate_series(1, 50) i")
    engine = backupkit.Engine.from_config({"sets": {"app": {
        "sources": [{"type": "json", "name": "db", "url": pg.url}], "sink": str(tmp_path / "sink")}}}, env={})
    manifest = engine.backup()
    target = pg.sibling("schema").create()
    with target.connect() as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text, price numeric(10, 2))")
    result = engine.restore(manifest.id, to=target.url)
    assert result.checks["db"]["row_counts_match"] is True
    assert pg_content(target.url) == pg_content(pg.url)
    with target.connect() as conn:  # the sequence continues after the restored ids
        assert conn.execute("INSERT INTO items (name) VALUES ('new') RETURNING id").fetchone()[0] == 51
    lite = tmp_path / "items.db"
    engine.restore(manifest.id, to=f"sqlite:///{lite}", options={"create": True})
    rows = sqlite3.connect(lite).execute("SELECT id, name, price FROM items ORDER BY id").fetchall()
    assert len(rows) == 50 and rows[0][:2] == (1, "item 1")


# -- errors ---------------------------------------------------------------------------------
def test_bad_inputs_are_one_line_errors(tmp_path: Path, cli: Any) -> None:
    from backupkit.plugin.scratch import free_port

    cases = {
        f"postgresql://u:topsecret@127.0.0.1:{free_port()}/db": "database postgresql://u:\\*\\*\\*@127.0.0.1",
        "mysql+pymysql://u:topsecret@127.0.0.1/db": "the driver for mysql is not installed.*pymysql",
        "nosuchdb://x": "SQLAlchemy knows no database 'nosuchdb'",
    }
    for url, want in cases.items():
        config = tmp_path / "backupkit.toml"
        config.write_text(f'[sets.app]\nsink = "{tmp_path / "sink"}"\n'
                          f'[[sets.app.sources]]\ntype = "json"\nname = "db"\nurl = "{url}"\n')
        result = cli("backup", "--config", config)
        line = cli.error_line(result)
        import re

        assert re.search(want, line), line
        assert "topsecret" not in result.stderr
    assert not list((tmp_path / "sink").rglob("*.manifest.json"))


def test_a_value_the_column_type_cannot_hold_names_table_and_column(tmp_path: Path) -> None:
    db = tmp_path / "odd.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE odd (id INTEGER PRIMARY KEY, n INTEGER)")
    conn.execute("INSERT INTO odd VALUES (1, 'not a number')")
    conn.commit()
    conn.close()
    engine = backupkit.Engine.from_config({"sets": {"app": {
        "sources": [{"type": "json", "name": "db", "url": f"sqlite:///{db}"}], "sink": str(tmp_path / "sink")}}},
        env={})
    with pytest.raises(SourceError, match="table odd, column n: cannot write a str value as bigint"):
        engine.backup()
    assert not list((tmp_path / "sink").rglob("*.manifest.json"))


def test_sqlite_datetime_columns_restore_their_text_as_stored(tmp_path: Path) -> None:
    # Django's django_migrations.applied is such a column: SQLAlchemy's SQLite DATETIME
    # binds only datetime objects, the export holds the stored text.
    db = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE applied (id INTEGER PRIMARY KEY, at DATETIME NOT NULL, day DATE)")
        conn.execute("INSERT INTO applied VALUES (1, '2026-12-03 02:00:00.123456', '2026-12-03')")
    engine = backupkit.Engine.from_config({"sets": {"app": {
        "sources": [{"type": "json", "name": "db", "url": f"sqlite:///{db}"}], "sink": str(tmp_path / "sink")}}},
        env={})
    engine.backup()
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DELETE FROM applied")
    engine.restore("latest", to=f"sqlite:///{db}", options={"clean": True})
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT * FROM applied").fetchall() == [(1, "2026-12-03 02:00:00.123456", "2026-12-03")]


def test_restore_into_tables_holding_rows_needs_clean_and_a_refused_row_is_named(tmp_path: Path, cli: Any) -> None:
    src = make_sqlite(tmp_path / "app.db")
    config = tmp_path / "backupkit.toml"
    config.write_text(f'[sets.app]\nsink = "{tmp_path / "sink"}"\n'
                      f'[[sets.app.sources]]\ntype = "json"\nname = "db"\nurl = "sqlite:///{src}"\n')
    assert cli("backup", "--config", config).returncode == 0
    target = tmp_path / "busy.db"
    make_sqlite(target)
    refused = cli("restore", "--config", config, "latest", "--to", f"sqlite:///{target}")
    cli.error_line(refused, "table users", "holds rows", "--clean")
    cleaned = cli("restore", "--config", config, "latest", "--to", f"sqlite:///{target}", "--clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert sqlite_content(target) == sqlite_content(src)

    strict = tmp_path / "strict.db"
    conn = sqlite3.connect(strict)
    conn.executescript("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL CHECK (name <> 'Grace'), "
                       "big INTEGER, score REAL, data BLOB, price NUMERIC, created TEXT);"
                       "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER, parent_id INTEGER, body TEXT);"
                       "CREATE TABLE empty (x TEXT);")
    conn.close()
    failed = cli("restore", "--config", config, "latest", "--to", f"sqlite:///{strict}")
    cli.error_line(failed, "table users, row 2", "CHECK constraint failed", "nothing was restored")
    assert sqlite3.connect(strict).execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_the_reader_refuses_what_is_not_an_export_or_is_cut_short(tmp_path: Path) -> None:
    import io

    ctx = RestoreContext(artifact="db", target=None)
    with pytest.raises(IntegrityError, match="not a backupkit JSON export"):
        JsonSource().check(io.BytesIO(b'{"hello": 1}\n'), ctx)
    engine = backupkit.Engine.from_config({"sets": {"app": {
        "sources": [{"type": "json", "name": "db", "url": f"sqlite:///{make_sqlite(tmp_path / 'a.db')}"}],
        "sink": str(tmp_path / "sink"), "compress": False}}}, env={})
    manifest = engine.backup()
    raw = (tmp_path / "sink" / manifest.artifact("db").key).read_bytes()
    assert JsonSource().check(io.BytesIO(raw), ctx) is None
    with pytest.raises(IntegrityError):
        JsonSource().check(io.BytesIO(raw[: len(raw) - 10]), ctx)
    assert engine.verify(manifest.id).ok
    with pytest.raises(ConfigError):
        JsonSource.from_params({"url": "sqlite:///x", "nope": 1})
    with pytest.raises(RestoreError, match="restore it into a database"):
        JsonSource().restore(io.BytesIO(raw), RestoreContext(artifact="db", target=tmp_path))


def test_the_web_apps_layout_backups_timestamp_auto_backup_json_gz_and_gunzip_gives_the_json(
    tmp_path: Path, s3: Any
) -> None:
    import datetime as dt

    s3.create_bucket("app-backups")
    at = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)
    engine = backupkit.Engine.from_config({"sets": {"app": {
        "sources": [{"type": "json", "url": f"sqlite:///{make_sqlite(tmp_path / 'a.db')}"}],
        "sink": {"type": "s3", "bucket": "app-backups", "layout": "flat"}, "compress": "gzip"}}},
        clock=lambda: at)
    manifest = engine.backup(reason="auto")
    stamp = "2026-12-03T02-00-00"
    key = f"backups/{stamp}-auto-backup-{stamp}.json.gz"
    assert manifest.artifact("json").key == key
    body = s3.client().get_object(Bucket="app-backups", Key=key)["Body"].read()
    doc = json.loads(gzip.decompress(body))
    assert doc["format"] == "backupkit.json-export"
    assert {t["name"]: t["row_count"] for t in doc["tables"]} == {"users": 2, "posts": 300, "empty": 0}


def test_the_example_restore_script_restores_a_downloaded_gunzipped_file(tmp_path: Path) -> None:
    engine = backupkit.Engine.from_config({"sets": {"app": {
        "sources": [{"type": "json", "url": f"sqlite:///{make_sqlite(tmp_path / 'a.db')}"}],
        "sink": str(tmp_path / "sink"), "compress": "gzip"}}}, env={})
    manifest = engine.backup()
    downloaded = tmp_path / "backup.json.gz"
    downloaded.write_bytes((tmp_path / "sink" / manifest.artifact("json").key).read_bytes())
    script = Path(__file__).resolve().parents[2] / "examples" / "restore-json-export" / "restore.py"
    for name, file in (("gz", downloaded), ("plain", tmp_path / "backup.json")):
        if name == "plain":
            file.write_bytes(gzip.decompress(downloaded.read_bytes()))
        target = tmp_path / f"restored-{name}.db"
        done = subprocess.run([sys.executable, str(script), str(file), f"sqlite:///{target}", "--create"],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert "restored 302 rows into 3 tables" in done.stdout
        assert sqlite_content(target) == sqlite_content(tmp_path / "a.db")


def test_a_row_postgresql_refuses_is_named_and_nothing_is_restored(pg: Database, tmp_path: Path) -> None:
    with pg.connect() as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, price numeric)")
        conn.execute("INSERT INTO items (price) SELECT i FROM generate_series(1, 20) i")
        conn.execute("CREATE TABLE other (x int); INSERT INTO other VALUES (1)")
    engine = backupkit.Engine.from_config({"sets": {"app": {
        "sources": [{"type": "json", "name": "db", "url": pg.url}], "sink": str(tmp_path / "sink")}}}, env={})
    manifest = engine.backup()
    target = pg.sibling("strict").create()
    with target.connect() as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, price numeric CHECK (price < 13))")
        conn.execute("CREATE TABLE other (x int)")
    with pytest.raises(RestoreError, match=r"table public\.items, row 13: .*check constraint.*nothing was restored"):
        engine.restore(manifest.id, to=target.url)
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM other").fetchone()[0] == 0
