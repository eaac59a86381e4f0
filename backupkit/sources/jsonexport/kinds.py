"""How each column type is written to JSON and read back: its *kind*, the SQL that
reads it without losing anything, and the encoder and decoder of its values.

========== ======================================= =========================================
kind       column types                            JSON value
========== ======================================= =========================================
boolean    boolean                                 ``true`` / ``false``
integer    smallint, integer                       a number
bigint     bigint (SQLite ``INTEGER``)             a string of digits (exact beyond 2^53)
numeric    numeric, decimal                        a string (``"12.50"``, ``"NaN"``)
float      real, double precision                  a number, or ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
text       text, varchar, char, enums, others      a string (types without a kind of their own: their text form)
bytes      bytea, blob                             base64
date       date                                    ``"2026-12-03"``, ``"infinity"``, ``"-infinity"``
timestamp  timestamp without time zone             ``"2026-12-03T02:00:00.000000"`` (or infinity)
timestamptz timestamp with time zone               ``"2026-12-03T01:00:00.000000Z"`` (UTC; or infinity)
time       time                                    ``"02:00:00"``
interval   interval                                ISO 8601 with its months kept: ``"P1M2DT3H"``
uuid       uuid                                    ``"0f8fad5b-d9cb-469f-a165-70867728950e"``
json       json, jsonb                             the exact text, as a string
array      any array                               PostgreSQL's text form, as a string (``"{1,2,NULL}"``)
========== ======================================= =========================================

``null`` is SQL NULL for every kind.
"""

from __future__ import annotations

import base64
import decimal
import math
from collections.abc import Callable
from typing import Any

from backupkit.errors import SourceError

KINDS = ("boolean", "integer", "bigint", "numeric", "float", "text", "bytes", "date", "timestamp",
         "timestamptz", "time", "interval", "uuid", "json", "array")
#: Kinds whose values a PostgreSQL restore sends as text and casts in SQL.
CAST_FROM_TEXT = {"date", "timestamp", "timestamptz", "time", "interval", "uuid", "json", "array", "text",
                  "numeric", "bigint"}


def kind_of(sql_type: Any, dialect: str) -> str:
    """The kind of a reflected SQLAlchemy column type."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql as pg

    if isinstance(sql_type, sa.ARRAY):
        return "array"
    if isinstance(sql_type, (sa.JSON, pg.JSONB, pg.JSON)):
        return "json"
    if isinstance(sql_type, sa.Uuid):
        return "uuid"
    if isinstance(sql_type, pg.INTERVAL) or isinstance(sql_type, sa.Interval):
        return "interval"
    if isinstance(sql_type, sa.Boolean):
        return "boolean"
    if isinstance(sql_type, sa.BigInteger):
        return "bigint"
    if isinstance(sql_type, sa.Integer):
        return "bigint" if dialect == "sqlite" else "integer"
    if isinstance(sql_type, sa.Float) or isinstance(sql_type, sa.Double):
        return "float"
    if isinstance(sql_type, sa.Numeric):
        return "numeric"
    if isinstance(sql_type, sa.LargeBinary) or isinstance(sql_type, sa.BINARY):
        return "bytes"
    if dialect == "sqlite":  # dates and times are text in SQLite: kept as they are stored
        return "text"
    if isinstance(sql_type, sa.DateTime):
        return "timestamptz" if getattr(sql_type, "timezone", False) else "timestamp"
    if isinstance(sql_type, sa.Date):
        return "date"
    if isinstance(sql_type, sa.Time):
        return "time"
    return "text"


def select_sql(column: str, kind: str, dialect: str) -> str:
    """The SQL expression that reads *column* (already quoted) exactly."""
    if dialect != "postgresql":
        return column
    if kind == "timestamptz":
        return (f"CASE WHEN isfinite({column}) THEN to_char({column} AT TIME ZONE 'UTC', "
                f"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') ELSE {column}::text END")
    if kind == "timestamp":
        return (f"CASE WHEN isfinite({column}) THEN to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') "
                f"ELSE {column}::text END")
    if kind in ("date", "time", "interval", "uuid", "json", "array", "numeric", "text"):
        return f"{column}::text"
    return column


def json_sql(column: str, kind: str) -> str:
    """PostgreSQL: the SQL of *column*'s JSON value (the server writes each row's JSON)."""
    if kind in ("integer", "boolean"):
        return column
    if kind == "float":  # to_json spells NaN and the infinities as strings, as we do
        return f"to_json({column})"
    if kind == "bytes":
        return f"translate(encode({column}, 'base64'), E'\\n', '')"
    return select_sql(column, kind, "postgresql") if kind != "bigint" else f"{column}::text"


def _float(value: Any) -> Any:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def encoder(kind: str, where: str) -> Callable[[Any], Any]:
    """A function from a database value of *kind* to its JSON value; *where* names the
    column in errors."""
    def bad(value: Any) -> Any:
        raise SourceError(f"{where}: cannot write a {type(value).__name__} value as {kind}; "
                          "exclude the column's table or report the type")

    if kind == "boolean":
        return lambda v: v if isinstance(v, bool) else (bool(v) if isinstance(v, int) else bad(v))
    if kind == "integer":
        return lambda v: v if isinstance(v, int) else bad(v)
    if kind == "bigint":
        return lambda v: str(v) if isinstance(v, int) else bad(v)
    if kind == "numeric":
        return lambda v: str(v) if isinstance(v, (str, int, decimal.Decimal, float)) else bad(v)
    if kind == "float":
        return lambda v: _float(v) if isinstance(v, (int, float)) else bad(v)
    if kind == "bytes":
        return lambda v: base64.b64encode(bytes(v)).decode() if isinstance(v, (bytes, memoryview)) else bad(v)
    if kind == "text":
        return lambda v: v if isinstance(v, str) else bad(v)
    return lambda v: str(v)


def decoder(kind: str, dialect: str) -> Callable[[Any], Any]:
    """A function from a JSON value of *kind* to what the target database is sent
    (text for PostgreSQL to cast, where :data:`CAST_FROM_TEXT` says)."""
    if kind == "bytes":
        return base64.b64decode
    if kind == "float":
        return lambda v: float(v.replace("Infinity", "inf")) if isinstance(v, str) else v
    if kind == "bigint" and dialect != "postgresql":
        return int
    return lambda v: v
