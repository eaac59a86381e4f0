"""The HTTP API (``backupkit serve``, extra ``backupkit[server]``): FastAPI on uvicorn.

FastAPI because its ``/openapi.json`` comes from the same typed routes and request models
the server runs, so the document cannot drift from the code (a property-based test,
schemathesis, holds the two together); Starlette alone would need a hand-kept document.

- :func:`create_app` — the ASGI app for an engine, to run or to mount in a host's app.
- :class:`~.service.Service` — what the routes do, apart from any framework (the Django
  views serve it too); importing it needs no FastAPI.
- :func:`serve` — run it on uvicorn: loopback by default, never open without tokens on
  another address, the scheduler started when ``AUTO_S3_BACKUP=true``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from backupkit.core.schedule import auto_start, enabled
from backupkit.errors import ConfigError
from backupkit.server.auth import Tokens
from backupkit.server.service import URL_EXPIRES

if TYPE_CHECKING:
    from backupkit.engine import Engine
    from backupkit.server.app import create_app

__all__ = ["URL_EXPIRES", "Tokens", "create_app", "refuse_open", "serve"]

log = logging.getLogger("backupkit.server")


def __getattr__(name: str) -> Any:
    if name == "create_app":  # imports FastAPI: only when asked for
        from backupkit.server.app import create_app
        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_loopback(host: str) -> bool:
    """Whether *host* is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_open(tokens: Tokens, host: str) -> None:
    """The API is never served without tokens (on another address than loopback, the
    message says so too)."""
    if not tokens.tokens:
        where = "" if is_loopback(host) else f" on {host}, which is not a loopback address"
        raise ConfigError(f"refusing to serve the API without tokens{where}; set BACKUPKIT_API_TOKENS="
                          "'id:token:scope' or pass --token-file")


def serve(engine: Engine, tokens: Tokens, env: Mapping[str, str], *, host: str = "127.0.0.1",
          port: int = 8765, url_expires: int = URL_EXPIRES) -> None:
    """Run the API until SIGINT/SIGTERM; the scheduler (if started) stops with it, a
    running backup finishing first."""
    import uvicorn

    from backupkit.server.app import create_app

    refuse_open(tokens, host)
    app = create_app(engine, tokens, url_expires=url_expires, env=env)
    api = app.state.api
    if auto_start(env):
        if not enabled(env):
            log.warning("AUTO_S3_BACKUP=true but BACKUP_ENABLED=false: the scheduler stays stopped")
        else:
            api.start_scheduler()  # a missing bucket or denied write fails here, at start
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
    finally:
        if api.scheduler is not None:
            api.scheduler.stop()
