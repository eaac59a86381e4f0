"""Fetching a point-in-time RDB over the replication protocol, as ``redis-cli --rdb``
does: log in, ``REPLCONF rdb-only 1``, ``REPLCONF capa eof``, ``SYNC``; the server
forks and streams its dataset. Diskless transfers end with a 40-byte marker announced up front
(``$EOF:<marker>``), which is not part of the RDB and is stripped here; disk-based
ones announce their length (``$<bytes>``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from backupkit.errors import SourceError
from backupkit.sources.redis.connection import RedisConn

CHUNK = 1 << 20
MARK = 40


def _command(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Lines:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")


def refused(conn: RedisConn, reply: str) -> SourceError:
    """The error for a server that will not replicate to us."""
    return SourceError(
        f"Redis at {conn.where()} refused SYNC ({conn.redact(reply)}): managed services "
        "(ElastiCache, Redis Cloud) and ACL users without @dangerous cannot replicate; "
        "use mode = \"keys\" for such servers"
    )


def fetch_rdb(conn: RedisConn, write: Callable[[bytes], object]) -> int:
    """Stream the server's RDB into *write*; return its size in bytes."""
    sock = conn.socket()
    try:
        lines = _Lines(sock)
        if conn.password is not None:
            auth = ("AUTH", conn.username, conn.password) if conn.username else ("AUTH", conn.password)
            sock.sendall(_command(*auth))
            reply = lines.line().decode(errors="replace")
            if not reply.startswith("+"):
                raise conn.error(RuntimeError(reply.lstrip("-")))
        sock.sendall(_command("REPLCONF", "rdb-only", "1"))
        reply = lines.line().decode(errors="replace")
        if reply.startswith("-") and ("NOAUTH" in reply or "NOPERM" in reply or "LOADING" in reply):
            raise (refused(conn, reply.lstrip("-")) if "NOPERM" in reply else conn.error(RuntimeError(reply[1:])))
        # older servers do not know rdb-only: they answer an error and still replicate.
        # "capa eof" lets the server stream the snapshot as it forks (diskless) instead of
        # writing it to its own disk first (which also rewrote its dump.rdb).
        sock.sendall(_command("REPLCONF", "capa", "eof"))
        lines.line()
        sock.sendall(b"SYNC\r\n")
        while True:  # newlines are keep-alives while the server prepares the snapshot
            head = lines.line()
            if head:
                break
        text = head.decode(errors="replace")
        if text.startswith("-"):
            if "LOADING" in text or "NOAUTH" in text:
                raise conn.error(RuntimeError(text[1:]))
            raise refused(conn, text[1:])
        if not text.startswith("$"):
            raise SourceError(f"Redis at {conn.where()} answered SYNC with {text[:60]!r}, not an RDB")
        if text.startswith("$EOF:"):
            return _until_marker(sock, lines.buf, text[5:].encode(), write, conn)
        return _exactly(sock, lines.buf, int(text[1:]), write, conn)
    except (OSError, ConnectionError) as exc:
        raise SourceError(
            f"the connection to Redis at {conn.where()} broke during the snapshot ({exc}); nothing was stored"
        ) from None
    finally:
        sock.close()


def _until_marker(sock: socket.socket, pending: bytes, mark: bytes, write: Callable[[bytes], object],
                  conn: RedisConn) -> int:
    if len(mark) != MARK:
        raise SourceError(f"Redis at {conn.where()} announced a malformed end marker")
    held, total = bytearray(pending), 0
    while True:
        if len(held) >= MARK and held[-MARK:] == mark:
            body = bytes(held[:-MARK])
            write(body)
            return total + len(body)
        if len(held) > MARK + CHUNK:
            out = bytes(held[: len(held) - MARK])
            del held[: len(held) - MARK]
            write(out)
            total += len(out)
        chunk = sock.recv(CHUNK)
        if not chunk:
            raise ConnectionError("the server closed the connection before the end of the RDB")
        held += chunk


def _exactly(sock: socket.socket, pending: bytes, size: int, write: Callable[[bytes], object],
             conn: RedisConn) -> int:
    left = size
    if pending:
        write(pending[:left])
        left -= min(len(pending), left)
    while left:
        chunk = sock.recv(min(CHUNK, left))
        if not chunk:
            raise ConnectionError("the server closed the connection before the end of the RDB")
        write(chunk)
        left -= len(chunk)
    return size
