"""Serving an RDB stream to a Redis server as its master, for one full sync: the
fastest way to load a snapshot into a running server without touching its disk.

The target is told ``REPLICAOF 127.0.0.1 <port>`` of a listener here; it logs in,
announces its capabilities and asks ``PSYNC``; it gets ``+FULLRESYNC`` and the RDB as a
diskless transfer (``$EOF:<marker>``, the bytes, the marker), straight from the
artifact's stream, and loads it. The stream's last chunk (and so the marker) is sent
only after the engine checked the stream's end and the RDB walker read every record:
a replica never finishes a sync of a damaged or cut artifact (Redis exits on a corrupt
RDB), and a replica loading to disk
first (Redis's default, ``repl-diskless-load disabled``) keeps its data until a sync
completes. Then ``REPLICAOF NO ONE`` makes the target a master again.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from typing import Any

from backupkit.errors import RestoreError
from backupkit.plugin import Reader
from backupkit.sources.redis.connection import RedisConn
from backupkit.sources.redis.rdb import RdbError, Walking, walk

CHUNK = 1 << 20

SYNC_TIMEOUT = 3600.0


class RdbMaster:
    """A listener on a loopback port that serves *stream* to the first replica."""

    def __init__(self, stream: Reader, size: int | None = None) -> None:
        self._stream = stream
        self._size = size
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self._listener.settimeout(60)
        self.port = int(self._listener.getsockname()[1])
        self.sent = False
        self.error: BaseException | None = None
        self._client: socket.socket | None = None
        self._reader: Any = None
        self._thread = threading.Thread(target=self._serve, name="backupkit-redis-master", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            client, _ = self._listener.accept()
            self._client = client
            client.settimeout(SYNC_TIMEOUT)
            reader = self._reader = client.makefile("rb")
            while True:
                command = _read_command(reader)
                name = command[0].upper() if command else b""
                if name == b"PING":
                    client.sendall(b"+PONG\r\n")
                elif name in (b"PSYNC", b"SYNC"):
                    break
                else:  # AUTH, REPLCONF listening-port / ip-address / capa ...
                    client.sendall(b"+OK\r\n")
            mark = os.urandom(20).hex().encode()
            client.sendall(b"+FULLRESYNC " + os.urandom(20).hex().encode() + b" 0\r\n$EOF:" + mark + b"\r\n")
            self._send_checked(client)
            client.sendall(mark)
            self.sent = True
            while reader.readline():  # REPLCONF ACK until the replica lets go
                pass
        except BaseException as exc:  # reported by wait(); the replica's sync fails with it
            self.error = exc
        finally:
            self.close_client()

    def _send_checked(self, client: socket.socket) -> None:
        """Send the RDB, its last chunk only once it is known to be whole: a replica given a
        cut or malformed RDB would stop (Redis exits on a corrupt RDB), one given most of it
        keeps its old data. Whole means, with the size the manifest recorded: that many
        bytes, the engine's checksums matched at the end, and the RDB's end record there;
        without it (a stream restored by hand), the walker read every record."""
        walker = Walking(walk) if self._size is None else None
        total = 0
        try:
            held = b""
            while data := self._stream.read(CHUNK):
                total += len(data)
                if walker is not None:
                    walker.write(data)
                if held:
                    client.sendall(held)
                held = data
            if walker is not None:
                walker.result()
            elif total != self._size or len(held) < 9 or held[-9] != 0xFF:
                raise RdbError(f"the RDB is {total} bytes and should be {self._size}, ending in its "
                               "end record; nothing was loaded")
        finally:
            if walker is not None:
                walker.close()
        client.sendall(held)

    def close_client(self) -> None:
        """Hang up on the replica (once its sync is over, or failed)."""
        client, self._client = self._client, None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        if client is not None:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()

    def close(self) -> None:
        """Stop listening and wait for the serving thread."""
        self.close_client()
        self._listener.close()
        self._thread.join(timeout=30)


def _read_command(reader: Any) -> list[bytes]:
    line = reader.readline()
    if not line:
        raise ConnectionError("the replica hung up before asking for the data")
    if not line.startswith(b"*"):
        return list(line.split())
    args = []
    for _ in range(int(line[1:])):
        size = int(reader.readline()[1:])
        args.append(reader.read(size + 2)[:-2])
    return args


def load_by_replication(stream: Reader, client: Any, conn: RedisConn, *, size: int | None = None) -> None:
    """Make the server behind *client* load the RDB on *stream* (of *size* bytes, when
    the manifest says) as a replica of ours."""
    master = RdbMaster(stream, size)
    try:
        with conn.calls("refused REPLICAOF"):
            client.execute_command("REPLICAOF", "127.0.0.1", str(master.port))
            deadline = time.monotonic() + SYNC_TIMEOUT
            while time.monotonic() < deadline:
                if master.error is not None:
                    raise master.error
                info = client.info("replication")
                if master.sent and info.get("master_link_status") == "up" and \
                        not int(info.get("master_sync_in_progress", 0)):
                    return
                time.sleep(0.02)
            raise RestoreError(f"Redis at {conn.where()} did not finish loading the backup within "
                               f"{SYNC_TIMEOUT:.0f} s")
    finally:
        with contextlib.suppress(Exception):
            client.execute_command("REPLICAOF", "NO", "ONE")
        master.close()
