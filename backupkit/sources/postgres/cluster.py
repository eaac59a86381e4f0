"""A throwaway PostgreSQL cluster on a free loopback port (tests, restore drills).

``initdb`` refuses to run as root, so as root the server programs run as the
``postgres`` user (``runuser``); the data directory is a fresh ``mkdir`` under the
system's temp dir that this user can enter. Authentication is ``trust`` on
127.0.0.1 only, durability is off (``fsync``): nothing here is meant to be kept.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import attrs

from backupkit.errors import SourceError
from backupkit.plugin.scratch import free_port
from backupkit.sources.postgres.tools import server_bin_dir


def _as_owner() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise SourceError(
            "a temporary PostgreSQL cluster cannot run as root and there is no 'postgres' "
            "user; create one or run as another user"
        ) from None
    return ["runuser", "-u", "postgres", "--"]


@attrs.define
class TempCluster:
    """A PostgreSQL server of its own: :meth:`start` it, :meth:`url` a database, :meth:`stop`."""

    bin_dir: Path = attrs.field(factory=server_bin_dir)
    port: int = attrs.field(factory=free_port)
    root: Path | None = None
    running: bool = False
    #: More server settings (``-c name=value``), e.g. for a restore drill's cluster.
    settings: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        assert self.root is not None, "the cluster is not started"
        return self.root / "data"

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """A libpq URL of database *dbname* on this cluster."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [*_as_owner(), *args], capture_output=True, text=True, timeout=timeout, check=False,
            cwd="/",
        )
        if result.returncode != 0:
            raise SourceError(
                f"{Path(args[0]).name} failed for the temporary cluster: "
                f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}"
            )

    def start(self) -> TempCluster:
        """Create and start the cluster (about a second); returns itself."""
        self.root = Path(tempfile.mkdtemp(prefix="backupkit-pg-"))
        os.chmod(self.root, 0o755)
        owner = _as_owner()
        if owner:
            os.chown(self.root, pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid)
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.data} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=40"
                   + "".join(f" -c {name}={value}" for name, value in self.settings.items()))
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.data / "server.log"), "-w", "-t", "60", "start")
        self.running = True
        self._wait()
        return self

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise SourceError(f"the temporary PostgreSQL cluster did not listen on port {self.port}")

    def stop(self) -> None:
        """Stop the server and remove its data directory; safe to call twice."""
        if self.running:
            self.running = False
            try:
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "-w", "stop")
            except (SourceError, subprocess.TimeoutExpired):
                pass
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> TempCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
