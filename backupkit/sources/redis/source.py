"""The ``redis`` source plugin: :class:`RedisSource` and its hook implementation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from backupkit.errors import RestoreError, SourceError
from backupkit.params import check_range, secret
from backupkit.plugin import (
    BackupContext,
    Reader,
    RestoreContext,
    Source,
    Writer,
)
from backupkit.sources.redis import rdb
from backupkit.sources.redis.connection import RedisConn, keyspace
from backupkit.sources.redis.keys import dump_keys, read_records
from backupkit.sources.redis.replication import fetch_rdb
from backupkit.sources.redis.restore import restore_into_server, restore_to_dir
from backupkit.sources.redis.server import TempRedis

if TYPE_CHECKING:
    from backupkit.plugin.scratch import Scratch


def _dbs(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise ValueError(f"expected a list of database numbers, got {value!r}")
    return tuple(value)


@attrs.frozen
class RedisSource(Source):
    """A Redis server's data: a point-in-time RDB snapshot over the replication
    protocol (``mode = "rdb"``, the default), or every key's ``DUMP`` for servers that
    refuse replication (``mode = "keys"``: managed services, restricted ACL users).

    Connection: ``url`` (``redis://[user:password@]host:port[/db]``, ``rediss://`` for
    TLS) or ``host``/``port``/``username``/``password``.
    """

    id: ClassVar[str] = "redis"
    extension: ClassVar[str] = ".rdb"

    url: str | None = secret(default=None)
    host: str | None = None
    port: int | None = attrs.field(default=None, validator=attrs.validators.optional(check_range(1, 65535)))
    username: str | None = None
    password: str | None = secret(default=None)
    tls_ca_file: str | None = None
    mode: str = attrs.field(default="rdb", validator=attrs.validators.in_(("rdb", "keys")))
    #: Mode ``keys``: the databases to store (default: every one that holds keys).
    databases: tuple[int, ...] | None = attrs.field(default=None, converter=_dbs)

    def conn(self) -> RedisConn:
        """Where to connect, from the parameters."""
        return RedisConn.resolve(self.url, host=self.host, port=self.port, username=self.username,
                                 password=self.password, tls_ca_file=self.tls_ca_file)

    def stream_extension(self) -> str:
        """``.rdb`` for a snapshot, ``.keys`` for the per-key stream."""
        return ".keys" if self.mode == "keys" else ".rdb"

    # -- backup -------------------------------------------------------------------------
    def backup(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any] | None:
        conn = self.conn()
        client = conn.commands()
        try:
            with conn.calls("answered INFO"):
                server = client.info("server")
                space = keyspace(client.info("keyspace"))
                loading = int(client.info("persistence").get("loading", 0))
        finally:
            client.close()
        if loading:
            raise conn.error(RuntimeError("LOADING"))
        ctx.progress(conn.where())
        facts: dict[str, Any] = {"mode": self.mode, "redis_version": server.get("redis_version", ""),
                                 "keyspace_at_start": space}
        if self.mode == "keys":
            dbs = list(self.databases) if self.databases is not None else sorted(int(d) for d in space)
            with conn.calls("during SCAN/DUMP"):
                counts = dump_keys(lambda db: conn.client(db=db), dbs, out.write)
            version = rdb.max_rdb_version(facts["redis_version"])
            return {**facts, "rdb_version": version, "keys": {str(d): n for d, n in counts.items()}}
        # One database (the usual case): its RESIZEDB record gives the count, no walk needed.
        whole = len(space) > 1
        walker = rdb.Walking(rdb.walk if whole else rdb.head)

        def both(data: bytes) -> None:
            out.write(data)
            walker.write(data)

        try:
            size = fetch_rdb(conn, both)
        except BaseException:
            walker.close()
            raise
        try:
            summary = walker.result()
        except rdb.RdbError as exc:
            raise SourceError(f"Redis at {conn.where()} sent an RDB this reader does not understand: {exc}") from None
        return {**facts, **summary.to_dict(), "rdb_bytes": size,
                "keys_counted": "every database" if whole else "the first database"}

    # -- restore ------------------------------------------------------------------------
    def drill_target(self, scratch: Scratch, ctx: RestoreContext) -> str:
        """A temporary ``redis-server`` on a free loopback port, stopped when the drill ends."""
        server = TempRedis().start()
        assert server.proc is not None and server.root is not None
        scratch.on_cleanup(server.stop, [{"kill": server.proc.pid}, {"rmtree": str(server.root)}])
        return server.url

    def restore(self, stream: Reader, ctx: RestoreContext) -> Mapping[str, Any] | None:
        target = ctx.target
        if target is None:
            raise RestoreError(f"artifact {ctx.artifact}: give --to DIR (writes dump.rdb) or "
                               f"--to {ctx.artifact}=redis://host:port")
        if isinstance(target, Path) or "://" not in str(target):
            if self.mode == "keys":
                raise RestoreError(f"artifact {ctx.artifact} holds keys, not an RDB file: restore it "
                                   f"into a running server, --to {ctx.artifact}=redis://host:port")
            return restore_to_dir(stream, Path(target), ctx)
        return restore_into_server(stream, RedisConn.resolve(str(target)), ctx, mode=self.mode)

    def check(self, stream: Reader, ctx: RestoreContext) -> str | None:
        """Walk the RDB's structure (or the keys stream's records) and compare its key
        counts with the manifest."""
        if self.mode == "keys":
            counts: dict[str, int] = {}
            for db, _expiry, _key, _payload in read_records(stream.read):
                counts[str(db)] = counts.get(str(db), 0) + 1
        else:
            counts = {str(db): n for db, n in rdb.walk(stream.read).keys.items()}
        expected = {k: v for k, v in dict(ctx.facts.get("keys") or {}).items() if v}
        if "keys" in ctx.facts and {k: v for k, v in counts.items() if v} != expected:
            raise RestoreError(f"artifact {ctx.artifact} holds keys {counts}, its manifest says {expected}")
        return None

