"""Connecting to a database through SQLAlchemy, and reading its tables' shape: the one
place that knows about URLs, drivers and reflection."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from backupkit.errors import ConfigError, SourceError
from backupkit.sources.jsonexport.kinds import kind_of

#: Driver modules to suggest when a URL's driver is missing.
DRIVERS = {"postgresql": "psycopg (pip install 'backupkit[json]')", "mysql": "pymysql (pip install pymysql)",
           "mariadb": "pymysql (pip install pymysql)", "mssql": "pyodbc", "oracle": "oracledb"}


def _sa() -> Any:
    try:
        import sqlalchemy
    except ImportError:
        raise ConfigError("the json source needs SQLAlchemy; install backupkit[json]") from None
    return sqlalchemy


def safe_url(url: str) -> str:
    """*url* with its password hidden (for messages)."""
    sa = _sa()
    try:
        return str(sa.engine.make_url(url).render_as_string(hide_password=True))
    except Exception:
        return "the configured url"


def engine_for(url: str, *, what: str) -> Any:
    """A SQLAlchemy engine; ``postgresql://`` uses psycopg 3. One-line errors for a bad
    URL or a missing driver."""
    sa = _sa()
    try:
        parsed = sa.engine.make_url(url)
    except Exception:
        raise ConfigError(f"{what}: 'url' is not a database URL (e.g. postgresql://user@host/db, "
                          "sqlite:///path/app.db)") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = sa.create_engine(parsed, pool_pre_ping=False, poolclass=sa.pool.NullPool)
    except ImportError as exc:
        backend = parsed.get_backend_name()
        raise ConfigError(f"{what}: the driver for {backend} is not installed ({exc.name or exc}); "
                          f"install {DRIVERS.get(backend, 'its DBAPI driver')}") from None
    except sa.exc.NoSuchModuleError:
        raise ConfigError(f"{what}: SQLAlchemy knows no database {parsed.drivername!r}; check 'url'") from None
    if engine.dialect.name == "sqlite":  # real transactions and savepoints (SQLAlchemy's pysqlite recipe)
        sa.event.listen(engine, "connect", _driver_autocommit)
        sa.event.listen(engine, "begin", _begin)
    return engine


def _driver_autocommit(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def connect_error(exc: BaseException, url: str) -> SourceError:
    """A one-line error for a failed connection or query."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return SourceError(f"database {safe_url(url)}: {text[0] if text else type(exc).__name__}")


def qualified(schema: str | None, name: str) -> str:
    """``schema.table``, or the table alone where there are no schemas (SQLite)."""
    return f"{schema}.{name}" if schema else name


def schema_of(table: Any, dialect: Any) -> str | None:
    """The table's schema, the dialect's default one where reflection left it out."""
    if table.schema is not None or dialect.name == "sqlite":
        return table.schema  # type: ignore[no-any-return]
    return dialect.default_schema_name  # type: ignore[no-any-return]


def full_name(table: Any, dialect: Any) -> str:
    """``schema.table`` as the export names it."""
    return qualified(schema_of(table, dialect), table.name)


def _wanted(name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    bare = name.rpartition(".")[2]
    if include and not any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(bare, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(bare, p) for p in exclude)


def reflect(conn: Any, schemas: Sequence[str | None], include: Sequence[str], exclude: Sequence[str]) -> list[Any]:
    """The chosen tables of *schemas*, reflected, in foreign-key order (parents first)."""
    sa = _sa()
    metadata = sa.MetaData()
    default = conn.dialect.default_schema_name
    for schema in schemas:
        # the default schema reflected as such, so foreign keys into it name one table object
        metadata.reflect(bind=conn, schema=None if schema == default else schema, views=False)
    chosen = {s if s != default else None for s in schemas}
    return [t for t in metadata.sorted_tables
            if t.schema in chosen and _wanted(full_name(t, conn.dialect), include, exclude)]


def describe_table(table: Any, dialect: Any, rows: int) -> dict[str, Any]:
    """A table's entry in the export's header (*dialect*: the connection's SQLAlchemy dialect)."""
    columns = []
    for column in table.columns:
        try:
            sql_type = column.type.compile(dialect=dialect)
        except Exception:
            sql_type = str(column.type)
        entry = {"name": column.name, "kind": kind_of(column.type, dialect.name), "type": sql_type,
                 "nullable": bool(column.nullable)}
        if getattr(column, "identity", None) is not None:
            entry["identity"] = "always" if column.identity.always else "by default"  # GENERATED ... AS IDENTITY
        elif column.server_default is not None:
            entry["default"] = str(column.server_default.arg)
        enum = getattr(column.type, "enums", None)
        if enum and getattr(column.type, "name", None):
            entry["enum"] = {"name": column.type.name, "schema": column.type.schema, "labels": list(enum)}
        columns.append(entry)
    fks = [{"columns": [e.parent.name for e in fk.elements],
            "references": full_name(fk.elements[0].column.table, dialect),
            "referred_columns": [e.column.name for e in fk.elements]}
           for fk in table.foreign_key_constraints]
    return {"name": full_name(table, dialect), "schema": schema_of(table, dialect), "table": table.name,
            "columns": columns, "primary_key": [c.name for c in table.primary_key.columns],
            "foreign_keys": fks, "row_count": rows}
