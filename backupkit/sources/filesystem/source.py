"""The ``filesystem`` source plugin: :class:`FilesystemSource` and its hook implementation.

A backup walks the configured paths into a pax tar stream and a file index (only what
changed, for an incremental backup); a restore extracts a chain of such streams into a
target directory. See :mod:`backupkit.sources.filesystem` for the format and the
safety of restores.
"""

from __future__ import annotations

import errno
import functools
import grp
import hashlib
import io
import logging
import os
import pwd
import stat
import tarfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from backupkit.errors import (
    ConfigError,
    SourceError,
)
from backupkit.plugin import (
    BackupContext,
    Reader,
    RestoreContext,
    Source,
    Writer,
)
from backupkit.sources.filesystem.drill import check_tree
from backupkit.sources.filesystem.index import (
    INDEX_SIDECAR,
    IndexEntry,
    ParentIndex,
    file_line,
    json_bytes,
    unchanged,
)

if TYPE_CHECKING:
    from backupkit.plugin.scratch import Scratch
from backupkit.sources.filesystem.restore import (
    COPY_BUFSIZE,
    DELETED_MEMBER,
    lexical_problem,
    restore_tree,
)
from backupkit.sources.filesystem.tarwrite import TarWriter, file_header, header
from backupkit.sources.filesystem.walk import arcname_of, entries

log = logging.getLogger("backupkit.sources.filesystem")

# A regular file is opened as it is now: never through a symlink, never waiting on a FIFO.
_OPEN_FILE = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


def _str_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, os.PathLike)):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, (str, os.PathLike)) for v in value
    ):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(os.fspath(v) for v in value)


def _validate_paths(inst: Any, attribute: Any, value: tuple[str, ...]) -> None:
    if not value:
        raise ValueError("paths must name at least one file or directory")
    seen: dict[str, str] = {}
    for path in value:
        name = arcname_of(path)
        if name in seen:
            raise ValueError(
                f"paths {seen[name]!r} and {path!r} have the same base name {name!r}; "
                "put them in separate sources"
            )
        seen[name] = path


class _Batched:
    """Lines gathered and written to *out* a few thousand at a time (one write call per
    path was a tenth of an incremental backup that finds most files unchanged)."""

    def __init__(self, out: Writer, lines: int = 4096) -> None:
        self.out, self.lines, self.pending = out, lines, list[bytes]()

    def write(self, line: bytes) -> None:
        self.pending.append(line)
        if len(self.pending) >= self.lines:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.out.write(b"".join(self.pending))
            self.pending.clear()


class _Exactly:
    """Reads exactly *size* bytes of a file, zero-padding one that shrank meanwhile."""

    def __init__(self, read: Callable[[int], bytes], size: int, name: str) -> None:
        self._read, self.left, self.name, self.warned = read, size, name, False
        self._hash = hashlib.sha256()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            n = self.left
        try:
            data = self._read(n)
            if len(data) < n:  # reads are unbuffered: a short one need not be the end
                pieces = [data]
                got = len(data)
                while got < n and (piece := self._read(n - got)):
                    pieces.append(piece)
                    got += len(piece)
                data = b"".join(pieces)
        except OSError as exc:  # e.g. replaced by a directory after the walk saw a file
            raise SourceError(
                f"cannot read {self.name}: {exc.strerror}; check the file or exclude it"
            ) from None
        if len(data) < n:
            if not self.warned:
                log.warning("%s shrank while being read; the rest is stored as zeros", self.name)
                self.warned = True
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        self._hash.update(data)
        return data


@attrs.frozen
class FilesystemSource(Source):
    """Files and directories, stored as a pax tar stream."""

    id: ClassVar[str] = "filesystem"
    extension: ClassVar[str] = ".tar"
    supports_incremental: ClassVar[bool] = True

    paths: tuple[str, ...] = attrs.field(converter=_str_tuple, validator=_validate_paths)
    include: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    exclude: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)

    # -- backup -------------------------------------------------------------------
    def backup(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any] | None:
        """Write the tree to *out* as a tar stream, and its file index as a sidecar."""
        for path in self.paths:
            if not os.path.exists(path):
                if os.path.islink(path):
                    raise SourceError(
                        f"source path {path} is a symlink to {os.readlink(path)}, which does not "
                        "exist; fix the link or the path"
                    )
                raise SourceError(f"source path {path} does not exist; fix the path or remove it")
        parent: ParentIndex | None = None
        if ctx.kind == "incremental":
            parent_stream = ctx.parent_sidecar(INDEX_SIDECAR)
            if parent_stream is None:
                raise SourceError(f"the parent backup of {ctx.artifact} has no file index")
            with parent_stream:
                label = f"the file index of {ctx.artifact}'s parent"
                parent = ParentIndex.read(parent_stream, label=label)
        index_out = _Batched(ctx.open_sidecar(INDEX_SIDECAR))
        _owner_names.cache_clear()  # user and group names are read afresh by every backup
        counts = {"files": 0, "directories": 0, "stored_files": 0, "unchanged_files": 0, "deleted": 0}
        tar = TarWriter(out, COPY_BUFSIZE)
        inodes: dict[tuple[int, int], str] = {}  # files with several links: the first name
        external: list[str] = []  # symlinks leading out of the tree: restore refuses them
        # The parent's paths not seen yet; what is left at the end was deleted. An entry
        # that vanishes before it is stored stays here, so it is listed as deleted.
        gone = parent.keys() if parent is not None else set()
        key = b""
        walked = entries(self.paths, include=self.include, exclude=self.exclude)
        for path, arcname, st in walked:
            ctx.progress(arcname)
            # Hard-linked files are always stored, so the links can be rebuilt.
            if parent is not None:
                key = json_bytes(arcname)
                if st.st_nlink == 1 and (line := parent.same_line(key, st)) is not None:
                    gone.discard(key)
                    index_out.write(line)  # the same file: the same line
                    counts["files"] += 1
                    counts["unchanged_files"] += 1
                    continue
                if st.st_nlink == 1 and stat.S_ISREG(st.st_mode):
                    same = unchanged(IndexEntry.from_stat(arcname, st), parent.entry(key), path)
                    if same is not None:
                        gone.discard(key)
                        index_out.write(same.to_line())
                        counts["files"] += 1
                        counts["unchanged_files"] += 1
                        continue
            added = self._add(tar, inodes, path, arcname, st, external)
            if added is None:
                continue
            digest, st = added  # the entry as stored: it may have changed since the walk
            gone.discard(key)
            if stat.S_ISREG(st.st_mode):
                counts["files"] += 1
                counts["stored_files"] += 1
                index_out.write(file_line(key if parent is not None else json_bytes(arcname), st, digest))
            else:
                counts["directories"] += stat.S_ISDIR(st.st_mode)
                index_out.write(IndexEntry.from_stat(arcname, st).to_line())
        index_out.flush()
        if parent is not None:  # last, so the walk need not be kept in memory
            deleted = parent.paths(gone)
            data = json_bytes(deleted)
            info = tarfile.TarInfo(DELETED_MEMBER)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.add(info, io.BytesIO(data))
            counts["deleted"] = len(deleted)
        tar.close()
        if external:
            log.warning(
                "%d symlink(s) lead out of the backed-up tree (first: %s); restoring them needs "
                "--allow-external-symlinks", len(external), external[0],
            )
        return {**counts, "paths": [arcname_of(p) for p in self.paths]}

    def _add(
        self,
        tar: TarWriter,
        inodes: dict[tuple[int, int], str],
        path: str,
        arcname: str,
        st: os.stat_result,
        external: list[str],
    ) -> tuple[str, os.stat_result] | None:
        """Add one entry as it is now; return the sha256 of a regular file's content ("" for
        other kinds) and the stat it was stored with, or None if it vanished.

        The walk's ``lstat`` may be out of date by now: a regular file is opened without
        following a symlink and without blocking on a FIFO, and stored as ``fstat`` of
        the open file says (a file replaced by an atomic rename is stored whole, as the
        new file); if it is something else by now, it is stored as that.
        """
        if stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1 and (st.st_ino, st.st_dev) in inodes:  # a further name: a link
                return self._add_other(tar, inodes, path, arcname, st, external)
            try:
                fd = os.open(path, _OPEN_FILE)
            except FileNotFoundError:
                log.warning("%s vanished before it could be read; skipped", path)
                return None
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise SourceError(
                        f"cannot read {path}: {exc.strerror}; check permissions or exclude it"
                    ) from None
            else:
                try:
                    now = os.fstat(fd)
                    if stat.S_ISREG(now.st_mode):
                        return self._add_file(tar, inodes, fd, path, arcname, now), now
                finally:
                    os.close(fd)
            try:  # a symlink, a FIFO... by now
                st = os.lstat(path)
            except FileNotFoundError:
                log.warning("%s vanished before it could be read; skipped", path)
                return None
            if stat.S_ISREG(st.st_mode):
                log.warning("%s kept being replaced while it was read; skipped", path)
                return None
        return self._add_other(tar, inodes, path, arcname, st, external)

    def _add_file(
        self,
        tar: TarWriter,
        inodes: dict[tuple[int, int], str],
        fd: int,
        path: str,
        arcname: str,
        st: os.stat_result,
    ) -> str:
        """Store the open regular file *fd* whose ``fstat`` is *st*; return its sha256."""
        head = None
        if st.st_nlink == 1:  # the common case, without tarfile
            head = file_header(arcname, st, *_owner_names(st.st_uid, st.st_gid))
        if head is None:
            info = _tarinfo(inodes, path, arcname, st)
            assert info is not None and info.isreg()  # a first name: its inode was not seen
            _exact_mtime(info, st)
            head = header(info)
        reader = _Exactly(functools.partial(os.read, fd), st.st_size, path)
        tar.add_encoded(head, st.st_size, reader)
        if st.st_size > COPY_BUFSIZE:  # read in several calls: was it written to meanwhile?
            after = os.fstat(fd)
            if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns) and not reader.warned:
                log.warning("%s changed while it was read; the stored copy may mix old and new", path)
        return reader.hexdigest()

    def _add_other(
        self,
        tar: TarWriter,
        inodes: dict[tuple[int, int], str],
        path: str,
        arcname: str,
        st: os.stat_result,
        external: list[str],
    ) -> tuple[str, os.stat_result] | None:
        """Store an entry that is not a regular file's content: a directory, symlink,
        FIFO, device node, or a further name of a hard-linked file. A symlink leading
        out of the tree is noted in *external*."""
        try:
            info = _tarinfo(inodes, path, arcname, st)
        except FileNotFoundError:
            log.warning("%s vanished before it could be read; skipped", path)
            return None
        if info is None:
            log.warning("%s is a socket or similar; skipped", path)
            return None
        _exact_mtime(info, st)
        if info.issym() and lexical_problem(info) is not None:
            external.append(f"{arcname} -> {info.linkname}")
        tar.add(info)
        return "", st

    # -- restore ------------------------------------------------------------------
    def drill_check(self, target: Path | str, scratch: Scratch, ctx: RestoreContext) -> dict[str, Any]:
        """Every path of the backup's file index restored, every file's sha256 as recorded
        (hashed as the restore wrote it: the ``file_sha256`` option)."""
        with ctx.open_sidecar(INDEX_SIDECAR) as index:
            return check_tree(Path(target), index, ctx.artifact, ctx.options.get(HASHES))

    def restore(self, stream: Reader, ctx: RestoreContext) -> Mapping[str, Any] | None:
        """Extract the full backup *stream* into the target directory."""
        return self.restore_chain(iter([stream]), ctx)

    def restore_chain(self, streams: Iterator[Reader], ctx: RestoreContext) -> Mapping[str, Any] | None:
        """Extract the full stream, then apply each incremental in order, then publish.
        With the option ``file_sha256`` (a drill's), return the sha256 of every file
        written, by path (under ``_file_sha256``: for the drill check, not for showing)."""
        if ctx.target is None:
            raise ConfigError("restoring files needs a target directory; pass --to DIR")
        hashes: dict[str, bytes] | None = {} if ctx.options.get("file_sha256") else None
        restore_tree(
            streams, Path(ctx.target), artifact=ctx.artifact, overwrite=ctx.overwrite,
            external_symlinks=ctx.allow_external_symlinks, hashes=hashes,
        )
        return None if hashes is None else {HASHES: hashes}


#: Where :meth:`FilesystemSource.restore_chain` returns the files' sha256 (``file_sha256``).
HASHES = "_file_sha256"

_TAR_TYPES = (
    (stat.S_ISDIR, tarfile.DIRTYPE),
    (stat.S_ISFIFO, tarfile.FIFOTYPE),
    (stat.S_ISLNK, tarfile.SYMTYPE),
    (stat.S_ISCHR, tarfile.CHRTYPE),
    (stat.S_ISBLK, tarfile.BLKTYPE),
)


def _tarinfo(
    inodes: dict[tuple[int, int], str], path: str, arcname: str, st: os.stat_result
) -> tarfile.TarInfo | None:
    """What ``tar.gettarinfo(path, arcname)`` returns, built from the walk's ``lstat``.

    gettarinfo calls ``lstat`` again and reads the passwd and group databases for
    every file (about a tenth of the source thread's CPU on a tree of small files);
    here the names are looked up once per id. Only files with several links are remembered
    in *inodes* (gettarinfo remembers every file, so memory grew with the
    file count); a file with one link is never looked up there.
    """
    arcname = arcname.replace(os.sep, "/").lstrip("/")
    mode, linkname = st.st_mode, ""
    if stat.S_ISREG(mode):
        inode = (st.st_ino, st.st_dev)
        if st.st_nlink > 1 and inode in inodes and arcname != inodes[inode]:
            kind, linkname = tarfile.LNKTYPE, inodes[inode]
        else:
            kind = tarfile.REGTYPE
            if inode[0] and st.st_nlink > 1:
                inodes[inode] = arcname
    else:
        kind = next((k for test, k in _TAR_TYPES if test(mode)), b"")
        if not kind:
            return None  # a socket or similar
        if kind == tarfile.SYMTYPE:
            linkname = os.readlink(path)
    info = tarfile.TarInfo(arcname)
    info.mode, info.uid, info.gid = mode, st.st_uid, st.st_gid
    info.size = st.st_size if kind == tarfile.REGTYPE else 0
    info.mtime, info.type, info.linkname = st.st_mtime, kind, linkname
    info.uname, info.gname = _owner_names(st.st_uid, st.st_gid)
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info


@functools.lru_cache(maxsize=256)
def _owner_names(uid: int, gid: int) -> tuple[str, str]:
    """User and group names as gettarinfo records them ("" when unknown)."""
    try:
        uname = pwd.getpwuid(uid).pw_name
    except KeyError:
        uname = ""
    try:
        gname = grp.getgrgid(gid).gr_name
    except KeyError:
        gname = ""
    return uname, gname


def _exact_mtime(info: tarfile.TarInfo, st: os.stat_result) -> None:
    """Record the mtime to the nanosecond (a pax ``mtime`` record, as GNU tar reads it:
    a decimal number, so ``-1.25`` is a quarter second before -1, not after -2)."""
    info.mtime = st.st_mtime_ns // 1_000_000_000
    whole, ns = divmod(abs(st.st_mtime_ns), 1_000_000_000)
    if ns:
        sign = "-" if st.st_mtime_ns < 0 else ""
        info.pax_headers = {**info.pax_headers, "mtime": f"{sign}{whole}.{ns:09d}"}


# The class is known by the plugin module that registers it: a registry names a clashing
# class's module as the plugin to block, and a built-in registers only its own classes.
FilesystemSource.__module__ = "backupkit.sources.filesystem"
