"""A throwaway ``redis-server`` on a free loopback port: what a restore serves an RDB
from, what tests and restore drills run against.

It runs in the foreground of a child process (not ``--daemonize``), with no
persistence of its own unless given an RDB to load, and ``--repl-diskless-sync-delay
0`` so that fetching its RDB does not wait. :meth:`TempRedis.start` returns once the
server answers ``PONG`` (a server loading an RDB answers ``LOADING`` until then).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from backupkit.errors import SourceError
from backupkit.plugin.scratch import free_port


def redis_server_program() -> str:
    """The ``redis-server`` on PATH; a one-line error saying what to install otherwise."""
    found = shutil.which("redis-server")
    if not found:
        raise SourceError("redis-server is not installed here; install it (apt-get install redis-server)")
    return found


def _ping(port: int, password: str | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        if password:
            s.sendall(f"AUTH {password}\r\n".encode())
            s.recv(1024)
        s.sendall(b"PING\r\n")
        return s.recv(1024)


@attrs.define
class TempRedis:
    """A ``redis-server`` of its own: :meth:`start` (optionally on an RDB file), :meth:`stop`."""

    port: int = attrs.field(factory=free_port)
    args: Sequence[str] = ()
    password: str | None = attrs.field(default=None, repr=False)
    root: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` (no password)."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self, rdb: Path | None = None, *, timeout: float = 600) -> TempRedis:
        """Start the server (loading *rdb*, moved into its directory, if given)."""
        self.root = Path(tempfile.mkdtemp(prefix="backupkit-redis-"))
        dbfile = "dump.rdb"
        if rdb is not None:
            shutil.move(str(rdb), self.root / dbfile)
        args = [redis_server_program(), "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.root), "--dbfilename", dbfile, "--save", "", "--appendonly", "no",
                "--repl-diskless-sync-delay", "0", "--daemonize", "no", "--logfile", "redis.log",
                *(["--requirepass", self.password] if self.password else []), *self.args]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                logfile = self.root / "redis.log"
                log = logfile.read_text(errors="replace") if logfile.exists() else ""
                err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace")
                lines = [ln for ln in (log + err).splitlines() if ln.strip()]
                self.stop()
                raise SourceError(f"the temporary redis-server stopped: {lines[-1] if lines else 'no message'}")
            with contextlib.suppress(OSError):
                if _ping(self.port, self.password).startswith(b"+PONG"):
                    return self
            time.sleep(0.02)
        self.stop()
        raise SourceError(f"the temporary redis-server did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop the server and remove its directory; safe to call twice."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=30)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> TempRedis:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
