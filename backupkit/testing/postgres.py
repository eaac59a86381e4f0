"""A real PostgreSQL server for tests: one throwaway cluster per test session, and a
fresh database per test. As pytest fixtures (import them into a test module or a
conftest)::

    from backupkit.testing.postgres import pg, pg_cluster  # noqa: F401

    def test_dump(pg):              # a new, empty database on the session's cluster
        with pg.connect() as conn:
            conn.execute("CREATE TABLE t (id int)")
        ...  pg.url  ...

The cluster runs as the ``postgres`` user when the tests run as root (see
:mod:`backupkit.sources.postgres.cluster`); tests are skipped where PostgreSQL's
server programs are not installed.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from backupkit.errors import SourceError
from backupkit.sources.postgres.cluster import TempCluster

_NAMES = itertools.count(1)


@attrs.frozen
class Database:
    """One database of the test cluster."""

    cluster: TempCluster
    name: str

    @property
    def url(self) -> str:
        """Its libpq URL (user ``postgres``, trust authentication)."""
        return self.cluster.url(self.name)

    def connect(self, **kwargs: Any) -> Any:
        """A psycopg connection to it (``with pg.connect() as conn`` commits at the end)."""
        import psycopg

        return psycopg.connect(self.url, **kwargs)

    def sibling(self, prefix: str = "other") -> Database:
        """A name for another database on the same cluster (not created)."""
        return Database(self.cluster, f"{prefix}_{next(_NAMES)}")

    def create(self) -> Database:
        """Create this database (empty, from template0); returns itself."""
        with admin(self.cluster) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}" TEMPLATE template0')
        return self


@contextlib.contextmanager
def admin(cluster: TempCluster) -> Iterator[Any]:
    """An autocommit connection to the cluster's ``postgres`` database."""
    import psycopg

    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TempCluster]:
    """The session's PostgreSQL cluster, started on a free loopback port."""
    pytest.importorskip("psycopg")
    try:
        cluster = TempCluster().start()
    except SourceError as exc:
        pytest.skip(f"no PostgreSQL server here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg(pg_cluster: TempCluster) -> Iterator[Database]:
    """A new, empty database, dropped after the test."""
    db = Database(pg_cluster, f"test_{next(_NAMES)}").create()
    yield db
    with admin(pg_cluster) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s OR datname LIKE %s",
                            (f"{db.name}%", "other\\_%")).fetchall()
        for (name,) in rows:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
