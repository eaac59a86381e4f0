"""A real ``redis-server`` for tests: a fresh one per test on a free loopback port, as
pytest fixtures (registered by a ``pytest_plugins`` entry or imported)::

    def test_snapshot(redis_server):     # a TempRedis, started; stopped after the test
        client = redis.Redis(port=redis_server.port)

``redis_factory(args=..., password=...)`` starts more (a second server to restore
into, one with ACL users); tests are skipped where ``redis-server`` is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from backupkit.sources.redis.server import TempRedis


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., TempRedis]]:
    """Start ``redis-server`` processes (``args``, ``password``); all stop after the test."""
    pytest.importorskip("redis")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    started: list[TempRedis] = []

    def start(args: Sequence[str] = (), password: str | None = None, **kw: Any) -> TempRedis:
        server = TempRedis(args=("--enable-debug-command", "local", *args), password=password, **kw).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def redis_server(redis_factory: Callable[..., TempRedis]) -> TempRedis:
    """One fresh ``redis-server`` for the test."""
    return redis_factory()
