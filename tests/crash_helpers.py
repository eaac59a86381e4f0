"""Third-party-style plugins and probes for tests/engine/test_crash_safety.py.

Each plugin is written the way an outside package would write it: an attrs class
registered through the ``backupkit_register_*`` hooks of this module, which the
tests hand to ``Engine.from_config(..., plugins=[crash_helpers])``.

- ``quota`` sink: the local layout, but its writer raises ``OSError(ENOSPC)`` after
  ``enospc_after`` bytes of an artifact (of those whose key contains ``enospc_keys``, if
  given), optionally while writing a manifest, and optionally at the commit of an artifact
  (``fail_commit_of``) once a sidecar has been published; ``manifest_fails_after_publish``
  stores the manifest, then raises ``OSError(EIO)`` (a directory fsync failing after the
  rename, a reply lost after the object landed); ``manifest_key`` stores every manifest
  under that one key (a layout whose keys carry no run id).
- ``halfway`` source: writes ``size`` bytes, then raises.
- ``blocks`` source: writes ``total`` bytes in ``block``-sized ``write`` calls.
- ``diskfill`` source: fills the file system holding ``path`` up to ``leave`` bytes.
- ``sidecar`` source: writes ``main`` bytes and, interleaved, ``side`` bytes to its sidecar
  ``index``; optionally fails after ``fail_after_side`` sidecar bytes, or opens it twice.
"""

from __future__ import annotations

import errno
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import attrs

import backupkit
from backupkit.core.manifest import MANIFEST_SUFFIX
from backupkit.plugin import (
    ArtifactWriter,
    BackupContext,
    Register,
    RestoreContext,
    RunInfo,
    Sink,
    Source,
    Writer,
)
from backupkit.sinks.local import LocalSink


def enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def incompressible(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# -- a sink whose disk fills up ------------------------------------------------------
class _QuotaWriter(ArtifactWriter):
    def __init__(self, inner: ArtifactWriter, limit: int | None,
                 fail_commit_once: Callable[[], bool] | None = None) -> None:
        self.inner, self.limit, self.written = inner, limit, 0
        self.fail_commit_once = fail_commit_once  # waits for it, then the commit fails

    def write(self, data: bytes, /) -> int:
        if self.limit is not None and self.written + len(data) > self.limit:
            fits = self.limit - self.written  # like a real disk: what fits, then ENOSPC
            self.inner.write(bytes(data[:fits]))
            self.written += fits
            raise enospc()
        self.written += len(data)
        return self.inner.write(data)

    def commit(self) -> None:
        if self.fail_commit_once is not None:
            self.fail_commit_once()
            raise enospc()
        self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()


@attrs.frozen
class QuotaSink(Sink):
    """The local layout under *root*; runs out of space as its parameters say."""

    id: ClassVar[str] = "quota"

    root: str
    enospc_after: int | None = None
    enospc_keys: str = ""
    manifest_enospc: bool = False
    # the commit of an artifact whose key contains this waits until a sidecar is
    # published, then fails with ENOSPC
    fail_commit_of: str = ""
    manifest_fails_after_publish: bool = False
    manifest_key: str = ""
    _local: LocalSink = attrs.field(init=False, repr=False, eq=False)

    @_local.default
    def _make_local(self) -> LocalSink:
        return LocalSink(self.root)

    @property
    def location(self) -> str:
        return self.root

    def describe(self) -> dict[str, Any]:
        return {"root": self.root}

    def key_for(self, tier: str, filename: str, *, run: RunInfo | None = None) -> str:
        if self.manifest_key and filename.endswith(MANIFEST_SUFFIX):
            return self.manifest_key
        return super().key_for(tier, filename, run=run)

    def begin_run(self, run_id: str) -> None:
        self._local.begin_run(run_id)

    def end_run(self, run_id: str) -> None:
        self._local.end_run(run_id)

    def open_artifact(self, key: str, *, run_id: str) -> ArtifactWriter:
        limit = self.enospc_after if self.enospc_keys in key else None
        wait = None
        if self.fail_commit_of and self.fail_commit_of in key:
            def wait() -> bool:
                return _appears(Path(self.root), "*.index*", timeout=30, skip="temp")
        return _QuotaWriter(self._local.open_artifact(key, run_id=run_id), limit, wait)

    def put_bytes(self, key: str, data: bytes, *, run_id: str) -> None:
        if self.manifest_fails_after_publish and key.endswith(MANIFEST_SUFFIX):
            self._local.put_bytes(key, data, run_id=run_id)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        if not (self.manifest_enospc and key.endswith(MANIFEST_SUFFIX)):
            self._local.put_bytes(key, data, run_id=run_id)
            return
        writer = _QuotaWriter(self._local.open_artifact(key, run_id=run_id), len(data) // 2)
        try:
            writer.write(data)
        finally:
            writer.abort()

    def get_bytes(self, key: str) -> bytes:
        return self._local.get_bytes(key)

    def open_read(self, key: str) -> BinaryIO:
        return self._local.open_read(key)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        return self._local.list_keys(prefix)

    def delete(self, keys: Iterable[str]) -> None:
        self._local.delete(keys)


# -- sources ------------------------------------------------------------------------
class _NoRestore(Source):
    def restore(self, stream: BinaryIO, ctx: RestoreContext) -> None:
        raise NotImplementedError(f"the {self.id} test source cannot restore")


@attrs.frozen
class HalfwaySource(_NoRestore):
    """Writes *size* bytes, then fails: ``eio`` (an OSError) or ``crash`` (RuntimeError)."""

    id: ClassVar[str] = "halfway"

    size: int
    fail_with: str = "eio"

    def backup(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any] | None:
        block = incompressible(1 << 16)
        for _ in range(self.size // len(block)):
            out.write(block)
        if self.fail_with == "eio":
            raise OSError(errno.EIO, "the dump process went away")
        raise RuntimeError("the halfway source crashed")


@attrs.frozen
class BlocksSource(_NoRestore):
    """Writes *total* bytes in writes of *block* bytes each, a fresh buffer every time
    (as a source reading a file or a dump in big reads does)."""

    id: ClassVar[str] = "blocks"

    total: int
    block: int

    def backup(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any] | None:
        for _ in range(self.total // self.block):
            out.write(os.urandom(self.block))
        return None


@attrs.frozen
class SidecarSource(_NoRestore):
    """*main* bytes to the stream and *side* bytes to the sidecar ``index``, interleaved in
    64 KiB writes; fails after *fail_after_side* sidecar bytes, if given."""

    id: ClassVar[str] = "sidecar"

    main: int
    side: int
    fail_after_side: int | None = None
    open_twice: bool = False
    stored_under: str = ""  # before returning, wait until part of the sidecar is stored there

    def backup(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any] | None:
        with ctx.open_sidecar("index") as index:  # as a plugin may: a file it closes
            if self.open_twice:
                ctx.open_sidecar("index")
            block = incompressible(1 << 16)
            written_main = written_side = 0
            while written_main < self.main or written_side < self.side:
                if written_main < self.main:
                    out.write(block[: self.main - written_main])
                    written_main += min(len(block), self.main - written_main)
                if written_side < self.side:
                    if self.fail_after_side is not None and written_side >= self.fail_after_side:
                        raise RuntimeError("the sidecar source crashed")
                    index.write(block[: self.side - written_side])
                    written_side += min(len(block), self.side - written_side)
            index.flush()
        if self.stored_under and not _appears(Path(self.stored_under), "*.index*", timeout=30):
            raise RuntimeError(f"no part of the sidecar was stored under {self.stored_under}")
        return None


def _appears(root: Path, pattern: str, timeout: float, skip: str = "") -> bool:
    """Whether a non-empty file matching *pattern* shows up under *root* (not under its
    directory *skip*) in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in root.rglob(pattern):
            if skip and path.relative_to(root).parts[0] == skip:
                continue
            if path.is_file() and path.stat().st_size > 0:
                return True
        time.sleep(0.01)
    return False


@attrs.frozen
class DiskFillSource(_NoRestore):
    """Writes nothing, but fills the file system of *path* until *leave* bytes are free."""

    id: ClassVar[str] = "diskfill"

    path: str
    leave: int

    def backup(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any] | None:
        st = os.statvfs(os.path.dirname(self.path))
        with open(self.path, "wb") as fh:
            fh.write(b"\0" * (st.f_bavail * st.f_frsize - self.leave))
        return None


@backupkit.hookimpl
def backupkit_register_sinks(register: Register) -> None:
    register.sink(QuotaSink)


@backupkit.hookimpl
def backupkit_register_sources(register: Register) -> None:
    register.source(HalfwaySource)
    register.source(BlocksSource)
    register.source(DiskFillSource)
    register.source(SidecarSource)


# -- looking at a sink ----------------------------------------------------------------
def files_under(root: Path, *, temp: bool = False) -> dict[str, int]:
    """Relative path -> size of every file in a sink, in ``temp/`` or outside it."""
    out = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel.startswith("temp/") == temp:
            out[rel] = path.stat().st_size
    return out
