"""A real HTTP server on loopback for API tests (import `serve` into a test module): uvicorn in a thread of the test
process (so a test can hold a backup open with a plugin), on a free port."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from backupkit.plugin.scratch import free_port
from backupkit.server import Tokens, create_app

READ, ADMIN = "read-token-0123456789", "admin-token-0123456789"
#: Every route of the API but ``/metrics``: (method, path, a valid body, the scope it needs).
ROUTES = [
    ("POST", "/api/backup", {"reason": "manual"}, "admin"),
    ("POST", "/api/admin/backup", {"type": "full"}, "admin"),
    ("GET", "/api/backup/status", None, "read"),
    ("GET", "/api/backup/runs/nope", None, "read"),
    ("GET", "/api/admin/backup/status", None, "admin"),
    ("GET", "/api/backup/scheduler", None, "read"),
    ("POST", "/api/backup/scheduler", {"action": "stop"}, "admin"),
    ("POST", "/api/admin/backup/download-url", {"backupPath": "s3://b/k"}, "admin"),
]
TOKENS = Tokens.parse([f"viewer:{READ}:read", f"ops:{ADMIN}:admin"], "test")


class Running:
    """A served app: its base URL, and clients with each token."""

    def __init__(self, url: str, app: Any) -> None:
        self.url, self.app = url, app
        self.clients: dict[str | None, httpx.Client] = {}

    def client(self, token: str | None = ADMIN) -> httpx.Client:
        """A client sending *token* (None: no Authorization header); closed at teardown."""
        if token not in self.clients:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            self.clients[token] = httpx.Client(base_url=self.url, headers=headers, timeout=60)
        return self.clients[token]

    def close(self) -> None:
        """Close every client."""
        for client in self.clients.values():
            client.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    """``serve(engine, **create_app_kwargs)`` runs the API on 127.0.0.1 until the test ends."""
    servers: list[tuple[uvicorn.Server, threading.Thread, Running]] = []

    def start(engine: Any, tokens: Tokens = TOKENS, **kwargs: Any) -> Running:
        app = create_app(engine, tokens, **kwargs)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        for _ in range(500):
            if server.started:
                break
            thread.join(0.02)
        assert server.started, "uvicorn did not start"
        running = Running(f"http://127.0.0.1:{port}", app)
        servers.append((server, thread, running))
        return running

    yield start
    for server, thread, running in servers:
        running.close()
        server.should_exit = True
        thread.join(10)
        if running.app.state.api.scheduler is not None:
            running.app.state.api.scheduler.stop()
