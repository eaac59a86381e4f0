"""The ``json`` source plugin: :class:`JsonSource` and its hook implementation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from backupkit.errors import BackupkitError, ConfigError, RestoreError, SourceError
from backupkit.params import name_list, secret
from backupkit.plugin import (
    BackupContext,
    Reader,
    RestoreContext,
    Source,
    Writer,
)
from backupkit.sources.jsonexport import document
from backupkit.sources.jsonexport.database import (
    connect_error,
    describe_table,
    engine_for,
    full_name,
    reflect,
    safe_url,
)
from backupkit.sources.jsonexport.kinds import encoder, json_sql, select_sql
from backupkit.sources.jsonexport.restore import restore_export

if TYPE_CHECKING:
    from backupkit.plugin.scratch import Scratch

BATCH = 1000


@attrs.frozen
class JsonSource(Source):
    """A whole database as one JSON document, streamed row by row from one consistent
    read-only transaction; any database SQLAlchemy reflects (``url``:
    ``postgresql://...``, ``sqlite:///path``). See docs/json-export.md."""

    id: ClassVar[str] = "json"
    extension: ClassVar[str] = ".json"

    url: str | None = secret(default=None)
    schemas: tuple[str, ...] = attrs.field(default=(), converter=name_list)
    tables: tuple[str, ...] = attrs.field(default=(), converter=name_list)
    exclude_tables: tuple[str, ...] = attrs.field(default=(), converter=name_list)

    def _url(self) -> str:
        if not self.url:
            raise ConfigError("json source: give 'url' (e.g. postgresql://user@host/db or sqlite:///app.db)")
        return self.url

    def backup(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any] | None:
        url = self._url()
        engine = engine_for(url, what="json source")
        sa = __import__("sqlalchemy")
        dialect = engine.dialect.name
        try:
            options: dict[str, Any] = {}
            if dialect == "postgresql":
                options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
            with engine.connect().execution_options(**options) as conn:
                if dialect == "postgresql":
                    conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; "
                                         "SET LOCAL IntervalStyle = 'iso_8601'; SET LOCAL extra_float_digits = 3")
                version = ".".join(str(p) for p in engine.dialect.server_version_info or ())
                schemas: list[str | None] = list(self.schemas) or (["public"] if dialect == "postgresql" else [None])
                tables = reflect(conn, schemas, self.tables, self.exclude_tables)
                counts = {}
                for table in tables:
                    name = full_name(table, engine.dialect)
                    counts[name] = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                header = {
                    "format": document.FORMAT, "version": document.VERSION, "dialect": dialect,
                    "server_version": version, "exported_at": dt.datetime.now(dt.UTC).isoformat(),
                    "tables": [describe_table(t, engine.dialect, counts[full_name(t, engine.dialect)])
                               for t in tables],
                }
                writer = document.Writer(out.write)
                writer.head(header)
                for table, entry in zip(tables, header["tables"]):
                    ctx.progress(entry["name"])
                    n = self._rows(conn, table, entry, dialect, writer)
                    if n != entry["row_count"]:
                        raise SourceError(f"table {entry['name']}: {n} rows read, {entry['row_count']} "
                                          "counted in the same transaction; the database is not consistent")
                writer.end()
                conn.rollback()
        except BackupkitError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            raise connect_error(exc, url) from None
        finally:
            engine.dispose()
        return {"dialect": dialect, "server_version": version, "tables": counts, "rows": sum(counts.values()),
                "format_version": document.VERSION}

    @staticmethod
    def _rows(conn: Any, table: Any, entry: Mapping[str, Any], dialect: str, writer: document.Writer) -> int:
        preparer = conn.dialect.identifier_preparer
        columns = entry["columns"]
        order = ", ".join(preparer.quote(c) for c in entry["primary_key"]) or "1"
        source = preparer.format_table(table)
        writer.table(entry["name"])
        n = 0
        if dialect == "postgresql":  # the server writes each row's JSON array (C, not Python)
            exprs = [json_sql(preparer.quote(c["name"]), c["kind"]) for c in columns]
            query = f"SELECT json_build_array({', '.join(exprs)})::text FROM {source} ORDER BY {order}"
            with conn.connection.dbapi_connection.cursor(name=f"backupkit_{n}_{id(table)}") as cursor:
                cursor.itersize = 5000
                cursor.execute(query)
                for (text,) in cursor:
                    writer.row_text(text)
                    n += 1
            return n
        exprs = [select_sql(preparer.quote(c["name"]), c["kind"], dialect) for c in columns]
        encoders = [encoder(c["kind"], f"table {entry['name']}, column {c['name']}") for c in columns]
        query = f"SELECT {', '.join(exprs)} FROM {source} ORDER BY {order}"
        result = conn.execution_options(stream_results=True, yield_per=BATCH).exec_driver_sql(query)
        for row in result:
            writer.row([None if v is None else enc(v) for enc, v in zip(encoders, row)])
            n += 1
        return n

    def drill_target(self, scratch: Scratch, ctx: RestoreContext) -> str:
        """A throwaway database of the export's dialect: a scratch PostgreSQL database for a
        PostgreSQL export, a new SQLite file for any other."""
        if ctx.facts.get("dialect") == "postgresql":
            from backupkit.sources.postgres.drill import scratch_database

            return scratch_database(scratch, ctx.artifact)
        return f"sqlite:///{scratch.directory(ctx.artifact) / 'drill.sqlite3'}"

    def restore(self, stream: Reader, ctx: RestoreContext) -> Mapping[str, Any] | None:
        target = ctx.target
        if target is None or "://" not in str(target):
            raise RestoreError(f"artifact {ctx.artifact} is a database export: restore it into a database, "
                               f"e.g. --to {ctx.artifact}=postgresql://user@host/db or sqlite:///path.db")
        return restore_export(str(target), stream, ctx)

    def check(self, stream: Reader, ctx: RestoreContext) -> str | None:
        """Read the document through, checking its layout and every table's row count."""
        header, tables = document.read(stream.read)
        want = {t["name"]: t["row_count"] for t in header["tables"]}
        for name, rows in tables:
            n = sum(1 for _ in rows)
            if want.get(name) != n:
                raise RestoreError(f"artifact {ctx.artifact}: table {name} holds {n} rows, its header says "
                                   f"{want.get(name)}")
        return None



__all__ = ["JsonSource", "safe_url"]
