"""The export document: one JSON object, laid out one row per line so that it streams
both ways (see docs/json-export.md)::

    {"format":"backupkit.json-export","version":1,"dialect":"postgresql",...,"tables":[...],"data":[
    {"table":"public.people","rows":[
    [1,"Ada",...],
    [2,"Grace",...]
    ]},
    {"table":"public.orders","rows":[
    ]}
    ]}

The first line holds everything but the rows: the format version, the database's dialect
and server version, and per table its columns (name, kind, SQL type, nullable), primary
key, foreign keys and row count. ``gunzip | jq`` and ``python -m json.tool`` read it as
any JSON document; :func:`read` reads it back a line at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from backupkit.errors import IntegrityError

FORMAT = "backupkit.json-export"
VERSION = 1
_HEAD_END = ',"data":['
_TABLE_START = '{"table":'
_ROWS = ',"rows":['


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept, NaN refused (the encoders spell it out)."""
    return _ENCODER.encode(value)


class Writer:
    """Writes the document to *write* (bytes), buffering about 1 MiB."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self._buf: list[str] = []
        self._size = 0
        self._first_table = True
        self._first_row = True

    def _emit(self, text: str) -> None:
        self._buf.append(text)
        self._size += len(text)
        if self._size >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        """Hand what is buffered to the output."""
        if self._buf:
            self._write("".join(self._buf).encode())
            self._buf, self._size = [], 0

    def head(self, header: Mapping[str, Any]) -> None:
        """The first line: everything but the rows."""
        text = dumps(dict(header))
        self._emit(text[:-1] + _HEAD_END)

    def table(self, name: str) -> None:
        """Start the rows of table *name*."""
        self._emit(("\n" if self._first_table else "\n]},\n") + _TABLE_START + dumps(name) + _ROWS)
        self._first_table, self._first_row = False, True

    def row(self, values: list[Any]) -> None:
        """One row, on its own line."""
        self.row_text(dumps(values))

    def row_text(self, text: str) -> None:
        """One row already written as a JSON array (by the database server)."""
        self._emit(("\n" if self._first_row else ",\n") + text)
        self._first_row = False

    def end(self) -> None:
        """Close the document and flush it."""
        self._emit(("\n" if self._first_table else "\n]}\n") + "]}\n")
        self.flush()


def _lines(read: Callable[[int], bytes]) -> Iterator[str]:
    pending = b""
    while chunk := read(1 << 20):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode()
    if pending:
        yield pending.decode()


def read(read_bytes: Callable[[int], bytes]) -> tuple[dict[str, Any], Iterator[tuple[str, Iterator[list[Any]]]]]:
    """The header, and an iterator of ``(table, rows)``; each *rows* must be consumed
    before the next table is taken. Raises :class:`IntegrityError` on anything that
    is not this layout."""
    lines = _lines(read_bytes)
    first = next(lines, "")
    if not first.endswith(_HEAD_END):
        raise IntegrityError("not a backupkit JSON export (its first line is not the header)")
    try:
        header = json.loads(first[: -len(_HEAD_END)] + "}")
    except ValueError as exc:
        raise IntegrityError(f"the export's header is not valid JSON: {exc}") from None
    if header.get("format") != FORMAT or not isinstance(header.get("version"), int):
        raise IntegrityError("not a backupkit JSON export (no format and version in its header)")
    if header["version"] > VERSION:
        raise IntegrityError(f"the export is format version {header['version']}; this backupkit reads "
                             f"up to {VERSION}: upgrade backupkit")
    return header, _tables(lines)


def _tables(lines: Iterator[str]) -> Iterator[tuple[str, Iterator[list[Any]]]]:
    state: dict[str, Any] = {"line": None}  # the line that ended the previous table's rows
    line = next(lines, None)
    while True:
        if line == "]}":  # the end of the document
            if any(rest.strip() for rest in lines):
                raise IntegrityError("bytes after the end of the export")
            return
        if line is None or not (line.startswith(_TABLE_START) and line.endswith(_ROWS)):
            raise IntegrityError("the export ends early" if line is None
                                 else f"unexpected line in the export: {line[:60]!r}")
        name = json.loads(line[len(_TABLE_START) : -len(_ROWS)])
        yield name, _rows(lines, state)
        ended = state["line"]
        if ended is None:
            raise IntegrityError(f"the rows of table {name!r} were not read to their end")
        state["line"] = None
        line = next(lines, None) if ended in ("]},", "]}") else None
        if ended == "]}" and line != "]}":
            raise IntegrityError("the export ends early" if line is None else "the export's last table is not last")


def _rows(lines: Iterator[str], state: dict[str, Any]) -> Iterator[list[Any]]:
    for line in lines:
        if line in ("]}", "]},"):
            state["line"] = line
            return
        try:
            row = json.loads(line[:-1] if line.endswith(",") else line)
        except ValueError as exc:
            raise IntegrityError(f"a row of the export is not valid JSON: {exc}") from None
        if not isinstance(row, list):
            raise IntegrityError("a row of the export is not a JSON array")
        yield row
    raise IntegrityError("the export ends in the middle of a table")
