"""Restoring a ``redis`` artifact: an RDB file into a directory (``dump.rdb`` for a
server to load at start), or either kind into a running server, its key counts then
compared with the manifest.

An RDB goes into a server on this machine straight from the stream, backupkit being
its master for one full sync (:mod:`.master`); any other target gets every key by
``DUMP``/``RESTORE`` from a temporary local ``redis-server`` that loaded the artifact,
read to its end (and so checked) before the target is touched.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backupkit.errors import RestoreError
from backupkit.plugin import Reader, RestoreContext
from backupkit.sources.redis import rdb
from backupkit.sources.redis.connection import Commands, RedisConn, keyspace
from backupkit.sources.redis.keys import BATCH, read_records, scan_dumps
from backupkit.sources.redis.master import load_by_replication
from backupkit.sources.redis.server import TempRedis, redis_server_program

CHUNK = 1 << 20
SYNC_TIMEOUT = 3600.0


def _copy(stream: Reader, path: Path) -> None:
    with open(path, "xb") as fh:
        while chunk := stream.read(CHUNK):  # to the end: the checksums are checked there
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())


def restore_to_dir(stream: Reader, target: Path, ctx: RestoreContext) -> Mapping[str, Any]:
    """Write the RDB as ``target/dump.rdb`` (staged, renamed once checked)."""
    dest = target / "dump.rdb"
    if target.exists() and not target.is_dir():
        raise RestoreError(f"restore target {target} is not a directory")
    if dest.exists() and not ctx.overwrite:
        raise RestoreError(f"{dest} already exists; choose another target or pass --overwrite")
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f".dump.rdb.backupkit-partial-{secrets.token_hex(4)}"
    try:
        _copy(stream, tmp)
        with open(tmp, "rb") as fh:
            summary = rdb.walk(fh.read)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return {"file": str(dest), "rdb_version": summary.version,
            "keys": {str(db): n for db, n in summary.keys.items()}}


def _local_version() -> str:
    out = subprocess.run([redis_server_program(), "--version"], capture_output=True, text=True,
                         check=False).stdout
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return ""


def check_loadable(version: int | None, server: str, where: str) -> None:
    """Refuse an RDB newer than a server of version *server* loads."""
    most = rdb.max_rdb_version(server)
    if version and most is not None and version > most:
        raise RestoreError(
            f"the backup is RDB version {version}; Redis {server} at {where} loads RDB {most} at most "
            "(RDB formats are not backward compatible): restore into a newer Redis"
        )


def _is_local(host: str) -> bool:
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


def _prepare(conn: RedisConn, ctx: RestoreContext) -> Commands:
    client = conn.commands(db=0)
    try:
        with conn.calls("refused the restore"):
            server = client.info("server")["redis_version"]
            check_loadable(ctx.facts.get("rdb_version"), server, conn.where())
            held = keyspace(client.info("keyspace"))
        if held and not (ctx.overwrite or ctx.options.get("flush")):
            raise RestoreError(
                f"Redis at {conn.where()} holds keys ({sum(held.values())} in {len(held)} databases); "
                "restore into an empty server, or pass --flush to replace them"
            )
    except BaseException:
        client.close()  # a refused restore leaves no socket for the garbage collector to warn about
        raise
    return client


def _compare(expected: Mapping[str, int] | None, actual: Mapping[str, int], expires: Mapping[str, int],
             where: str, *, every_db: bool = True) -> dict[str, Any]:
    if expected is None:  # no manifest facts to compare with (a stream restored by hand)
        return {"keys": dict(actual)}
    problems, expired = [], 0
    dbs = set(expected) | set(actual) if every_db else set(expected)
    for db in sorted(dbs, key=int):
        want, got = int(expected.get(db, 0)), int(actual.get(db, 0))
        if got == want:
            continue
        if got < want <= got + int(expires.get(db, 0)):
            expired += want - got  # keys whose TTL ran out since the backup
            continue
        problems.append(f"database {db} has {got} keys, the backup {want}")
    if problems:
        raise RestoreError(f"Redis at {where} was restored but " + "; ".join(problems))
    return {"keys": dict(actual), "key_counts_match": True, "expired_since_backup": expired}


def _copy_keys(source: TempRedis, conn: RedisConn) -> None:
    """Every key of every database the temporary server loaded, to the target."""
    src = RedisConn(port=source.port)
    for db in sorted(int(d) for d in keyspace(src.client().info("keyspace"))):
        writer = conn.client(db=db)
        with conn.calls("refused RESTORE"):
            out, pending = writer.pipeline(transaction=False), 0
            for key, payload, ttl in scan_dumps(src.client(db=db)):
                out.restore(key, max(ttl, 0), payload, replace=True)
                pending += 1
                if pending >= BATCH:
                    out.execute()
                    out, pending = writer.pipeline(transaction=False), 0
            out.execute()


def _restore_records(stream: Any, conn: RedisConn) -> int:
    """RESTORE every record (keys already expired are skipped); return how many were."""
    clients: dict[int, Any] = {}
    pipes: dict[int, Any] = {}
    now, skipped, pending = int(time.time() * 1000), 0, 0
    with conn.calls("refused RESTORE"):
        for db, expiry, key, payload in read_records(stream.read):
            if 0 <= expiry <= now:
                skipped += 1
                continue
            if db not in pipes:
                clients[db] = conn.client(db=db)
                pipes[db] = clients[db].pipeline(transaction=False)
            pipes[db].restore(key, max(expiry, 0), payload, replace=True, absttl=expiry >= 0)
            pending += 1
            if pending >= BATCH:
                for pipe in pipes.values():
                    pipe.execute()
                pending = 0
        for pipe in pipes.values():
            pipe.execute()
    return skipped


def restore_into_server(stream: Reader, conn: RedisConn, ctx: RestoreContext, *, mode: str) -> Mapping[str, Any]:
    """Load the artifact into the running server *conn* names; compare key counts."""
    recorded = ctx.facts.get("keys")  # None: a stream restored by hand, nothing to compare
    expected = None if recorded is None else {db: n for db, n in dict(recorded).items() if n}
    expires = dict(ctx.facts.get("expires") or {})
    client = _prepare(conn, ctx)
    try:
        return _restore(stream, conn, ctx, client, mode=mode, expected=expected, expires=expires)
    finally:
        client.close()


def _restore(stream: Reader, conn: RedisConn, ctx: RestoreContext, client: Commands, *, mode: str,
             expected: dict[str, Any] | None, expires: dict[str, Any]) -> Mapping[str, Any]:
    if mode == "keys":
        # Spooled and read through first, so a damaged stream never reaches the server.
        with tempfile.TemporaryDirectory(prefix="backupkit-redis-restore-") as tmp:
            spool = Path(tmp) / "keys"
            _copy(stream, spool)
            with open(spool, "rb") as fh:
                for _ in read_records(fh.read):
                    pass
            if ctx.overwrite or ctx.options.get("flush"):
                with conn.calls("refused FLUSHALL"):
                    client.flushall()
            with open(spool, "rb") as fh:
                skipped = _restore_records(fh, conn)
        with conn.calls():
            actual = keyspace(client.info("keyspace"))
        result = _compare(expected, actual,
                          {db: skipped for db in expected or ()}, conn.where())
        return {**result, "method": "RESTORE"}
    if _is_local(conn.host):  # straight from the stream: we are the target's master for one sync
        load_by_replication(stream, client, conn, size=ctx.facts.get("rdb_bytes"))
        with conn.calls():
            actual = keyspace(client.info("keyspace"))
        result = _compare(expected, actual, expires, conn.where(),
                          every_db=ctx.facts.get("keys_counted") != "the first database")
        return {**result, "method": "REPLICAOF"}
    with tempfile.TemporaryDirectory(prefix="backupkit-redis-restore-") as tmp:
        rdb_file = Path(tmp) / "dump.rdb"
        _copy(stream, rdb_file)  # read whole and checked before anything else happens
        check_loadable(ctx.facts.get("rdb_version"), _local_version(), "this machine (redis-server)")
        source = TempRedis().start(rdb_file)
        try:
            if ctx.overwrite or ctx.options.get("flush"):
                with conn.calls("refused FLUSHALL"):
                    client.flushall()
            _copy_keys(source, conn)
        finally:
            source.stop()
        with conn.calls():
            actual = keyspace(client.info("keyspace"))
        result = _compare(expected, actual, expires, conn.where(),
                          every_db=ctx.facts.get("keys_counted") != "the first database")
        return {**result, "method": "RESTORE"}



