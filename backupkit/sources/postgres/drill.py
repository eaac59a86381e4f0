"""Scratch PostgreSQL for restore drills: a throwaway database on the set's scratch
server (``drill.postgres_url``), or on a temporary local cluster started for the drill
from the PostgreSQL server programs. Either is removed when the drill ends, by the
drill or, if it dies, by its guardian (:mod:`backupkit.plugin.scratch`)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

from backupkit.errors import SourceError
from backupkit.sources.postgres.cluster import TempCluster, _as_owner
from backupkit.sources.postgres.connection import Conn

if TYPE_CHECKING:
    from backupkit.plugin.scratch import Scratch


#: Settings of the drill's temporary cluster, for a fast restore into it. ``wal_level =
#: minimal``: ``pg_restore --single-transaction`` creates each table in the transaction that
#: loads it, so its COPY and its index builds write no WAL (the cluster is thrown away
#: anyway). No autovacuum (it would analyze the restored tables while their rows are
#: counted), no checkpoint in the middle, index builds sorted in memory.
RESTORE_SETTINGS = {"wal_level": "minimal", "max_wal_senders": "0", "autovacuum": "off",
                    "max_wal_size": "8GB", "checkpoint_timeout": "1h", "maintenance_work_mem": "256MB"}


def _cluster(scratch: Scratch) -> TempCluster:
    try:
        cluster = TempCluster(settings=RESTORE_SETTINGS)
    except SourceError as exc:
        raise SourceError(f"{exc}: a drill needs them for a temporary cluster, or a scratch server "
                          "(drill.postgres_url = \"postgresql://user@host/postgres\")") from None
    cluster.start()
    assert cluster.root is not None
    stop = [*_as_owner(), str(cluster.bin_dir / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "-w", "stop"]
    scratch.on_cleanup(cluster.stop, [{"run": stop}, {"rmtree": str(cluster.root)}])
    return cluster


def _server_url(scratch: Scratch) -> str:
    url: str | None = getattr(scratch.settings, "postgres_url", None)
    if url:
        return url
    return scratch.shared("postgres-cluster", lambda: _cluster(scratch)).url()


def is_own_cluster(scratch: Scratch) -> bool:
    """Whether the drill's databases go to a temporary cluster of its own (where roles
    may be created too), not to a shared scratch server."""
    return not getattr(scratch.settings, "postgres_url", None)


def with_dbname(url: str, dbname: str) -> str:
    """*url* naming database *dbname* instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))


def scratch_server(scratch: Scratch) -> str:
    """The URL of the server (its maintenance database) drills create databases on: the
    scratch server, or the drill's own temporary cluster (started at the first call,
    shared by the drill's artifacts)."""
    url = _server_url(scratch)
    return url if urlsplit(url).path.strip("/") else with_dbname(url, "postgres")


def scratch_database(scratch: Scratch, label: str) -> str:
    """A new empty database for artifact *label*, dropped when the drill ends; its URL
    (with the scratch server's password, if it has one: never shown, see ``redacted``)."""
    from psycopg import sql

    admin_url = scratch_server(scratch)
    admin = Conn.resolve(admin_url, {}, None, env={})
    name = f"backupkit_drill_{secrets.token_hex(4)}"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with admin.connect(autocommit=True) as db:
        db.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))

    def dropped() -> None:
        with admin.connect(autocommit=True) as db:
            db.execute(drop)

    scratch.on_cleanup(dropped, [{"sql": [admin_url, drop.as_string(None)]}])
    return with_dbname(admin_url, name)
