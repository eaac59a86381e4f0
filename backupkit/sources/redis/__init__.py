"""The ``redis`` source: a Redis server's data as an RDB snapshot or a per-key stream.

Mode ``rdb`` (default) fetches a point-in-time snapshot the way ``redis-cli --rdb``
does (the replication handshake, ``REPLCONF rdb-only 1``, ``SYNC``): the server forks
and streams its RDB, which goes through the transforms into the sink as it arrives. No
access to the server's disk is needed, and the artifact is exactly the file a server
writes (the diskless transfer's end marker is stripped), so after ``zstd -d`` a stock
``redis-server`` loads it. Mode ``keys`` (``SCAN`` + ``DUMP`` + ``PTTL``) serves
servers that refuse replication. See docs/redis.md.

Modules: :mod:`.source` (the plugin), :mod:`.connection`, :mod:`.replication` (the
``SYNC`` client), :mod:`.rdb` (reading an RDB's structure as it streams), :mod:`.keys`
(the per-key stream), :mod:`.restore`, :mod:`.master` (serving an RDB to a local
server as its master for one sync) and :mod:`.server` (a throwaway ``redis-server``
for remote restores, tests and drills). redis-py is needed only when a redis source is used
(``backupkit[redis]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backupkit.plugin import Register, hookimpl, lazy_exports

if TYPE_CHECKING:
    from backupkit.sources.redis.source import RedisSource

__all__ = ["RedisSource", "backupkit_register_sources"]


@hookimpl
def backupkit_register_sources(register: Register) -> None:
    """The ``redis`` source, by reference: its modules load when a set uses it."""
    register.source("backupkit.sources.redis.source:RedisSource", id="redis")


__getattr__ = lazy_exports(__name__, {"RedisSource": "backupkit.sources.redis.source"})
