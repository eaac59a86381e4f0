"""The postgres source against a real PostgreSQL 15 server (a throwaway cluster per session)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import backupkit
from backupkit.errors import ConfigError, RestoreError, SourceError
from backupkit.plugin import RestoreContext, Source
from backupkit.sources.postgres import PostgresSource
from backupkit.sources.postgres.catalog import pattern_regex, selected
from backupkit.sources.postgres.connection import Conn
from backupkit.testing.postgres import Database
from backupkit.testing.source_suite import SourceConformance

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE SCHEMA billing;
CREATE TABLE public.people (
    id bigserial PRIMARY KEY, name text NOT NULL, born date, mood mood, tags text[],
    balance numeric(12, 2), photo bytea, seen timestamptz, profile jsonb, uid uuid,
    ratio double precision
);
CREATE INDEX people_name ON public.people (name);
CREATE TABLE billing.invoices (
    id serial PRIMARY KEY, person bigint REFERENCES public.people (id), total numeric, paid boolean
);
CREATE VIEW billing.unpaid AS SELECT * FROM billing.invoices WHERE NOT paid;
CREATE SEQUENCE billing.numbers START 1000;
"""


def populate(db: Database, rows: int = 2000) -> None:
    with db.connect() as conn:
        conn.execute(SCHEMA)
        conn.execute(
            """INSERT INTO public.people (name, born, mood, tags, balance, photo, seen, profile, uid, ratio)
               SELECT 'person ' || i, date '1970-01-01' + i, (ARRAY['sad','ok','happy'])[1 + i %% 3]::mood,
                      ARRAY['t' || i %% 7, 'x'], i * 1.25, decode(md5(i::text), 'hex'),
                      timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute',
                      jsonb_build_object('i', i, 'even', i %% 2 = 0), md5(i::text)::uuid, i / 7.0
                 FROM generate_series(1, %s) i""", (rows,))
        conn.execute("INSERT INTO billing.invoices (person, total, paid) "
                     "SELECT id, id * 3.5, id % 4 = 0 FROM public.people")
        conn.execute("SELECT setval('billing.numbers', 1234)")
        conn.execute("SELECT lo_from_bytea(0, 'a large object')")


def content(url: str) -> dict[str, Any]:
    """Every table's rows as an ordered md5 (fixed output settings), sequences, views,
    indexes and large objects: what two databases share when one is a restore of the other."""
    out: dict[str, Any] = {}
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET extra_float_digits = 3")
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall()
        for schema, table in tables:
            (digest, n) = conn.execute(
                f"SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')), count(*) "
                f'FROM "{schema}"."{table}" t').fetchone()
            out[f"{schema}.{table}"] = (n, digest)
        out["views"] = conn.execute("SELECT schemaname, viewname, definition FROM pg_views "
                                    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").fetchall()
        out["sequences"] = conn.execute(
            "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2").fetchall()
        out["indexes"] = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' "
                                      "ORDER BY 1").fetchall()
        out["large_objects"] = conn.execute(
            "SELECT encode(lo_get(oid), 'escape') FROM pg_largeobject_metadata ORDER BY oid").fetchall()
    return out


def tables_of(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if "." in k}


class TestPostgresSource(SourceConformance):
    @pytest.fixture
    def params(self, pg: Database) -> dict[str, Any]:
        populate(pg, rows=300)
        return {"type": "postgres", "url": pg.url}

    @pytest.fixture
    def target(self, pg: Database) -> str:
        return pg.sibling("restored").create().url

    def expected(self, source: Source) -> Any:
        assert isinstance(source, PostgresSource) and source.url
        return content(source.url)

    def restored(self, target: str) -> Any:
        data = content(target)
        return data if tables_of(data) else None


# -- helpers ------------------------------------------------------------------------------
def pg_config(sink: Path, *sources: dict[str, Any], **set_body: Any) -> dict[str, Any]:
    return {"sets": {"app": {"sources": list(sources), "sink": str(sink), **set_body}}}


def engine_over(sink: Path, *sources: dict[str, Any], **set_body: Any) -> backupkit.Engine:
    return backupkit.Engine.from_config(pg_config(sink, *sources, **set_body), env={})


def manifest_files(sink: Path) -> list[Path]:
    return sorted(sink.rglob("*.manifest.json"))


# -- round trips ----------------------------------------------------------------------------
def test_a_database_of_every_common_type_round_trips_exactly(pg: Database, tmp_path: Path) -> None:
    populate(pg, rows=100_000)
    engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": pg.url})
    manifest = engine.backup()
    facts = manifest.artifact("db").extra
    assert facts["tables"] == {"billing.invoices": 100_000, "public.people": 100_000}
    assert facts["rows"] == 200_000 and facts["large_objects"] == 1
    assert facts["server_version"].startswith("15.") and facts["pg_dump_version"].startswith("15.")
    assert facts["database_size"] > 1_000_000 and "plpgsql" in facts["extensions"]
    assert manifest.artifact("db").key.endswith(".dump.zst")

    target = pg.sibling("restored")
    result = engine.restore(manifest.id, to=target.url, options={"create": True})
    assert content(target.url) == content(pg.url)
    assert result.checks["db"]["row_counts_match"] is True
    assert result.checks["db"]["tables_checked"] == 2 and result.checks["db"]["created"] is True


def test_counts_in_the_manifest_match_the_archive_while_a_writer_inserts(pg: Database, tmp_path: Path) -> None:
    populate(pg, rows=50_000)
    stop, inserted = threading.Event(), [0]

    def writer() -> None:
        with pg.connect(autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO public.people (name) VALUES ('late')")
                conn.execute("INSERT INTO billing.invoices (total, paid) VALUES (1, false)")
                inserted[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while inserted[0] < 20:
            time.sleep(0.01)
        engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": pg.url})
        before = inserted[0]
        manifest = engine.backup()
        during = inserted[0] - before
    finally:
        stop.set()
        thread.join()
    assert during > 0, "the writer did not run during the backup"
    counts = manifest.artifact("db").extra["tables"]
    target = pg.sibling("restored").create()
    engine.restore(manifest.id, to=target.url)  # checks the counts itself, and here again:
    with target.connect() as conn:
        for table, n in counts.items():
            schema, name = table.split(".")
            assert conn.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()[0] == n
    with pg.connect() as conn:  # the source kept growing after the snapshot
        assert conn.execute("SELECT count(*) FROM public.people").fetchone()[0] > counts["public.people"]


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd program")
def test_the_artifact_restores_with_zstd_and_pg_restore_alone(pg: Database, tmp_path: Path) -> None:
    populate(pg, rows=500)
    manifest = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": pg.url}).backup()
    stored = tmp_path / "sink" / manifest.artifact("db").key
    target = pg.sibling("plain").create()
    pipeline = f"zstd -d < {stored} | pg_restore --exit-on-error -d '{target.url}'"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True,
                            check=False, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    assert content(target.url) == content(pg.url)


def test_several_databases_and_the_globals_in_one_backup(pg: Database, tmp_path: Path) -> None:
    other = pg.sibling("second").create()
    populate(pg, rows=100)
    with other.connect() as conn:
        conn.execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('x'), ('y')")
    with psycopg.connect(pg.cluster.url(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS reporting; CREATE ROLE reporting LOGIN")
    engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "pg", "url": pg.cluster.url(),
                                              "databases": [pg.name, other.name], "globals": True})
    manifest = engine.backup()
    names = [a.name for a in manifest.artifacts]
    assert names == ["pg.globals", f"pg.{pg.name}", f"pg.{other.name}"]
    assert manifest.artifact(f"pg.{other.name}").extra["tables"] == {"public.notes": 2}
    assert manifest.artifact("pg.globals").extra["roles"] >= 2
    params = manifest.artifact(f"pg.{pg.name}").source.params
    assert params["dbname"] == pg.name and params.get("databases") is None
    assert "password" not in params and "url" not in params

    with psycopg.connect(pg.cluster.url(), autocommit=True) as conn:
        conn.execute("DROP ROLE reporting")
    a, b = pg.sibling("ra"), pg.sibling("rb")
    engine.restore(manifest.id, to={"pg.globals": pg.cluster.url(), f"pg.{pg.name}": a.url,
                                    f"pg.{other.name}": b.url}, options={"create": True})
    with psycopg.connect(pg.cluster.url()) as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'reporting'").fetchone()[0] == 1
    assert content(a.url) == content(pg.url)
    assert content(b.url) == content(other.url)


def test_files_and_a_database_are_one_backup_restored_by_one_command(
    pg: Database, tmp_path: Path, cli: Any
) -> None:
    populate(pg, rows=100)
    src = tmp_path / "media"
    src.mkdir()
    (src / "logo.png").write_bytes(b"\x89PNG fake")
    config = tmp_path / "backupkit.toml"
    config.write_text(
        f'[sets.app]\nsink = "{tmp_path / "sink"}"\n'
        f'[[sets.app.sources]]\ntype = "filesystem"\nname = "files"\npaths = ["{src}"]\n'
        f'[[sets.app.sources]]\ntype = "postgres"\nname = "db"\nurl = "{pg.url}"\n'
    )
    backup = cli("backup", "--config", config, "--json")
    assert backup.returncode == 0, backup.stderr
    assert len(manifest_files(tmp_path / "sink")) == 1
    target = pg.sibling("both").create()
    restored = cli("restore", "--config", config, "latest", "--to", f"files={tmp_path / 'out'}",
                   "--to", f"db={target.url}")
    assert restored.returncode == 0, restored.stderr
    assert "db: 2 tables, row counts match the backup" in restored.stdout
    assert (tmp_path / "out" / "media" / "logo.png").read_bytes() == b"\x89PNG fake"
    assert content(target.url) == content(pg.url)

    only = pg.sibling("only").create()
    one = cli("restore", "--config", config, "latest", "--artifact", "db", "--to", only.url)
    assert one.returncode == 0, one.stderr
    assert content(only.url) == content(pg.url)


# -- restore's refusals -------------------------------------------------------------------
def test_a_non_empty_target_is_refused_without_clean_and_replaced_with_it(
    pg: Database, tmp_path: Path, cli: Any
) -> None:
    populate(pg, rows=50)
    config = tmp_path / "backupkit.toml"
    config.write_text(f'[sets.app]\nsink = "{tmp_path / "sink"}"\n'
                      f'[[sets.app.sources]]\ntype = "postgres"\nname = "db"\nurl = "{pg.url}"\n')
    assert cli("backup", "--config", config).returncode == 0
    target = pg.sibling("busy").create()
    with target.connect() as conn:
        conn.execute("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (1)")
    refused = cli("restore", "--config", config, "latest", "--to", target.url)
    line = cli.error_line(refused, "is not empty", "--clean")
    assert target.name in line
    with target.connect() as conn:
        assert conn.execute("SELECT count(*) FROM keep_me").fetchone()[0] == 1
    cleaned = cli("restore", "--config", config, "latest", "--to", target.url, "--clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert tables_of(content(target.url)) == {**tables_of(content(pg.url)), "public.keep_me": (1, ANY)}


class _Any:
    def __eq__(self, other: object) -> bool:
        return True


ANY = _Any()


def test_a_missing_target_database_needs_create(pg: Database, tmp_path: Path) -> None:
    populate(pg, rows=10)
    engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": pg.url})
    manifest = engine.backup()
    missing = pg.sibling("missing")
    with pytest.raises(RestoreError, match=f"database '{missing.name}' does not exist.*--create"):
        engine.restore(manifest.id, to=missing.url)
    with pytest.raises(RestoreError, match="restore it into one, e.g. --to db=postgresql://"):
        engine.restore(manifest.id, to=tmp_path / "dir")


def test_a_restore_that_fails_leaves_no_half_database_and_drops_one_it_created(
    pg: Database, tmp_path: Path
) -> None:
    populate(pg, rows=10)
    engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": pg.url})
    manifest = engine.backup()
    stored = tmp_path / "sink" / manifest.artifact("db").key
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    target = pg.sibling("damaged")
    with pytest.raises(backupkit.BackupkitError):
        engine.restore(manifest.id, to=target.url, options={"create": True})
    with psycopg.connect(pg.cluster.url()) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                            (target.name,)).fetchone()[0] == 0


# -- verify ---------------------------------------------------------------------------------
def test_verify_reads_the_archive_whole_and_pg_restore_refuses_a_truncated_one(
    pg: Database, tmp_path: Path
) -> None:
    populate(pg, rows=2000)
    engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": pg.url}, compress=False)
    manifest = engine.backup()
    result = engine.verify(manifest.id)
    assert result.ok, result.to_dict()
    raw = (tmp_path / "sink" / manifest.artifact("db").key).read_bytes()
    ctx = RestoreContext(artifact="db", target=None)
    assert PostgresSource().check(io.BytesIO(raw), ctx) is None
    with pytest.raises(RestoreError, match="not a complete pg_dump archive"):
        PostgresSource().check(io.BytesIO(raw[: len(raw) * 2 // 3]), ctx)


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["unreachable", "no such role", "no such database", "bad url"])
def test_connection_problems_are_one_line_errors_and_nothing_is_stored(
    pg: Database, tmp_path: Path, cli: Any, case: str
) -> None:
    from backupkit.plugin.scratch import free_port

    url = {
        "unreachable": f"postgresql://postgres:hunter2secret@127.0.0.1:{free_port()}/app",
        "no such role": f"postgresql://nobody:hunter2secret@127.0.0.1:{pg.cluster.port}/{pg.name}",
        "no such database": f"postgresql://postgres:hunter2secret@127.0.0.1:{pg.cluster.port}/nope",
        "bad url": "postgresql://[::1:bad",
    }[case]
    want = {"unreachable": "cannot connect to PostgreSQL at postgres@127.0.0.1",
            "no such role": 'role "nobody" does not exist',
            "no such database": 'database "nope" does not exist',
            "bad url": "'url' is not a valid PostgreSQL URL"}[case]
    config = tmp_path / "backupkit.toml"
    config.write_text(f'[sets.app]\nsink = "{tmp_path / "sink"}"\n'
                      f'[[sets.app.sources]]\ntype = "postgres"\nname = "db"\nurl = "{url}"\n')
    result = cli("backup", "--config", config)
    line = cli.error_line(result, want)
    assert "hunter2secret" not in result.stderr + result.stdout
    assert manifest_files(tmp_path / "sink") == []
    for path in (tmp_path / "sink").rglob("*"):
        assert "hunter2secret" not in path.read_text(errors="replace") if path.is_file() else True
    assert "Traceback" not in line


def test_a_table_the_role_cannot_read_is_named_with_what_to_grant(pg: Database, tmp_path: Path) -> None:
    populate(pg, rows=10)
    with pg.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS limited; CREATE ROLE limited LOGIN")
        conn.execute("GRANT USAGE ON SCHEMA billing TO limited")
        conn.execute("GRANT SELECT ON public.people TO limited")
        conn.execute("GRANT SELECT, USAGE ON ALL SEQUENCES IN SCHEMA public, billing TO limited")
    url = f"postgresql://limited@127.0.0.1:{pg.cluster.port}/{pg.name}"
    engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": url, "large_objects": False})
    with pytest.raises(SourceError, match=r"permission denied for table billing.invoices.*GRANT") as caught:
        engine.backup()
    assert "\n" not in str(caught.value)
    assert manifest_files(tmp_path / "sink") == []
    # excluding it is the other way out
    engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": url,
                                              "large_objects": False, "exclude_tables": ["billing.*"]})
    manifest = engine.backup()
    assert manifest.artifact("db").extra["tables"] == {"public.people": 10}


def test_large_objects_the_role_cannot_read_say_so(pg: Database, tmp_path: Path) -> None:
    populate(pg, rows=5)
    with pg.connect() as conn:
        conn.execute("DROP ROLE IF EXISTS reader; CREATE ROLE reader LOGIN IN ROLE pg_read_all_data")
    url = f"postgresql://reader@127.0.0.1:{pg.cluster.port}/{pg.name}"
    engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": url})
    with pytest.raises(SourceError, match="cannot read large objects.*large_objects = false"):
        engine.backup()


def _fake_bin(tmp_path: Path, script: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for program in ("pg_dump", "pg_restore", "pg_dumpall", "psql"):
        path = bin_dir / program
        path.write_text("#!/bin/sh\n" + script.replace("PROGRAM", program))
        path.chmod(0o755)
    return bin_dir


def test_a_pg_dump_older_than_the_server_is_refused_naming_both_versions(pg: Database, tmp_path: Path) -> None:
    bin_dir = _fake_bin(tmp_path, 'echo "PROGRAM (PostgreSQL) 11.22"\n')
    engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": pg.url,
                                              "bin_dir": str(bin_dir)})
    with pytest.raises(SourceError, match=r"pg_dump 11\.22 .* older than the server \(PostgreSQL 15\.\d+\).*"
                                          r"postgresql-client-15"):
        engine.backup()
    assert manifest_files(tmp_path / "sink") == []


def test_a_missing_pg_dump_is_a_config_error_naming_bin_dir(pg: Database, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": pg.url,
                                              "bin_dir": str(tmp_path / "empty")})
    with pytest.raises(ConfigError, match="pg_dump is not in bin_dir"):
        engine.backup()


def test_pg_dump_killed_mid_stream_leaves_no_manifest_and_no_artifact(pg: Database, tmp_path: Path) -> None:
    populate(pg, rows=30_000)
    real = "/usr/lib/postgresql/15/bin"
    bin_dir = _fake_bin(
        tmp_path,
        f'if [ "$1" = --version ]; then exec {real}/PROGRAM --version; fi\n'
        f'{real}/PROGRAM "$@" | head -c 200000\nkill -9 $$\n',
    )
    engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": pg.url,
                                              "bin_dir": str(bin_dir)})
    with pytest.raises(SourceError, match="pg_dump of database .* failed"):
        engine.backup()
    assert manifest_files(tmp_path / "sink") == []
    assert [p for p in (tmp_path / "sink").rglob("*.dump*")] == []


def test_the_password_never_reaches_the_manifest_the_log_the_output_or_the_process_list(
    pg: Database, tmp_path: Path, cli: Any
) -> None:
    populate(pg, rows=20_000)
    secret = "Pa55-w0rd-never-shown"
    url = f"postgresql://postgres:{secret}@127.0.0.1:{pg.cluster.port}/{pg.name}"
    config = tmp_path / "backupkit.toml"
    config.write_text(f'[sets.app]\nsink = "{tmp_path / "sink"}"\n'
                      f'[[sets.app.sources]]\ntype = "postgres"\nname = "db"\nurl = "{url}"\n')
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for proc in Path("/proc").iterdir():
                with contextlib.suppress(OSError):
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    if "pg_dump" in cmd:
                        seen.append(cmd)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = cli("backup", "--config", config, "--json")
    finally:
        stop.set()
        watcher.join()
    assert result.returncode == 0, result.stderr
    assert seen, "pg_dump was never seen running"
    assert not any(secret in cmd for cmd in seen)
    assert secret not in result.stdout + result.stderr
    for path in (tmp_path / "sink").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    listing = cli("list", "--config", config, "--json")
    assert secret not in listing.stdout


# -- the pure parts -------------------------------------------------------------------------
def test_name_patterns_select_tables_as_pg_dump_does() -> None:
    tables = [("public", "people"), ("public", "People"), ("billing", "invoices"), ("billing", "log_2024")]
    assert selected(tables, schemas=["billing"]) == [("billing", "invoices"), ("billing", "log_2024")]
    assert selected(tables, exclude=["billing.log_*"]) == tables[:3]
    assert selected(tables, include=['"People"']) == [("public", "People")]
    assert selected(tables, include=["PEOPLE"]) == [("public", "people")]
    assert selected(tables, include=["*.invoice?"]) == [("billing", "invoices")]
    assert selected(tables, exclude_schemas=["pub*"]) == tables[2:]
    assert pattern_regex("a.b").match("a.b") and not pattern_regex("a.b").match("axb")


def test_connection_keywords_win_over_the_url_and_the_password_stays_apart() -> None:
    conn = Conn.resolve("postgresql://u:pw@h:5433/db?sslmode=require", {"dbname": "other", "port": 6000}, None)
    assert conn.keywords == {"user": "u", "host": "h", "port": "6000", "dbname": "other", "sslmode": "require"}
    assert conn.password == "pw" and "pw" not in conn.conninfo() and "pw" not in repr(conn)
    assert conn.child_env()["PGPASSWORD"] == "pw"
    assert conn.redact("failed for pw at h") == "failed for *** at h"
    from_env = Conn.resolve(None, {}, None, env={"DATABASE_URL": "postgresql://x@y/z"})
    assert from_env.keywords == {"user": "x", "host": "y", "dbname": "z"}


# -- the parallel directory mode --------------------------------------------------------------
def test_the_parallel_directory_mode_round_trips_and_plain_pg_restore_reads_it(
    pg: Database, tmp_path: Path
) -> None:
    populate(pg, rows=5000)
    with pg.connect() as conn:  # data files whose dump ids are not in restore order
        conn.execute("CREATE TABLE public.zzz_first AS SELECT i FROM generate_series(1, 300) i")
        conn.execute("CREATE TABLE public.aaa_last AS SELECT i FROM generate_series(1, 200) i")
        conn.execute("SELECT lo_from_bytea(0, 'second large object')")
    temp = tmp_path / "scratch"
    temp.mkdir()
    engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": pg.url,
                                              "format": "directory", "jobs": 2, "temp_dir": str(temp)})
    manifest = engine.backup()
    artifact = manifest.artifact("db")
    assert artifact.key.endswith(".tar.zst") and artifact.extra["format"] == "directory"
    assert artifact.extra["tables"]["public.zzz_first"] == 300
    assert list(temp.iterdir()) == []  # the temporary dump is gone
    assert engine.verify(manifest.id).ok
    target = pg.sibling("fromdir")
    engine.restore(manifest.id, to=target.url, options={"create": True})
    assert content(target.url) == content(pg.url)

    if shutil.which("zstd"):
        plain = pg.sibling("plaintar").create()
        pipeline = (f"zstd -d < {tmp_path / 'sink' / artifact.key} | "
                    f"pg_restore -Ft --exit-on-error -d '{plain.url}'")
        done = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stderr
        assert content(plain.url) == content(pg.url)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tiny tmpfs")
def test_a_full_temp_dir_in_directory_mode_is_a_one_line_error_and_nothing_is_stored(
    pg: Database, tmp_path: Path
) -> None:
    populate(pg, rows=20_000)
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(tiny)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        engine = engine_over(tmp_path / "sink", {"type": "postgres", "name": "db", "url": pg.url,
                                                  "format": "directory", "temp_dir": str(tiny)})
        with pytest.raises(SourceError, match="No space left on device.*free space") as caught:
            engine.backup()
        assert "\n" not in str(caught.value)
        assert list(tiny.iterdir()) == []
    finally:
        subprocess.run(["umount", str(tiny)], check=False)
    assert manifest_files(tmp_path / "sink") == []


def test_tar_members_follow_the_archives_restore_order() -> None:
    from backupkit.sources.postgres.directory import member_order

    listing = ("; comment\n214; 1259 16386 TABLE public a postgres\n"
               "3350; 0 16400 TABLE DATA public aaa postgres\n3342; 0 16386 TABLE DATA public zzz postgres\n"
               "3345; 0 0 BLOBS - BLOBS \n3360; 0 16500 SEQUENCE SET public s postgres\n")
    names = ["3342.dat", "3350.dat", "blob_20.dat", "blob_3.dat", "blobs.toc", "toc.dat"]
    assert member_order(listing, names) == [
        "toc.dat", "3350.dat", "3342.dat", "blob_3.dat", "blob_20.dat", "blobs.toc",
    ]
