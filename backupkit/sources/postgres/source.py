"""The ``postgres`` source plugin: :class:`PostgresSource` and its hook implementation."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from backupkit.errors import RestoreError, SourceError
from backupkit.params import check_range, name_list, secret
from backupkit.plugin import (
    BackupContext,
    Reader,
    RestoreContext,
    Source,
    Writer,
)
from backupkit.sources.postgres import catalog
from backupkit.sources.postgres.connection import Conn
from backupkit.sources.postgres.directory import dump_directory
from backupkit.sources.postgres.drill import is_own_cluster, scratch_database, scratch_server
from backupkit.sources.postgres.programs import stream_out
from backupkit.sources.postgres.restore import check_archive, restore_database, restore_globals
from backupkit.sources.postgres.tools import find_program, program_version

if TYPE_CHECKING:
    from backupkit.plugin.scratch import Scratch


def _opt_names(value: Any) -> tuple[str, ...] | None:
    return None if value is None else name_list(value)


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.split()[0].partition(".")
    return int(major), int(minor.split(".")[0] or 0) if minor else 0


@attrs.frozen
class PostgresSource(Source):
    """PostgreSQL databases as ``pg_dump`` custom-format archives, one artifact each.

    Connection: ``url`` (``postgresql://user@host:port/dbname``), or libpq keywords
    (``host``, ``port``, ``user``, ``dbname``, ``password``, ``sslmode``, ``passfile``),
    or ``DATABASE_URL`` and the ``PG*`` variables. ``databases`` lists the databases
    to back up; without it, the one the connection names, or every database that is
    not a template when it names none. ``globals = true`` adds the roles and
    tablespaces (``pg_dumpall --globals-only``) as artifact ``<name>.globals``.
    """

    id: ClassVar[str] = "postgres"
    extension: ClassVar[str] = ".dump"

    url: str | None = secret(default=None)
    host: str | None = None
    port: int | None = attrs.field(default=None, validator=attrs.validators.optional(check_range(1, 65535)))
    user: str | None = None
    dbname: str | None = None
    password: str | None = secret(default=None)
    sslmode: str | None = None
    passfile: str | None = None
    databases: tuple[str, ...] | None = attrs.field(default=None, converter=_opt_names)
    globals: bool = False
    schemas: tuple[str, ...] = attrs.field(default=(), converter=name_list)
    exclude_schemas: tuple[str, ...] = attrs.field(default=(), converter=name_list)
    tables: tuple[str, ...] = attrs.field(default=(), converter=name_list)
    exclude_tables: tuple[str, ...] = attrs.field(default=(), converter=name_list)
    large_objects: bool = True
    #: ``custom`` (one pg_dump process, streamed) or ``directory`` (``-Fd -j jobs`` into
    #: ``temp_dir``, then stored as a tar archive that ``pg_restore -Ft`` reads).
    format: str = attrs.field(default="custom", validator=attrs.validators.in_(("custom", "directory")))
    jobs: int = attrs.field(default=2, validator=check_range(1, 64))
    temp_dir: str | None = None
    bin_dir: str | None = None
    #: What this artifact holds: one database, or the globals (set per artifact).
    part: str = attrs.field(default="database", validator=attrs.validators.in_(("database", "globals")))

    # -- connection ---------------------------------------------------------------------
    def conn(self) -> Conn:
        """Where to connect, resolved from the parameters and the environment."""
        keywords = {"host": self.host, "port": self.port, "user": self.user, "dbname": self.dbname,
                    "sslmode": self.sslmode, "passfile": self.passfile}
        return Conn.resolve(self.url, keywords, self.password)

    def expand(self, name: str) -> list[tuple[str, Source]]:
        """One source per database (and one for the globals), each recording where it
        connects but never the password."""
        conn = self.conn()
        if self.databases is not None:
            names = list(self.databases)
        elif conn.dbname:
            names = [conn.dbname]
        else:
            with contextlib.closing(conn.with_dbname("postgres").connect(autocommit=True)) as c:
                rows = c.execute("SELECT datname FROM pg_database WHERE NOT datistemplate "
                                 "AND datallowconn ORDER BY 1").fetchall()
            names = [r[0] for r in rows]
        k = conn.keywords
        common: dict[str, Any] = {"url": None, "host": k.get("host"), "port": int(k["port"]) if k.get("port") else None,
                  "user": k.get("user"), "sslmode": k.get("sslmode"), "passfile": k.get("passfile"),
                  "databases": None, "globals": False, "password": conn.password}
        single = len(names) == 1 and self.databases is None
        out: list[tuple[str, Source]] = []
        if self.globals:
            out.append((f"{name}.globals", attrs.evolve(self, **common, dbname=names[0] if names else None,
                                                        part="globals")))
        for db in names:
            out.append((name if single else f"{name}.{db}", attrs.evolve(self, **common, dbname=db)))
        return out

    # -- backup -------------------------------------------------------------------------
    def backup(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any] | None:
        if self.databases is not None or (self.part == "database" and not self.conn().dbname):
            raise SourceError(f"postgres source {ctx.artifact}: the engine did not expand it into databases")
        if self.part == "globals":
            return self._backup_globals(out, ctx)
        return self._backup_database(out, ctx)

    def stream_extension(self) -> str:
        """``.dump`` for the custom format, ``.tar`` for the parallel directory mode."""
        return ".tar" if self.format == "directory" else self.extension

    def _dump_args(self, conn: Conn, snapshot: str) -> list[str]:
        args = [f"--dbname={conn.conninfo()}", "--compress=0", f"--snapshot={snapshot}", "--no-password"]
        args += [f"--schema={p}" for p in self.schemas]
        args += [f"--exclude-schema={p}" for p in self.exclude_schemas]
        args += [f"--table={p}" for p in self.tables]
        args += [f"--exclude-table={p}" for p in self.exclude_tables]
        filtered = bool(self.schemas or self.tables)
        if self.large_objects and filtered:
            args.append("-b")
        elif not self.large_objects:
            args.append("-B")
        return args

    def _backup_database(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any]:
        conn = self.conn()
        ctx.progress(conn.dbname or "")
        with contextlib.closing(conn.connect()) as db:
            db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            (server,) = catalog.one(db, "SELECT current_setting('server_version')")
            pg_dump = find_program("pg_dump", _version(server), self.bin_dir)
            (snapshot,) = catalog.one(db, "SELECT pg_export_snapshot()")
            facts = catalog.facts(db)
            tables = catalog.selected(catalog.all_tables(db), schemas=self.schemas,
                                      exclude_schemas=self.exclude_schemas, include=self.tables,
                                      exclude=self.exclude_tables)
            if denied := catalog.unreadable(db, tables):
                raise SourceError(
                    f"pg_dump of database {conn.dbname!r}: permission denied for table {denied[0]}"
                    f"{f' (and {len(denied) - 1} more)' if len(denied) > 1 else ''}: the role lacks "
                    "SELECT on it; GRANT it, or leave it out with 'exclude_tables'"
                )
            counts: dict[str, int] = {}
            what = f"pg_dump of database {conn.dbname!r} failed"

            def count() -> None:
                counts.update(catalog.row_counts(db, tables))

            if self.format == "directory":
                pg_restore = find_program("pg_restore", None, self.bin_dir)
                dump_directory(pg_dump, pg_restore, self._dump_args(conn, snapshot), conn, out,
                               jobs=self.jobs, temp_dir=self.temp_dir, what=what, during=count)
            else:
                stream_out([pg_dump, *self._dump_args(conn, snapshot), "--format=custom"], conn, out,
                           what=what, during=count)
            db.rollback()
        major, minor = program_version(pg_dump)
        if not self.large_objects:
            facts["large_objects"] = 0
        return {"database": conn.dbname, **facts, "pg_dump_version": f"{major}.{minor}",
                "format": self.format, "tables": counts, "rows": sum(counts.values())}

    def _backup_globals(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any]:
        conn = self.conn()
        ctx.progress("globals")
        with contextlib.closing(conn.connect(autocommit=True)) as db:
            (server,) = catalog.one(db, "SELECT current_setting('server_version')")
            (superuser,) = catalog.one(db, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            (roles,) = catalog.one(db, "SELECT count(*) FROM pg_roles WHERE rolname !~ '^pg_'")
        pg_dumpall = find_program("pg_dumpall", _version(server), self.bin_dir)
        args = [pg_dumpall, f"--dbname={conn.conninfo()}", "--globals-only", "--no-password"]
        if not superuser:
            args.append("--no-role-passwords")  # pg_authid is for superusers only
        stream_out(args, conn, out, what="pg_dumpall --globals-only failed")
        return {"part": "globals", "server_version": server, "roles": int(roles),
                "role_passwords": bool(superuser)}

    # -- restore ------------------------------------------------------------------------
    def target_conn(self, ctx: RestoreContext) -> Conn:
        """The database a restore goes into, from the target URL."""
        target = ctx.target
        if target is None or isinstance(target, Path) or ("://" not in str(target) and "=" not in str(target)):
            raise RestoreError(
                f"artifact {ctx.artifact} is a PostgreSQL database: restore it into one, "
                f"e.g. --to {ctx.artifact}=postgresql://user@host:5432/dbname"
            )
        return Conn.resolve(str(target), {}, None, env={})

    def drill_target(self, scratch: Scratch, ctx: RestoreContext) -> str | None:
        """A throwaway database (the globals: the drill's own cluster, or none on a shared
        scratch server, where roles would outlive the drill: then the dump is only read)."""
        if self.part == "globals":
            return scratch_server(scratch) if is_own_cluster(scratch) else None
        return scratch_database(scratch, ctx.artifact)

    def restore(self, stream: Reader, ctx: RestoreContext) -> Mapping[str, Any] | None:
        conn = self.target_conn(ctx)
        if self.part == "globals":
            return restore_globals(conn, stream, ctx, bin_dir=self.bin_dir)
        return restore_database(conn, stream, ctx, bin_dir=self.bin_dir)

    def check(self, stream: Reader, ctx: RestoreContext) -> str | None:
        """Read an archive whole through ``pg_restore -f /dev/null`` (see :func:`check_archive`)."""
        return check_archive(stream, ctx, bin_dir=self.bin_dir, globals_=self.part == "globals")

