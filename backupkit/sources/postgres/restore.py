"""Restoring a ``postgres`` artifact: an archive through ``pg_restore`` into a target
database in one transaction, then every table's row count checked against the
manifest; the globals through ``psql``; and checking an archive without a server.

A restore never leaves half a database: ``pg_restore --single-transaction`` commits
only once it has read the whole archive, and the archive's last bytes reach it only
after the engine checked the stream's checksums (:func:`backupkit.plugin.held_back`). A
database the restore created is dropped again when the restore fails.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any

from backupkit.errors import RestoreError, SourceError
from backupkit.plugin import Reader, RestoreContext
from backupkit.sources.postgres import catalog
from backupkit.sources.postgres.connection import Conn
from backupkit.sources.postgres.programs import CHUNK, stream_in
from backupkit.sources.postgres.tools import candidates, find_program

#: Restore options (``RestoreContext.options``, the CLI's flags) this source reads.
OPTIONS = ("clean", "create", "no_owner", "no_privileges")


def archive_format(ctx: RestoreContext) -> str:
    """pg_restore's ``--format`` for the artifact: a parallel dump is stored as tar."""
    return "--format=tar" if ctx.facts.get("format") == "directory" else "--format=custom"


def _dbname(conn: Conn) -> str:
    assert conn.dbname, "a target names its database"
    return conn.dbname


def _exists(conn: Conn) -> bool:
    with contextlib.closing(conn.with_dbname("postgres").connect(autocommit=True)) as db:
        row = db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (conn.dbname,)).fetchone()
    return row is not None


def _create(conn: Conn) -> None:
    from psycopg import sql

    with contextlib.closing(conn.with_dbname("postgres").connect(autocommit=True)) as db:
        db.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(_dbname(conn))))


def _drop(conn: Conn) -> None:
    from psycopg import sql

    with contextlib.suppress(SourceError, Exception), contextlib.closing(
        conn.with_dbname("postgres").connect(autocommit=True)
    ) as db:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(_dbname(conn))))


def _connect_target(conn: Conn, ctx: RestoreContext) -> tuple[Any, bool]:
    """A connection to the target database, creating it when asked (and saying so)."""
    created = False
    if not _exists(conn):
        if not ctx.options.get("create"):
            raise RestoreError(
                f"database {conn.dbname!r} does not exist at {conn.where()}; create it, or pass "
                "--create to have the restore create it"
            )
        _create(conn)
        created = True
    return conn.connect(), created


def restore_database(conn: Conn, stream: Reader, ctx: RestoreContext, *, bin_dir: str | None) -> Mapping[str, Any]:
    """Restore one database archive into the database *conn* names; check its row counts."""
    if not conn.dbname:
        raise RestoreError(f"the target of {ctx.artifact} names no database; end the URL with /dbname")
    clean = bool(ctx.overwrite or ctx.options.get("clean"))
    db, created = _connect_target(conn, ctx)
    try:
        with contextlib.closing(db):
            if not clean and catalog.user_objects(db):
                raise RestoreError(
                    f"database {conn.dbname!r} at {conn.where()} is not empty; restore into an "
                    "empty database, or pass --clean to drop and replace what the backup holds"
                )
            pg_restore = find_program("pg_restore", None, bin_dir)
            db.rollback()
            args = [pg_restore, f"--dbname={conn.conninfo()}", "--no-password", archive_format(ctx),
                    "--single-transaction", "--exit-on-error"]
            if clean:
                args += ["--clean", "--if-exists"]
            if ctx.options.get("no_owner"):
                args.append("--no-owner")
            if ctx.options.get("no_privileges"):
                args.append("--no-privileges")
            stream_in(args, conn, stream, what=f"pg_restore into database {conn.dbname!r} failed; "
                      "nothing was restored")
            expected = dict(ctx.facts.get("tables") or {})
            tables = [t for t in catalog.all_tables(db) if catalog.qualified(*t) in expected]
            actual = catalog.row_counts(db, tables)
            db.rollback()
    except BaseException:
        if created:
            _drop(conn)
        raise
    problems = catalog.compare(expected, actual)
    if problems:
        raise RestoreError(
            f"database {conn.dbname!r} was restored but its row counts differ from the backup: "
            + "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        )
    return {"database": conn.dbname, "tables_checked": len(actual), "rows": sum(actual.values()),
            "row_counts_match": True, "created": created}


_HARMLESS = re.compile(r'role "[^"]+" already exists|tablespace "[^"]+" already exists')


def restore_globals(conn: Conn, stream: Reader, ctx: RestoreContext, *, bin_dir: str | None) -> Mapping[str, Any]:
    """Replay the roles and tablespaces with ``psql`` (roles that exist already are kept)."""
    if not conn.dbname:
        conn = conn.with_dbname("postgres")
    psql = find_program("psql", None, bin_dir)
    stderr = stream_in([psql, f"--dbname={conn.conninfo()}", "--no-password", "-X", "-q",
                        "-v", "ON_ERROR_STOP=0", "-f", "-"], conn, stream,
                       what="psql could not restore the roles and tablespaces")
    errors = [ln for ln in stderr.splitlines() if "ERROR:" in ln and not _HARMLESS.search(ln)]
    if errors:
        raise RestoreError(f"restoring the roles and tablespaces failed: {conn.redact(errors[0].strip())}")
    return {"part": "globals", "roles_existing": sum(1 for ln in stderr.splitlines() if _HARMLESS.search(ln))}


def check_archive(stream: Reader, ctx: RestoreContext, *, bin_dir: str | None, globals_: bool) -> str | None:
    """Read a database archive whole through ``pg_restore -f /dev/null`` (``--list``
    would pass a truncated one); without ``pg_restore`` here, read it to its end and
    say that only the checksums were checked."""
    if globals_:
        while stream.read(CHUNK):
            pass
        return None
    if not candidates("pg_restore", bin_dir):
        while stream.read(CHUNK):
            pass
        return "checksums only: pg_restore is not installed here, so the archive was not read through"
    pg_restore = find_program("pg_restore", None, bin_dir)
    stream_in([pg_restore, archive_format(ctx), "--file=/dev/null"], Conn({}), stream,
              what=f"archive {ctx.artifact} is not a complete pg_dump archive")
    while stream.read(CHUNK):  # pg_restore stopped early: the checksums are still checked
        pass
    return None



