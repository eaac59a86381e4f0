"""The ``sqlite`` source: a SQLite database file, copied consistently while in use.

Backup takes a snapshot with SQLite's online backup API into a temporary file and
streams it; the artifact's raw stream is a plain SQLite database file. Restore
writes ``<target>/<basename of path>`` atomically, after the whole stream has been
read (and so checked against the manifest's checksums) and the copy has passed
``PRAGMA quick_check``.

Registered through the ``backupkit`` entry-point group (see ``pyproject.toml``)::

    [[sets.app.sources]]
    type = "sqlite"
    path = "/srv/app/app.db"
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import attrs

import backupkit
from backupkit.errors import ConfigError, RestoreError, SourceError
from backupkit.plugin import Writer

__all__ = ["SqliteSource"]

CHUNK = 1 << 20
PAGES_PER_STEP = 1024  # rollback journal: copy in steps so writers get the lock between them
MAX_RESTARTS = 3  # then copy in one pass: every commit by a writer restarts a stepped copy
_HEADER = b"SQLite format 3\0"
_SIDECARS = ("-wal", "-shm", "-journal")


def _path(value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {value!r}")
    path = os.fspath(value)
    if not path:
        raise ValueError("path must name a SQLite database file")
    return path


def _read_only_uri(path: Path, *, immutable: bool = False) -> str:
    # immutable=1: no locks and no -wal/-shm files; only for files nobody else has open.
    return path.absolute().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")


class _Restarted(Exception):
    """A stepped copy started over too often; copy in one pass instead."""


def _copy(src: sqlite3.Connection, dst: sqlite3.Connection) -> None:
    """Copy *src* into *dst* with the online backup API, finishing under steady writes.

    Another connection's commit makes the next step of a stepped copy start over
    from page 0, so with a writer committing every few milliseconds it never ends.
    A WAL database is copied in one pass: one read transaction, which writers do not
    wait for. With a rollback journal a one-pass copy holds a shared lock that makes
    writers wait, so copy in steps and fall back to one pass after MAX_RESTARTS.
    """
    (mode,) = src.execute("PRAGMA journal_mode").fetchone()
    if str(mode).lower() == "wal":
        src.backup(dst, pages=-1)
        return
    previous, restarts = -1, 0  # pages left after the previous step

    def count_restarts(status: int, remaining: int, total: int) -> None:
        nonlocal previous, restarts
        if 0 <= previous <= remaining:  # a step copies pages unless it started over
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise _Restarted
        previous = remaining

    try:
        src.backup(dst, pages=PAGES_PER_STEP, progress=count_restarts)
    except _Restarted:
        src.backup(dst, pages=-1)


@attrs.frozen
class SqliteSource(backupkit.plugin.Source):
    """One SQLite database file, backed up with the online backup API."""

    id: ClassVar[str] = "sqlite"
    extension: ClassVar[str] = ".sqlite"

    path: str = attrs.field(converter=_path)

    @property
    def filename(self) -> str:
        return os.path.basename(os.path.normpath(self.path))

    # -- backup -------------------------------------------------------------------
    def backup(self, out: Writer, ctx: backupkit.plugin.BackupContext) -> Mapping[str, Any] | None:
        db = Path(self.path)
        if not db.is_file():
            raise SourceError(
                f"SQLite database {db} does not exist; fix 'path' or remove the source"
            )
        ctx.progress(self.filename)
        with tempfile.TemporaryDirectory(prefix="backupkit-sqlite-") as tmp:
            copy = Path(tmp) / self.filename
            pages = self._snapshot(db, copy)
            with open(copy, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    out.write(chunk)
        return {"database": self.filename, "pages": pages}

    @staticmethod
    def _snapshot(db: Path, copy: Path) -> int:
        """Copy *db* into *copy* consistently; return the page count."""
        try:
            src = sqlite3.connect(_read_only_uri(db), uri=True)
            try:
                with src:  # fails fast on a file that is not a database
                    src.execute("SELECT count(*) FROM sqlite_schema").fetchone()
                dst = sqlite3.connect(copy)
                try:
                    _copy(src, dst)
                    (pages,) = dst.execute("PRAGMA page_count").fetchone()
                finally:
                    dst.close()
            finally:
                src.close()
        except sqlite3.DatabaseError as exc:  # translate at the plugin boundary
            raise SourceError(
                f"cannot back up SQLite database {db}: {exc}; check that it is a "
                "SQLite database and readable"
            ) from None
        return int(pages)

    # -- restore ------------------------------------------------------------------
    def restore(self, stream: BinaryIO, ctx: backupkit.plugin.RestoreContext) -> None:
        if ctx.target is None:
            raise ConfigError("restoring a SQLite database needs a target directory; pass --to DIR")
        target = Path(ctx.target)
        dest = target / self.filename
        if target.exists() and not target.is_dir():
            raise RestoreError(f"restore target {target} is not a directory")
        if dest.exists() and not ctx.overwrite:
            raise RestoreError(
                f"{dest} already exists; choose another target or pass --overwrite to replace it"
            )
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / f".{self.filename}.backupkit-partial-{secrets.token_hex(4)}"
        try:
            with open(tmp, "xb") as fh:
                # Read to EOF before anything becomes visible: the engine compares the
                # checksums when the stream ends and raises IntegrityError there.
                while chunk := stream.read(CHUNK):
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            self._check_copy(tmp, ctx.artifact)
            for suffix in _SIDECARS:  # a stale WAL would be replayed into the new file
                Path(f"{dest}{suffix}").unlink(missing_ok=True)
            os.replace(tmp, dest)
        finally:
            for leftover in (tmp, *(Path(f"{tmp}{suffix}") for suffix in _SIDECARS)):
                leftover.unlink(missing_ok=True)

    @staticmethod
    def _check_copy(path: Path, artifact: str) -> None:
        with open(path, "rb") as fh:
            header = fh.read(len(_HEADER))
        if header != _HEADER:
            raise RestoreError(
                f"artifact {artifact} is not a SQLite database; nothing was restored"
            )
        try:
            conn = sqlite3.connect(_read_only_uri(path, immutable=True), uri=True)
            try:
                (result,) = conn.execute("PRAGMA quick_check").fetchone()
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            result = str(exc)
        if result != "ok":
            raise RestoreError(
                f"artifact {artifact} holds a damaged SQLite database ({result}); nothing was restored"
            )


@backupkit.hookimpl
def backupkit_register_sources(register: backupkit.plugin.Register) -> None:
    register.source(SqliteSource)
