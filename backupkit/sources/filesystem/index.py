"""The file index of a filesystem backup: what each path looked like when it was stored.

Stored with every filesystem backup as a sidecar artifact (JSON lines, one entry per
path, transformed like the main stream). An incremental backup compares the tree
with its parent's index: a regular file counts as unchanged when its size, mtime
(ns), mode, inode and ctime (ns) all match; when only the inode or the ctime differs
(a copy, a restore, a chown, or an edit that put the old mtime back) its sha256
decides. Directories and symlinks are always stored (they are headers only),
and so are files with more than one hard link, so restores can rebuild the links.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator

import attrs

from backupkit.errors import IntegrityError
from backupkit.plugin import Reader

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
    ctime_ns: int | None = None  # None in indexes written before it was recorded

    def to_line(self) -> bytes:
        """The entry as a line of the index file."""
        return json_bytes(
            {"p": self.path, "t": self.type, "s": self.size, "m": self.mtime_ns,
             "o": self.mode, "i": self.inode, "c": self.ctime_ns, "h": self.sha256}
        ) + b"\n"

    @classmethod
    def from_json(cls, line: str | bytes) -> IndexEntry:
        """The entry one line of an index file holds."""
        d = json.loads(line)
        return cls(d["p"], d["t"], d["s"], d["m"], d["o"], d["i"], d.get("h"), d.get("c"))

    @classmethod
    def from_stat(cls, path: str, st: os.stat_result, sha256: str | None = None) -> IndexEntry:
        """The entry of *path* whose ``lstat`` is *st*, with its content's *sha256* if known."""
        if stat.S_ISREG(st.st_mode):
            kind = "f"
        elif stat.S_ISDIR(st.st_mode):
            kind = "d"
        elif stat.S_ISLNK(st.st_mode):
            kind = "l"
        else:
            kind = "o"
        return cls(path, kind, st.st_size if kind == "f" else 0, st.st_mtime_ns,
                   stat.S_IMODE(st.st_mode), st.st_ino, sha256, st.st_ctime_ns)


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_str = json.encoder.encode_basestring
_JSON_ASCII = json.JSONEncoder(separators=(",", ":")).encode


def json_bytes(value: object) -> bytes:
    """Compact UTF-8 JSON of *value*, as the index writes paths and lines.

    A file name that is not valid UTF-8 (its bytes kept as lone surrogates, Python's
    ``surrogateescape``) is written with ``\\udcXX`` escapes, which ``json.loads`` turns
    back into the same name.
    """
    try:
        if type(value) is str:  # what the encoder does for a str, without its dispatch
            return _encode_str(value).encode()
        return _JSON(value).encode()
    except UnicodeEncodeError:
        return _JSON_ASCII(value).encode()


def _file_line_start(key: bytes, st: os.stat_result) -> bytes:
    return b'{"p":%s,"t":"f","s":%d,"m":%d,"o":%d,"i":%d,"c":%d,"h":' % (
        key, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode), st.st_ino, st.st_ctime_ns
    )


def file_line(key: bytes, st: os.stat_result, sha256: str) -> bytes:
    """The index line of the regular file *st*, whose path is the JSON string *key*.

    It is ``IndexEntry.from_stat(path, st, sha256).to_line()``, without building the entry.
    """
    return b'%s"%s"}\n' % (_file_line_start(key, st), sha256.encode())


#: Where the path ends in a line: a quote inside a JSON string is always escaped, so the
#: first unescaped ``,"t":`` follows the path's closing quote.
_PATH_END = b',"t":'
#: A path in JSON with none of these is as ``json_bytes`` writes it, byte for byte.
_NOT_PLAIN = re.compile(rb"[\\\x00-\x1f]")
#: A whole line whose path is plain: (line, path in JSON).
_PLAIN_LINE = re.compile(rb'^(\{"p":("[^"\\\x00-\x1f]*"),"t":[^\n]*\n)', re.MULTILINE)


class ParentIndex:
    """A parent backup's index: its lines, by their path as JSON (:func:`json_bytes`).

    An incremental backup mostly finds files as they were; for those it compares the
    line it would write with the parent's and writes that line again, so lines are
    parsed only for files that changed and for the paths that are gone. (Parsing
    every line into an entry took a quarter of an incremental backup.) Lines are
    trusted as far as their checksum: the engine checks the sidecar's sha256.
    """

    def __init__(self, lines: dict[bytes, bytes], label: str) -> None:
        self._lines = lines
        self.label = label

    @classmethod
    def read(cls, stream: Reader, *, label: str) -> ParentIndex:
        """The index read from *stream* to its end; *label* names it in errors."""
        lines: dict[bytes, bytes] = {}
        for block in _blocks(stream):
            plain = _PLAIN_LINE.findall(block)  # the common lines, found at C speed
            if len(plain) == block.count(b"\n"):
                lines.update({key: line for line, key in plain})
                continue
            for line in block.split(b"\n"):
                if line.strip():
                    key = _path_key(line, label)
                    lines[key] = line + b"\n"
        return cls(lines, label)

    def __len__(self) -> int:
        return len(self._lines)

    def keys(self) -> set[bytes]:
        """The paths of all lines, as JSON."""
        return set(self._lines)

    def same_line(self, key: bytes, st: os.stat_result) -> bytes | None:
        """The parent's line for *key* if it describes the regular file *st* exactly.

        Exactly: the same size, mtime, mode, inode and ctime; otherwise None.
        """
        line = self._lines.get(key)
        if line is None or not stat.S_ISREG(st.st_mode):
            return None
        return line if line.startswith(_file_line_start(key, st)) else None

    def entry(self, key: bytes) -> IndexEntry | None:
        """The parent's entry for *key*, or None if the parent has no such path."""
        line = self._lines.get(key)
        if line is None:
            return None
        try:
            return IndexEntry.from_json(line)
        except (ValueError, KeyError, TypeError) as exc:
            raise _damaged(self.label, str(exc)) from None

    def paths(self, keys: Iterable[bytes]) -> list[str]:
        """The paths of *keys*, sorted."""
        return sorted(_loads(key, self.label) for key in keys)


def _damaged(label: str, why: str) -> IntegrityError:
    return IntegrityError(f"{label} is damaged ({why}); run a full backup")


def _loads(key: bytes, label: str) -> str:
    try:
        path = json.loads(key)
    except ValueError as exc:
        raise _damaged(label, str(exc)) from None
    if not isinstance(path, str):
        raise _damaged(label, "a path that is not a string")
    return path


def _blocks(stream: Reader) -> Iterator[bytes]:
    """*stream* a megabyte at a time, each block ending with a whole line."""
    rest = b""
    while chunk := stream.read(1 << 20):
        block = rest + chunk
        cut = block.rfind(b"\n") + 1
        rest = block[cut:]
        if cut:
            yield block[:cut]
    if rest.strip():
        yield rest + b"\n"


def _path_key(line: bytes, label: str) -> bytes:
    """The path of an index line in JSON, as :func:`json_bytes` writes it."""
    end = line.find(_PATH_END)
    if not line.startswith(b'{"p":"') or end < 0:
        raise _damaged(label, "a line without a path")
    key = line[5:end]
    if _NOT_PLAIN.search(key):  # escapes: written as json_bytes would
        key = json_bytes(_loads(key, label))
    return key


def file_sha256(path: str) -> str:
    """The sha256 of the content of the file at *path*."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def unchanged(now: IndexEntry, before: IndexEntry | None, path: str) -> IndexEntry | None:
    """The entry to record if the file at *path* need not be stored again, else None."""
    if before is None or now.type != "f" or before.type != "f":
        return None
    if (now.size, now.mtime_ns, now.mode) != (before.size, before.mtime_ns, before.mode):
        return None
    if now.inode == before.inode and before.ctime_ns in (None, now.ctime_ns):
        return attrs.evolve(now, sha256=before.sha256)
    # Same size, mtime and mode, but another inode (a copy, a restore) or another ctime
    # (a chown, a link, or an edit that put the old mtime back): the content decides.
    if before.sha256 is not None:
        try:
            digest = file_sha256(path)
        except OSError:
            return None
        if digest == before.sha256:
            return attrs.evolve(now, sha256=digest)
    return None
