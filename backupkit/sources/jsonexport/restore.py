"""Restoring a JSON export into a database, in one transaction.

Tables are filled in the export's order (foreign-key order, parents first) by batched
inserts; a PostgreSQL target gets text it casts to each column's type, so nothing
passes through a Python type that could lose it. Missing tables are created from the
recorded schema with ``create``; tables that hold rows are refused unless ``clean``
(then emptied, children first). Afterwards sequences and identity counters are set past
the restored maximums and every table's row count is compared with the header, still
inside the transaction: any error rolls everything back and names the table (and, for
a row the database refuses, its number).
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Mapping
from typing import Any

from backupkit.errors import BackupkitError, IntegrityError, RestoreError
from backupkit.plugin import Reader, RestoreContext
from backupkit.sources.jsonexport import document
from backupkit.sources.jsonexport.database import connect_error, engine_for, safe_url
from backupkit.sources.jsonexport.kinds import CAST_FROM_TEXT, decoder

BATCH = 1000


def _generic_type(sa: Any, kind: str) -> Any:
    return {"boolean": sa.Boolean(), "integer": sa.Integer(), "bigint": sa.BigInteger(), "numeric": sa.Numeric(),
            "float": sa.Float(), "bytes": sa.LargeBinary(), "date": sa.Date(), "timestamp": sa.DateTime(),
            "timestamptz": sa.DateTime(timezone=True), "time": sa.Time(), "interval": sa.Interval(),
            "uuid": sa.Uuid(), "json": sa.JSON()}.get(kind, sa.Text())


def _table_from_header(sa: Any, metadata: Any, entry: Mapping[str, Any], same_dialect: bool) -> Any:
    """A :class:`sqlalchemy.Table` for *entry*: its recorded SQL types on the dialect it
    came from, generic types of each kind on another."""
    columns = []
    for c in entry["columns"]:
        type_ = sa.types.NullType()
        if c.get("enum") and same_dialect:
            enum = c["enum"]
            type_ = sa.Enum(*enum["labels"], name=enum["name"], schema=enum.get("schema"))
        elif same_dialect:
            class Recorded(sa.types.UserDefinedType):  # type: ignore[misc]
                cache_ok = True
                spec = c["type"]

                def get_col_spec(self, **kw: Any) -> str:
                    return str(self.spec)
            type_ = Recorded()
        else:
            type_ = _generic_type(sa, c["kind"])
        default = c.get("default") if same_dialect else None
        if default and default.startswith("nextval(") and c["kind"] in ("integer", "bigint"):
            # a serial column: SERIAL/BIGSERIAL makes its sequence again (set past the rows later)
            type_, default = (sa.BigInteger() if c["kind"] == "bigint" else sa.Integer()), None
            autoincrement: Any = True
        else:
            autoincrement = False
        extra = [sa.Identity(always=c["identity"] == "always")] if c.get("identity") and same_dialect else []
        if extra:
            autoincrement = "auto"
        columns.append(sa.Column(c["name"], type_, *extra, nullable=c.get("nullable", True),
                                 primary_key=c["name"] in entry.get("primary_key", ()),
                                 autoincrement=autoincrement,
                                 server_default=sa.text(default) if default else None))
    table = sa.Table(entry["table"], metadata, *columns, schema=entry.get("schema"))
    for fk in entry.get("foreign_keys", ()):
        ref_schema, _, ref_table = fk["references"].rpartition(".")
        prefix = f"{ref_schema}.{ref_table}" if ref_schema else ref_table
        referred = [f"{prefix}.{c}" for c in fk["referred_columns"]]
        table.append_constraint(sa.ForeignKeyConstraint(fk["columns"], referred))
    return table


def restore_export(url: str, stream: Reader, ctx: RestoreContext) -> Mapping[str, Any]:
    """Restore the export on *stream* into the database at *url*."""
    sa = __import__("sqlalchemy")
    engine = engine_for(url, what=f"restore of {ctx.artifact}")
    dialect = engine.dialect.name
    header, tables = document.read(stream.read)
    entries = {t["name"]: t for t in header["tables"]}
    clean = bool(ctx.overwrite or ctx.options.get("clean"))
    try:
        with engine.begin() as conn:
            metadata = sa.MetaData()
            targets = _targets(sa, conn, metadata, header, create=bool(ctx.options.get("create")))
            busy = [name for name, t in targets.items()
                    if conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()]
            if busy and not clean:
                raise RestoreError(f"table {busy[0]} of {safe_url(url)} holds rows; restore into empty tables, "
                                   "or pass --clean to delete their rows first")
            for name in reversed(list(targets)):
                if clean:
                    conn.execute(targets[name].delete())
            counts: dict[str, int] = {}
            for name, rows in tables:
                if name not in entries:
                    raise IntegrityError(f"the export holds rows of {name}, which its header does not describe")
                counts[name] = _insert(sa, conn, targets[name], entries[name], rows, dialect)
            _bump_sequences(conn, targets, dialect)
            actual = {name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                      for name, t in targets.items()}
            wrong = [f"{n} has {actual[n]} rows, the export {e['row_count']}" for n, e in entries.items()
                     if actual.get(n) != e["row_count"]]
            if wrong:
                raise RestoreError(f"the restore of {ctx.artifact} was rolled back: " + "; ".join(wrong[:5]))
    except BackupkitError:
        raise
    except sa.exc.SQLAlchemyError as exc:
        raise connect_error(exc, url) from None
    finally:
        engine.dispose()
    return {"tables_checked": len(actual), "rows": sum(actual.values()), "row_counts_match": True}


def restore_file(path: str | os.PathLike[str], url: str, *, create: bool = False,
                 clean: bool = False) -> Mapping[str, Any]:
    """Restore an export file (``.json``, or ``.json.gz`` as downloaded) into *url*:
    what a host app runs after ``aws s3 cp s3://bucket/backups/....json.gz .``.

    With *create*, missing tables are created from the export; with *clean*, tables
    that hold rows are emptied first. Returns the restore's checks (row counts).
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        ctx = RestoreContext(artifact=os.path.basename(os.fspath(path)), target=url, overwrite=clean,
                             options={"create": create})
        return restore_export(url, fh, ctx)


def _targets(sa: Any, conn: Any, metadata: Any, header: Mapping[str, Any], *, create: bool) -> dict[str, Any]:
    inspector = sa.inspect(conn)
    same = header.get("dialect") == conn.dialect.name
    out: dict[str, Any] = {}
    missing = []
    for entry in header["tables"]:
        schema = entry.get("schema") if conn.dialect.name != "sqlite" else None
        if inspector.has_table(entry["table"], schema=schema):
            out[entry["name"]] = sa.Table(entry["table"], metadata, schema=schema, autoload_with=conn)
        else:
            missing.append(entry)
    if missing and not create:
        raise RestoreError(f"table {missing[0]['name']} does not exist in the target; create the schema "
                           "first, or pass --create to create the tables from the export")
    if missing:
        new = sa.MetaData()
        made = {}
        for entry in missing:
            if conn.dialect.name == "sqlite":
                entry = {**entry, "schema": None}
            elif entry.get("schema"):
                conn.execute(sa.schema.CreateSchema(entry["schema"], if_not_exists=True))
            made[entry["name"]] = _table_from_header(sa, new, entry, same)
        new.create_all(conn)
        out.update(made)
    return {e["name"]: out[e["name"]] for e in header["tables"]}


def _copy_in(conn: Any, table: Any, entry: Mapping[str, Any], rows: Any) -> int:
    """PostgreSQL: the rows through ``COPY ... FROM STDIN`` (psycopg), each value as the
    text the server parses for its column's type; a refused row is named by its line."""
    import psycopg

    quote = conn.dialect.identifier_preparer
    names = [c["name"] for c in entry["columns"]]
    decoders = [decoder(c["kind"], "postgresql") for c in entry["columns"]]
    columns = ", ".join(quote.quote(n) for n in names)
    n = 0
    try:
        with conn.connection.dbapi_connection.cursor() as cursor, cursor.copy(
            f"COPY {quote.format_table(table)} ({columns}) FROM STDIN"
        ) as copy:
            for row in rows:
                if len(row) != len(names):
                    raise IntegrityError(f"row {n + 1} of {entry['name']} has {len(row)} values for "
                                         f"{len(names)} columns")
                copy.write_row([None if v is None else dec(v) for dec, v in zip(decoders, row)])
                n += 1
    except psycopg.Error as exc:
        diag = getattr(exc, "diag", None)
        where = re.search(r"line (\d+)", str(getattr(diag, "context", "") or ""))
        message = getattr(diag, "message_primary", None) or str(exc).splitlines()[0]
        row_no = f", row {where.group(1)}" if where else ""
        raise RestoreError(f"table {entry['name']}{row_no}: {message}; nothing was restored") from None
    return n


def _insert(sa: Any, conn: Any, table: Any, entry: Mapping[str, Any], rows: Any, dialect: str) -> int:
    if dialect == "postgresql" and conn.dialect.driver == "psycopg":
        return _copy_in(conn, table, entry, rows)
    names = [c["name"] for c in entry["columns"]]
    kinds = [c["kind"] for c in entry["columns"]]
    decoders = [decoder(k, dialect) for k in kinds]
    values = {}
    for name, kind in zip(names, kinds):
        param = sa.bindparam(f"p_{name}")
        if dialect == "postgresql" and kind in CAST_FROM_TEXT:
            values[name] = sa.cast(sa.bindparam(f"p_{name}", type_=sa.Text()), table.c[name].type)
        elif dialect == "sqlite" and kind == "text":  # as stored: SQLite's DATETIME takes no text
            values[name] = sa.bindparam(f"p_{name}", type_=sa.Text())
        else:
            values[name] = param
    stmt = table.insert().values(values)
    batch: list[dict[str, Any]] = []
    n = 0
    for row in rows:
        if len(row) != len(names):
            raise IntegrityError(f"row {n + 1} of {entry['name']} has {len(row)} values for {len(names)} columns")
        batch.append({f"p_{k}": None if v is None else dec(v) for k, dec, v in zip(names, decoders, row)})
        n += 1
        if len(batch) >= BATCH:
            _send(sa, conn, stmt, batch, entry["name"], n - len(batch))
            batch = []
    if batch:
        _send(sa, conn, stmt, batch, entry["name"], n - len(batch))
    return n


def _send(sa: Any, conn: Any, stmt: Any, batch: list[dict[str, Any]], name: str, before: int) -> None:
    savepoint = conn.begin_nested()
    try:
        conn.execute(stmt, batch)
        savepoint.commit()
        return
    except sa.exc.DBAPIError:
        savepoint.rollback()
    for i, params in enumerate(batch):  # find the row the database refuses
        savepoint = conn.begin_nested()
        try:
            conn.execute(stmt, params)
            savepoint.rollback()
        except sa.exc.DBAPIError as exc:
            savepoint.rollback()
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise RestoreError(f"table {name}, row {before + i + 1}: {detail}; nothing was restored") from None
    raise RestoreError(f"table {name}: a batch of rows {before + 1}-{before + len(batch)} failed; nothing was restored")


def _bump_sequences(conn: Any, targets: Mapping[str, Any], dialect: str) -> None:
    if dialect != "postgresql":
        return
    quote = conn.dialect.identifier_preparer
    for table in targets.values():
        name = quote.format_table(table)
        for column in table.columns:
            seq = conn.exec_driver_sql("SELECT pg_get_serial_sequence(%(t)s, %(c)s)",
                                       {"t": name, "c": column.name}).scalar()
            if seq:
                c = quote.quote(column.name)
                conn.exec_driver_sql(f"SELECT setval(%(s)s, coalesce(max({c}), 1), max({c}) IS NOT NULL) "
                                     f"FROM {name}", {"s": seq})
