"""``backupkit serve``: the HTTP API in the foreground (see :mod:`backupkit.server`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from backupkit.errors import ConfigError


def add_parser(sub: Any, common: Callable[..., None]) -> None:
    """The ``serve`` subcommand."""
    p = sub.add_parser("serve", help="serve the HTTP API (status, backups, scheduler, download URLs, metrics)")
    common(p, sink=False)
    p.add_argument("--host", default=os.environ.get("BACKUPKIT_API_HOST", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1; another one needs tokens)")
    p.add_argument("--port", type=int, default=int(os.environ.get("BACKUPKIT_API_PORT", "8765")))
    p.add_argument("--token-file", metavar="FILE",
                   help="API tokens, one 'id:token:scope' per line (token may be sha256:<hex>)")
    p.add_argument("--url-expires", type=int, metavar="SECONDS", default=None,
                   help="how long download URLs stay valid (default 300)")


def cmd_serve(args: argparse.Namespace, *, engine_for: Callable[..., Any]) -> int:
    """Run the API until stopped."""
    try:
        from backupkit import server
    except ImportError as exc:
        raise ConfigError(f"backupkit serve needs the server extra ({exc.name} is missing); "
                          "pip install 'backupkit[server]'") from None
    tokens = server.Tokens.from_env(os.environ, args.token_file)
    expires = args.url_expires or int(os.environ.get("BACKUPKIT_API_URL_EXPIRES", server.URL_EXPIRES))
    if not 1 <= expires <= 7 * 24 * 3600:
        raise ConfigError(f"--url-expires must be 1 to 604800 seconds, got {expires}")
    server.refuse_open(tokens, args.host)
    engine = engine_for(args)
    print(f"backupkit: serving the API on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    # uvicorn handles SIGTERM/SIGINT (a graceful shutdown) and raises the signal again once
    # it has stopped: then it has been handled, so the handlers it returns to do nothing.
    previous = {s: signal.signal(s, lambda signum, frame: None) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve(engine, tokens, os.environ, host=args.host, port=args.port, url_expires=expires)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    print("backupkit: the API has stopped", file=sys.stderr, flush=True)
    return 0
