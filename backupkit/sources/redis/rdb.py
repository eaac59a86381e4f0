"""Reading an RDB file's structure as it streams by: its version, its auxiliary fields,
and the keys of every database (counted, and the counts its ``RESIZEDB`` records
announce), without keeping any value in memory.

The walker understands the formats Redis 2.6 to 7.2 write (RDB 6 to 11); anything it
does not know is a :class:`RdbError` naming the byte offset. It does not compute the
CRC64 at the end (``redis-check-rdb`` does, where installed): the engine's sha256 of
the stored bytes already guards the artifact.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import attrs

from backupkit.errors import IntegrityError

MAGIC = b"REDIS"
#: The newest RDB version Redis of each release writes (and so the newest it loads).
RDB_VERSION_OF_RELEASE = {(2, 6): 6, (2, 8): 7, (3, 2): 8, (4, 0): 9, (5, 0): 9, (6, 0): 9, (6, 2): 9,
                          (7, 0): 10, (7, 2): 11, (7, 4): 12, (8, 0): 12, (8, 2): 13}

_EOF, _SELECTDB, _EXPIRE_S, _EXPIRE_MS, _RESIZEDB, _AUX = 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0xFA
_FREQ, _IDLE, _MODULE_AUX, _FUNCTION2, _FUNCTION = 0xF9, 0xF8, 0xF7, 0xF6, 0xF5
_ONE_STRING = {0, 9, 10, 11, 12, 13, 16, 17, 20}  # string, or an encoding stored as one string


class RdbError(IntegrityError):
    """The bytes are not a well-formed RDB file."""


def max_rdb_version(redis_version: str) -> int | None:
    """The newest RDB version a server of *redis_version* (``7.0.15``) loads; None if unknown."""
    try:
        major, minor = (int(p) for p in redis_version.split(".")[:2])
    except ValueError:
        return None
    known = [v for (ma, mi), v in RDB_VERSION_OF_RELEASE.items() if (ma, mi) <= (major, minor)]
    if (major, minor) > max(RDB_VERSION_OF_RELEASE):
        return None  # newer than this table: it loads everything here
    return max(known) if known else None


@attrs.define
class RdbSummary:
    """What :func:`walk` found."""

    version: int = 0
    aux: dict[str, str] = attrs.field(factory=dict)
    keys: dict[int, int] = attrs.field(factory=dict)  # db -> keys counted
    announced: dict[int, int] = attrs.field(factory=dict)  # db -> RESIZEDB size
    expires: dict[int, int] = attrs.field(factory=dict)  # db -> keys with a TTL
    functions: int = 0
    checksum: bytes = b""

    def to_dict(self) -> dict[str, Any]:
        """The manifest's view: version, key counts per database, keys with a TTL."""
        return {"rdb_version": self.version, "keys": {str(db): n for db, n in sorted(self.keys.items())},
                "expires": {str(db): n for db, n in sorted(self.expires.items())},
                "redis_version_written": self.aux.get("redis-ver", ""), "functions": self.functions}


class _Reader:
    """Exact reads from a ``read(n)`` callable through a window of about 1 MiB, so that
    most fields are an index into bytes already read (a key costs a few microseconds)."""

    __slots__ = ("_read", "base", "buf", "pos")

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self.buf = b""
        self.pos = 0
        self.base = 0  # the stream offset of buf[0]

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def _fill(self, n: int) -> None:
        """Make *n* bytes available at ``pos`` (or fail: the stream ended)."""
        parts = [self.buf[self.pos :]]
        have = len(parts[0])
        while have < n:
            chunk = self._read(max(1 << 20, n - have))
            if not chunk:
                raise RdbError(f"the RDB stream ends early, at byte {self.base + len(self.buf)}")
            parts.append(chunk)
            have += len(chunk)
        self.base += self.pos
        self.buf = b"".join(parts)
        self.pos = 0

    def take(self, n: int) -> bytes:
        pos = self.pos
        if pos + n > len(self.buf):
            self._fill(n)
            pos = 0
        self.pos = pos + n
        return self.buf[pos : pos + n]

    def skip(self, n: int) -> None:
        left = len(self.buf) - self.pos
        if n <= left:
            self.pos += n
            return
        n -= left  # past the window: read and drop, never holding more than a chunk
        self.base += len(self.buf)
        self.buf, self.pos = b"", 0
        while n > 0:
            chunk = self._read(min(n, 1 << 20))
            if not chunk:
                raise RdbError(f"the RDB stream ends early, at byte {self.base}")
            n -= len(chunk)
            self.base += len(chunk)

    def byte(self) -> int:
        pos = self.pos
        if pos >= len(self.buf):
            self._fill(1)
            pos = 0
        self.pos = pos + 1
        return self.buf[pos]

    def length(self) -> tuple[int, bool]:
        """A length, or (encoding, True) for a specially encoded string."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, False
        if kind == 1:
            return ((first & 0x3F) << 8) | self.byte(), False
        if kind == 3:
            return first & 0x3F, True
        if first == 0x80:
            return int.from_bytes(self.take(4), "big"), False
        if first == 0x81:
            return int.from_bytes(self.take(8), "big"), False
        raise RdbError(f"unknown length encoding 0x{first:02x} at byte {self.offset - 1}")

    def number(self) -> int:
        value, special = self.length()
        if special:
            raise RdbError(f"a string encoding where a length belongs, at byte {self.offset}")
        return value

    def string(self, keep: bool = False) -> bytes:
        n, special = self.length()
        if not special:
            if keep:
                return self.take(n)
            self.skip(n)
            return b""
        if n in (0, 1, 2):
            data = self.take(1 << n)
            return str(int.from_bytes(data, "little", signed=True)).encode() if keep else b""
        if n == 3:  # LZF: compressed length, uncompressed length, the bytes
            clen, _ = self.number(), self.number()
            self.skip(clen)
            return b""
        raise RdbError(f"unknown string encoding {n} at byte {self.offset}")


def _skip_value(r: _Reader, kind: int) -> None:
    if kind in _ONE_STRING:
        r.string()
    elif kind in (1, 2, 14):  # list, set, quicklist of ziplists
        for _ in range(r.number()):
            r.string()
    elif kind == 18:  # quicklist 2: (container kind, node) pairs
        for _ in range(r.number()):
            r.number()
            r.string()
    elif kind == 4:  # hash
        for _ in range(r.number() * 2):
            r.string()
    elif kind == 3:  # zset with textual doubles
        for _ in range(r.number()):
            r.string()
            n = r.byte()
            if n < 253:
                r.skip(n)
    elif kind == 5:  # zset 2: binary doubles
        for _ in range(r.number()):
            r.string()
            r.skip(8)
    elif kind in (15, 19, 21):
        _skip_stream(r, kind)
    elif kind == 7:
        _skip_module(r)
    else:
        raise RdbError(f"unknown value type {kind} at byte {r.offset - 1} (an RDB newer than this reader?)")


def _skip_stream(r: _Reader, kind: int) -> None:
    for _ in range(r.number()):  # listpacks: (master id, listpack)
        r.string()
        r.string()
    r.number()  # elements
    r.number(), r.number()  # last id
    if kind >= 19:
        for _ in range(5):  # first id (2), max deleted id (2), entries added
            r.number()
    for _ in range(r.number()):  # consumer groups
        r.string()
        r.number(), r.number()
        if kind >= 19:
            r.number()  # entries read
        for _ in range(r.number()):  # the group's pending entries
            r.skip(16 + 8)
            r.number()
        for _ in range(r.number()):  # consumers
            r.string()
            r.skip(8 if kind < 21 else 16)
            r.skip(16 * r.number())


def _skip_module(r: _Reader) -> None:
    r.number()  # module id
    while (opcode := r.number()) != 0:
        if opcode in (1, 2):
            r.number()
        elif opcode == 3:
            r.skip(4)
        elif opcode == 4:
            r.skip(8)
        elif opcode == 5:
            r.string()
        else:
            raise RdbError(f"unknown module opcode {opcode} at byte {r.offset}")


_SIMPLE = bytes(1 if i in _ONE_STRING else 0 for i in range(256))


def _skip_len(buf: bytes, p: int) -> int:
    """The position after the string at *p* in *buf*, or -1 for one the fast path leaves
    to the reader (LZF, long lengths)."""
    b = buf[p]
    t = b >> 6
    if t == 0:
        return p + 1 + (b & 0x3F)
    if t == 1:
        return p + 2 + (((b & 0x3F) << 8) | buf[p + 1])
    if b == 0x80:
        return p + 5 + int.from_bytes(buf[p + 1 : p + 5], "big")
    if t == 3:
        if (b & 0x3F) < 3:
            return p + 1 + (1 << (b & 0x3F))
        if b == 0xC3:  # LZF: compressed length, uncompressed length, the bytes
            clen, p = _len_at(buf, p + 1)
            if p < 0:
                return -1
            _, p = _len_at(buf, p)
            return -1 if p < 0 else p + clen
    return -1


def _len_at(buf: bytes, p: int) -> tuple[int, int]:
    """A plain length at *p*: (value, position after), or (0, -1) when not plain."""
    b = buf[p]
    t = b >> 6
    if t == 0:
        return b & 0x3F, p + 1
    if t == 1:
        return ((b & 0x3F) << 8) | buf[p + 1], p + 2
    if b == 0x80:
        return int.from_bytes(buf[p + 1 : p + 5], "big"), p + 5
    return 0, -1


def _fast_keys(r: _Reader) -> tuple[int, int]:
    """Skip a run of plain keys (a string-encoded value, an optional millisecond expiry)
    inside the window without method calls; return (keys, of them with a TTL). Anything
    else, and a key reaching past the window, is left to the general loop."""
    buf, pos = r.buf, r.pos
    end = len(buf) - 16
    keys = ttl = 0
    simple = _SIMPLE
    while pos < end:
        p = pos
        op = buf[p]
        expiring = op == _EXPIRE_MS
        if expiring:
            p += 9
            op = buf[p]
        if not simple[op]:
            break
        p = _skip_len(buf, p + 1)
        if p < 0 or p >= end:
            break
        p = _skip_len(buf, p)
        if p < 0 or p > len(buf):
            break
        pos = p
        keys += 1
        ttl += expiring
    r.pos = pos
    return keys, ttl


def head(read: Callable[[int], bytes]) -> RdbSummary:
    """Read an RDB file only up to its first database's ``RESIZEDB`` record: the
    version, the auxiliary fields and that database's key count (all of them, for a
    server using one database), without walking the keys."""
    return walk(read, stop_at_first_db=True)


def walk(read: Callable[[int], bytes], *, stop_at_first_db: bool = False) -> RdbSummary:
    """Read one RDB file from *read* to its end (``0xFF`` and the checksum) and summarize
    it; raise :class:`RdbError` at the first byte that does not fit."""
    r = _Reader(read)
    out = RdbSummary()
    head = r.take(9)
    if not head.startswith(MAGIC) or not head[5:].isdigit():
        raise RdbError("not an RDB file (no REDIS header)")
    out.version = int(head[5:])
    db = 0
    counted_expires: dict[int, int] = {}
    while True:
        if out.keys:  # inside a database: most keys are plain strings
            fast, ttl = _fast_keys(r)
            if fast:
                out.keys[db] = out.keys.get(db, 0) + fast
                counted_expires[db] = counted_expires.get(db, 0) + ttl
        op = r.byte()
        if op == _EOF:
            out.checksum = r.take(8) if out.version >= 5 else b""
            for db_, n in out.announced.items():
                if out.keys.get(db_, 0) != n:
                    raise RdbError(f"database {db_} announces {n} keys and holds {out.keys.get(db_, 0)}")
            out.expires = {db_: counted_expires.get(db_, 0) for db_ in out.keys}
            return out
        if op == _SELECTDB:
            db = r.number()
            out.keys.setdefault(db, 0)
            continue
        if op == _RESIZEDB:
            out.announced[db] = r.number()
            out.expires[db] = r.number()
            if stop_at_first_db:
                out.keys[db] = out.announced[db]
                return out
            continue
        if op == _AUX:
            key, value = r.string(keep=True), r.string(keep=True)
            out.aux[key.decode(errors="replace")] = value.decode(errors="replace")
            continue
        if op in (_FUNCTION2, _FUNCTION):
            r.string()
            out.functions += 1
            continue
        if op == _MODULE_AUX:
            _skip_module(r)
            continue
        expires = False
        if op == _EXPIRE_MS:
            r.skip(8)
            op, expires = r.byte(), True
        elif op == _EXPIRE_S:
            r.skip(4)
            op, expires = r.byte(), True
        while op in (_FREQ, _IDLE):
            r.skip(1) if op == _FREQ else r.number()
            op = r.byte()
        r.string()  # the key
        _skip_value(r, op)
        out.keys[db] = out.keys.get(db, 0) + 1
        if expires:
            counted_expires[db] = counted_expires.get(db, 0) + 1


class Walking:
    """:func:`walk` (or another reader of a byte stream) in a thread, fed what is
    written to this object: ``write`` the stream, then ``result()`` for the summary
    (re-raising the walker's error). The pipe between them holds 1 MiB at most."""

    def __init__(self, reader: Callable[[Callable[[int], bytes]], Any] = walk) -> None:
        import os

        r, w = os.pipe()
        self._w = w
        self._file = open(r, "rb", buffering=1 << 20)
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = reader(self._file.read)
                while self._file.read(1 << 20):  # the rest (after a head read): drain, the writer waits
                    pass
            except BaseException as exc:
                self._error = exc
                while self._file.read(1 << 20):
                    pass
            finally:
                self._file.close()

        self._thread = threading.Thread(target=run, name="backupkit-rdb-walk", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> int:
        """Pass *data* to the walker (blocks while it is behind)."""
        view = memoryview(data)
        while view:
            n = os.write(self._w, view)
            view = view[n:]
        return len(data)

    def close(self) -> None:
        """End the stream (the walker sees EOF); safe to call twice."""
        if self._w >= 0:
            os.close(self._w)
            self._w = -1

    def result(self) -> Any:
        """End the stream, wait for the walker, and return what it found."""
        self.close()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
