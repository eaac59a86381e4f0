"""Mode ``keys``: every key as ``DUMP`` payload, for servers that refuse replication.

``SCAN`` walks each database; ``DUMP`` and ``PTTL`` of a batch of keys go in one
pipeline. This is **not** a point-in-time snapshot: keys written during the scan may
or may not be in it. The stream is a sequence of records:

``BKREDISKEYS1\\n`` once, then per key ``K`` + ``>HqII`` (database, absolute expiry in
Unix milliseconds or -1, key length, payload length) + key + payload, and at the end
``E`` + ``>Q`` (the number of keys). Restore sends ``RESTORE key expiry payload REPLACE
ABSTTL``, so a key keeps the time it had left (keys that expired since are skipped).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

from backupkit.errors import IntegrityError

MAGIC = b"BKREDISKEYS1\n"
_KEY = struct.Struct(">HqII")
_END = struct.Struct(">Q")
BATCH = 500


def scan_dumps(client: Any) -> Iterator[tuple[bytes, bytes, int]]:
    """``(key, DUMP payload, PTTL)`` of every key of *client*'s database: ``SCAN``, then
    ``DUMP`` and ``PTTL`` of each batch of keys in one pipeline. Keys deleted or expired
    since ``SCAN`` saw them are left out; the PTTL is -1 for a key without a TTL."""
    batch: list[bytes] = []
    for key in client.scan_iter(count=1000):
        batch.append(key)
        if len(batch) >= BATCH:
            yield from _dumped(client, batch)
            batch = []
    if batch:
        yield from _dumped(client, batch)


def _dumped(client: Any, keys: list[bytes]) -> Iterator[tuple[bytes, bytes, int]]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
        pipe.pttl(key)
    replies = pipe.execute()
    for key, payload, ttl in zip(keys, replies[::2], replies[1::2]):
        if payload is not None:
            yield key, payload, -1 if ttl is None else int(ttl)


def dump_keys(client_for: Callable[[int], Any], dbs: list[int], write: Callable[[bytes], object]) -> dict[int, int]:
    """Write every key of databases *dbs*; return the count per database."""
    write(MAGIC)
    counts: dict[int, int] = {}
    out = bytearray()
    for db in dbs:
        counts[db] = 0
        for key, payload, ttl in scan_dumps(client_for(db)):
            expiry = int(time.time() * 1000) + ttl if ttl >= 0 else -1
            out += b"K" + _KEY.pack(db, expiry, len(key), len(payload)) + key + payload
            counts[db] += 1
            if len(out) >= 1 << 20:
                write(bytes(out))
                out.clear()
    out += b"E" + _END.pack(sum(counts.values()))
    write(bytes(out))
    return counts


def read_records(read: Callable[[int], bytes]) -> Iterator[tuple[int, int, bytes, bytes]]:
    """``(db, expiry, key, payload)`` of each record; checks the framing and the count."""
    def exactly(n: int) -> bytes:
        data = read(n)
        while len(data) < n:
            more = read(n - len(data))
            if not more:
                raise IntegrityError("the keys stream ends in the middle of a record")
            data += more
        return data

    if exactly(len(MAGIC)) != MAGIC:
        raise IntegrityError("not a backupkit Redis keys stream (no BKREDISKEYS1 header)")
    seen = 0
    while True:
        tag = exactly(1)
        if tag == b"E":
            (total,) = _END.unpack(exactly(_END.size))
            if total != seen:
                raise IntegrityError(f"the keys stream holds {seen} keys and says {total}")
            if read(1):
                raise IntegrityError("bytes after the end of the keys stream")
            return
        if tag != b"K":
            raise IntegrityError(f"unknown record {tag!r} in the keys stream")
        db, expiry, klen, plen = _KEY.unpack(exactly(_KEY.size))
        key = exactly(klen)
        payload = exactly(plen)
        seen += 1
        yield db, expiry, key, payload
