"""What a database holds, read in one snapshot: its tables (the ones ``pg_dump`` writes
data for, filtered as it filters them) and their exact row counts, large objects,
extensions, size and version. Backup records it in the manifest; restore compares it
with the restored database."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_TABLES = """
SELECT n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
"""


def one(conn: Any, query: Any, params: Sequence[Any] = ()) -> Any:
    """The one row *query* returns."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, "the query returned no row"
    return row


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A pg_dump name pattern (``*`` and ``?`` wildcards; unquoted letters fold to lower
    case; ``"Quoted"`` parts kept as they are) as a regex over one name."""
    out, quoted = [], False
    for ch in pattern:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "*":
            out.append(".*")
        elif not quoted and ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch if quoted else ch.lower()))
    return re.compile("".join(out) + r"\Z")


def _split(pattern: str) -> tuple[str | None, str]:
    """``schema.table`` -> (schema, table); a dot inside quotes does not split."""
    quoted = False
    for i, ch in enumerate(pattern):
        if ch == '"':
            quoted = not quoted
        elif ch == "." and not quoted:
            return pattern[:i], pattern[i + 1 :]
    return None, pattern


def _table_matches(patterns: Iterable[str], schema: str, table: str) -> bool:
    for pattern in patterns:
        s, t = _split(pattern)
        if (s is None or pattern_regex(s).match(schema)) and pattern_regex(t).match(table):
            return True
    return False


def selected(
    tables: Sequence[tuple[str, str]],
    *,
    schemas: Sequence[str] = (),
    exclude_schemas: Sequence[str] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """The *tables* whose data ``pg_dump -n/-N/-t/-T`` with these patterns writes."""
    out = []
    for schema, table in tables:
        if schemas and not any(pattern_regex(p).match(schema) for p in schemas):
            continue
        if any(pattern_regex(p).match(schema) for p in exclude_schemas):
            continue
        if include and not _table_matches(include, schema, table):
            continue
        if _table_matches(exclude, schema, table):
            continue
        out.append((schema, table))
    return out


def qualified(schema: str, table: str) -> str:
    """``schema.table`` as the manifest keys it (the names as they are, unquoted)."""
    return f"{schema}.{table}"


def unreadable(conn: Any, tables: Iterable[tuple[str, str]]) -> list[str]:
    """The *tables* the connected role may not SELECT from (``schema.table``)."""
    out = []
    for schema, table in tables:
        (ok,) = one(conn, "SELECT has_schema_privilege(%s, 'USAGE') AND has_table_privilege("
                          "format('%%I.%%I', %s::text, %s::text), 'SELECT')", (schema, schema, table))
        if not ok:
            out.append(qualified(schema, table))
    return out


def row_counts(conn: Any, tables: Iterable[tuple[str, str]]) -> dict[str, int]:
    """``{"schema.table": exact count}`` for *tables*, in *conn*'s current snapshot."""
    from psycopg import sql

    counts = {}
    for schema, table in tables:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        counts[qualified(schema, table)] = int(conn.execute(query).fetchone()[0])
    return counts


def all_tables(conn: Any) -> list[tuple[str, str]]:
    """Every user table of the database *conn* is connected to."""
    return [(s, t) for s, t in conn.execute(_TABLES).fetchall()]


def facts(conn: Any) -> dict[str, Any]:
    """The server version, database size, extensions and large-object count."""
    version = conn.execute("SELECT current_setting('server_version'), pg_database_size(current_database())").fetchone()
    extensions = dict(conn.execute("SELECT extname, extversion FROM pg_extension ORDER BY 1").fetchall())
    (blobs,) = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
    return {
        "server_version": version[0],
        "database_size": int(version[1]),
        "extensions": extensions,
        "large_objects": int(blobs),
    }


def user_objects(conn: Any) -> int:
    """How many tables, views, sequences, functions, types and large objects users made
    (zero for a new database)."""
    (n,) = conn.execute(
        """SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
                      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%')
                + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
                + (SELECT count(*) FROM pg_namespace
                    WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public')
                      AND nspname NOT LIKE 'pg\\_%')
                + (SELECT count(*) FROM pg_largeobject_metadata)"""
    ).fetchone()
    return int(n)


def compare(expected: Mapping[str, int], actual: Mapping[str, int]) -> list[str]:
    """What differs between two ``{table: count}`` mappings, one phrase per table."""
    problems = []
    for table in sorted(set(expected) | set(actual)):
        want, got = expected.get(table), actual.get(table)
        if want is None:
            problems.append(f"{table} is not in the backup")
        elif got is None:
            problems.append(f"{table} is missing")
        elif want != got:
            problems.append(f"{table} has {got} rows, the backup {want}")
    return problems
