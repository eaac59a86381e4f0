"""Finding PostgreSQL's client programs (``pg_dump``, ``pg_restore``, ``pg_dumpall``,
``psql``) and their versions, and checking them against a server's."""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

from backupkit.errors import ConfigError, SourceError

_VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")
#: Where distributions install the programs of each major version side by side.
VERSIONED_DIRS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/opt/homebrew/opt/postgresql@*/bin")


@functools.cache
def program_version(path: str) -> tuple[int, int]:
    """``(major, minor)`` of the PostgreSQL program at *path* (``--version``)."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except OSError as exc:
        raise SourceError(f"cannot run {path}: {exc.strerror}") from None
    match = _VERSION.search(out)
    if not match:
        raise SourceError(f"{path} --version printed no PostgreSQL version ({out.strip()!r})")
    return int(match.group(1)), int(match.group(2) or 0)


def candidates(program: str, bin_dir: str | None = None) -> list[str]:
    """Every *program* this machine has: in *bin_dir* only, when given; else on PATH and
    in the versioned directories."""
    if bin_dir:
        given = Path(bin_dir) / program
        if not os.access(given, os.X_OK):
            raise ConfigError(f"postgres source: {program} is not in bin_dir {bin_dir}; fix 'bin_dir'")
        return [str(given)]
    found: dict[str, str] = {}  # real path -> path (Debian's /usr/bin ones are one wrapper)
    paths = [shutil.which(program)] + [
        os.path.join(d, program) for pattern in VERSIONED_DIRS for d in sorted(glob.glob(pattern))
    ]
    for path in paths:
        if path and os.access(path, os.X_OK):
            found.setdefault(os.path.realpath(path), path)
    return list(found.values())


def _versions(paths: list[str]) -> list[tuple[tuple[int, int], str]]:
    out = []
    for path in paths:
        try:
            out.append((program_version(path), path))
        except SourceError:  # not a PostgreSQL program after all (a wrapper without clusters)
            continue
    return sorted(out, reverse=True)


def find_program(program: str, server: tuple[int, int] | None, bin_dir: str | None = None) -> str:
    """The newest *program* able to work with a server of version *server* (its major
    version or later); a one-line error naming both versions when there is none."""
    found = candidates(program, bin_dir)
    if not found:
        raise SourceError(
            f"{program} is not installed; install PostgreSQL's client programs "
            "(e.g. apt-get install postgresql-client) or set 'bin_dir'"
        )
    versions = _versions(found)
    if not versions:
        raise SourceError(f"no {program} found here reports its version ({', '.join(found)})")
    (newest, path) = versions[0]
    if server is not None and newest[0] < server[0]:
        raise SourceError(
            f"{program} {newest[0]}.{newest[1]} ({path}) is older than the server "
            f"(PostgreSQL {server[0]}.{server[1]}) and cannot dump it; install "
            f"postgresql-client-{server[0]} or newer, or point 'bin_dir' at it"
        )
    return path


def server_bin_dir() -> Path:
    """The directory of the newest ``initdb``/``pg_ctl`` (server programs, for a temporary
    cluster)."""
    found = candidates("pg_ctl")
    if not found:
        raise SourceError("PostgreSQL's server programs (pg_ctl, initdb) are not installed")
    versions = _versions(found)
    if not versions:
        raise SourceError("PostgreSQL's server programs (pg_ctl, initdb) are not installed")
    return Path(versions[0][1]).parent
