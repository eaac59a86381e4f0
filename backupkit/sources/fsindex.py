"""The file index of a filesystem backup: what each path looked like when it was stored.

Stored with every filesystem backup as a sidecar artifact (JSON lines, one entry per
path, transformed like the main stream). An incremental backup compares the tree
with its parent's index: a regular file counts as unchanged when its size, mtime
(ns), mode and inode all match; when only the inode differs (a copy, a restore) its
sha256 decides. Directories and symlinks are always stored (they are headers only),
and so are files with more than one hard link, so restores can rebuild the links.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import attrs

from backupkit.errors import IntegrityError

INDEX_SIDECAR = "index"


@attrs.frozen
class IndexEntry:
    """One path of the tree as it was when a backup stored it."""

    path: str  # the archive name
    type: str  # "f" file, "d" dir, "l" symlink, "o" other
    size: int
    mtime_ns: int
    mode: int
    inode: int
    sha256: str | None = None
    #: The JSON line this entry was read from, written again as it is when nothing changed.
    #: Not an init argument, so ``attrs.evolve`` of an entry never carries a stale line.
    line: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def to_line(self) -> bytes:
        """The entry as a line of the index file."""
        if self.line is not None:
            return self.line
        return json_bytes(
            {"p": self.path, "t": self.type, "s": self.size, "m": self.mtime_ns,
             "o": self.mode, "i": self.inode, "h": self.sha256}
        ) + b"\n"

    @classmethod
    def from_json(cls, line: str | bytes) -> IndexEntry:
        return cls._from_dict(json.loads(line))

    @classmethod
    def _from_dict(cls, d: dict[str, Any], line: bytes | None = None) -> IndexEntry:
        entry = cls(d["p"], d["t"], d["s"], d["m"], d["o"], d["i"], d.get("h"))
        object.__setattr__(entry, "line", line)
        return entry

    @classmethod
    def from_stat(cls, path: str, st: os.stat_result, sha256: str | None = None) -> IndexEntry:
        if stat.S_ISREG(st.st_mode):
            kind = "f"
        elif stat.S_ISDIR(st.st_mode):
            kind = "d"
        elif stat.S_ISLNK(st.st_mode):
            kind = "l"
        else:
            kind = "o"
        return cls(path, kind, st.st_size if kind == "f" else 0, st.st_mtime_ns,
                   stat.S_IMODE(st.st_mode), st.st_ino, sha256)


def json_bytes(value: object) -> bytes:
    """Compact UTF-8 JSON. A file name that is not valid UTF-8 (its bytes kept as lone
    surrogates, Python's ``surrogateescape``) is written with ``\\udcXX`` escapes, which
    ``json.loads`` turns back into the same name."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def write_index(entries: Iterable[IndexEntry], out: BinaryIO) -> None:
    for entry in entries:
        out.write(entry.to_line())


def read_index(stream: BinaryIO, *, label: str) -> dict[str, IndexEntry]:
    """The parent's index by path; a damaged index is an IntegrityError naming it.

    Each entry keeps its line, to be written again unchanged; the lines of each
    megabyte are parsed by one ``json.loads`` call (an incremental backup spends most
    of its time per path, and this was a quarter of it).
    """
    index: dict[str, IndexEntry] = {}
    try:
        for lines in _line_batches(stream):
            records = json.loads(b"[" + b",".join(lines) + b"]")
            for record, line in zip(records, lines, strict=True):
                entry = IndexEntry._from_dict(record, line + b"\n")
                index[entry.path] = entry
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{label} is damaged ({exc}); run a full backup") from None
    return index


def _line_batches(stream: BinaryIO) -> Iterator[list[bytes]]:
    """The non-empty lines of *stream*, a megabyte's worth at a time."""
    rest = b""
    while chunk := stream.read(1 << 20):
        *lines, rest = (rest + chunk).split(b"\n")
        if lines := [line for line in lines if line.strip()]:
            yield lines
    if rest.strip():
        yield [rest]


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def same_file(st: os.stat_result, before: IndexEntry | None) -> bool:
    """*st* is the regular file *before* describes: same size, mtime, mode and inode.

    The common case of an incremental backup, checked without building an entry."""
    return (
        before is not None
        and before.type == "f"
        and before.inode == st.st_ino
        and before.size == st.st_size
        and before.mtime_ns == st.st_mtime_ns
        and before.mode == stat.S_IMODE(st.st_mode)
        and stat.S_ISREG(st.st_mode)
    )


def unchanged(now: IndexEntry, before: IndexEntry | None, path: str) -> IndexEntry | None:
    """The entry to record if the file at *path* need not be stored again, else None."""
    if before is None or now.type != "f" or before.type != "f":
        return None
    if (now.size, now.mtime_ns, now.mode) != (before.size, before.mtime_ns, before.mode):
        return None
    if now.inode == before.inode:
        return attrs.evolve(now, sha256=before.sha256)
    if before.sha256 is not None:  # same metadata, other inode: let the content decide
        try:
            digest = file_sha256(path)
        except OSError:
            return None
        if digest == before.sha256:
            return attrs.evolve(now, sha256=digest)
    return None
