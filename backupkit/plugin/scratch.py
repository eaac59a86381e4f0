"""Scratch space for a restore drill: throwaway directories, servers and databases that
are removed when the drill ends — also when it fails, is interrupted, or is killed.

A source's :meth:`~backupkit.plugin.Source.drill_target` asks the :class:`Scratch` for a
directory, or makes a server or database of its own and registers how to remove it
(:meth:`Scratch.on_cleanup`). Cleanups run in reverse order when the drill ends. Each is
also described to a **guardian**, a small process of its own session started with the
scratch space: it waits on a pipe from the drill and, if the pipe closes before the drill
said it cleaned up (the drill process died, even by SIGKILL), does the same cleanups
itself from their descriptions (:data:`Step`): kill a process, run a command, drop a
database, remove a directory.

This file, run as a script, is the guardian; it reads JSON lines on stdin.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
#: One cleanup step a guardian can take: ``{"kill": pid}``, ``{"run": [argv...]}``,
#: ``{"sql": [postgres_url, statement]}`` (autocommit), ``{"rmtree": path}``.
Step = Mapping[str, Any]


class Scratch:
    """The scratch space of one drill: use it as a context manager."""

    def __init__(self, settings: Any = None, *, prefix: str = "backupkit-drill-", guardian: bool = True) -> None:
        #: The set's :class:`~backupkit.core.drill.DrillSettings` (a scratch server, checks).
        self.settings = settings
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._cleanups: list[tuple[int, Callable[[], None]]] = []
        self._shared: dict[str, Any] = {}
        self._closed = False
        self._guardian = _start_guardian() if guardian else None
        self._tell({"add": 0, "do": [{"rmtree": str(self.root)}]})

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def directory(self, name: str) -> Path:
        """A new empty directory for *name* (inside the scratch space: removed with it)."""
        with self._lock:
            path = Path(tempfile.mkdtemp(prefix=f"{_safe(name)}-", dir=self.root))
        return path

    def on_cleanup(self, cleanup: Callable[[], None], steps: Iterable[Step]) -> None:
        """Run *cleanup* when the drill ends; *steps* say how the guardian does the same
        if the drill process dies first."""
        with self._lock:
            if self._closed:
                cleanup()
                raise RuntimeError("the scratch space is closed")
            ident = next(self._ids)
            self._cleanups.append((ident, cleanup))
            self._tell({"add": ident, "do": list(steps)})

    def shared(self, key: str, make: Callable[[], T]) -> T:
        """One *make()* per drill for *key* (a temporary server several artifacts share),
        made at the first call; the artifacts of a drill are restored side by side."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = make()
            found: T = self._shared[key]
            return found

    def close(self) -> None:
        """Run every cleanup (the last registered first), then remove the directory."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            cleanups, self._cleanups = self._cleanups, []
        for ident, cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()
            self._tell({"done": ident})
        shutil.rmtree(self.root, ignore_errors=True)
        self._tell({"done": 0})
        self._end()

    def _tell(self, message: Mapping[str, Any]) -> None:
        if self._guardian is None or self._guardian.stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._guardian.stdin.write(json.dumps(message).encode() + b"\n")
            self._guardian.stdin.flush()

    def _end(self) -> None:
        guardian, self._guardian = self._guardian, None
        if guardian is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert guardian.stdin is not None
            guardian.stdin.write(b'{"end": true}\n')
            guardian.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            guardian.wait(timeout=30)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (for a temporary server)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:40] or "artifact"


def _start_guardian() -> subprocess.Popen[bytes]:
    # This file run as a script, isolated: it imports nothing of backupkit (a fast start).
    return subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            close_fds=True)


def take(step: Step) -> None:
    """Do one cleanup step (what the guardian does; errors are ignored, as the thing may
    be gone already)."""
    with contextlib.suppress(Exception):
        if "kill" in step:
            os.kill(int(step["kill"]), signal.SIGKILL)
        elif "run" in step:
            subprocess.run([str(a) for a in step["run"]], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120, check=False, cwd="/")
        elif "sql" in step:
            import psycopg

            url, statement = step["sql"]
            with psycopg.connect(url, autocommit=True, connect_timeout=30) as conn:
                conn.execute(statement)
        elif "rmtree" in step:
            shutil.rmtree(step["rmtree"], ignore_errors=True)


def guard(lines: Iterable[bytes]) -> None:
    """The guardian: note the cleanups announced on *lines* until ``end``; if the lines
    stop without it, take every cleanup still pending, the last announced first."""
    pending: dict[int, list[Step]] = {}
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("end"):
            return
        if "add" in message:
            pending[int(message["add"])] = list(message.get("do", []))
        elif "done" in message:
            pending.pop(int(message["done"]), None)
    for ident in sorted(pending, reverse=True):
        for step in pending[ident]:
            take(step)


if __name__ == "__main__":
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # it ends when the drill's pipe does
    guard(sys.stdin.buffer)
