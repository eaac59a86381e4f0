"""The ``filesystem`` source: files and directories as a POSIX (pax) tar stream.

Each configured path is stored under its base name (``/srv/app/media`` becomes
``media/...`` in the archive), so ``tar -x`` of a decompressed artifact recreates
the same tree. Modes, mtimes, symlinks and hard links are kept; ownership is not
restored (restores run as whoever runs them).

The stream is written by :mod:`backupkit.sources.tarwrite` and read back by
:mod:`backupkit.sources.tarread`, both faster than ``tarfile`` for many small files;
the bytes are those of ``tarfile``'s pax format, so GNU tar and ``tarfile`` read them.

Restore is safe against hostile archives: absolute names, ``..`` components,
links pointing outside the target and paths through a symlink the archive made
are refused (what tarfile's ``data`` filter refuses, checked without touching the
disk); set-id bits are dropped, device nodes skipped, FIFOs kept. Files are
extracted into a fresh staging directory next to the target and moved into place
only after the whole stream has been read and its checksums matched, so a corrupt
backup writes nothing.
"""

from __future__ import annotations

import decimal
import errno
import fnmatch
import functools
import grp
import hashlib
import io
import json
import logging
import os
import posixpath
import pwd
import secrets
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, BinaryIO, ClassVar, NoReturn, TypeVar, cast

import attrs

from backupkit.errors import (
    ConfigError,
    IntegrityError,
    RestoreError,
    SourceError,
    UnsafeArchiveError,
)
from backupkit.plugins import Register, hookimpl
from backupkit.sources.base import BackupContext, RestoreContext, Source, Writable
from backupkit.sources.fsindex import (
    INDEX_SIDECAR,
    IndexEntry,
    ParentIndex,
    file_line,
    json_bytes,
    unchanged,
)
from backupkit.sources.tarread import TarReader
from backupkit.sources.tarwrite import TarWriter, file_header, header
from backupkit.streaming import ReadAhead

log = logging.getLogger("backupkit.sources.filesystem")

_T = TypeVar("_T")

COPY_BUFSIZE = 1 << 20
STAGING_PREFIX = ".backupkit-partial-"
#: Last member of an incremental stream: the paths deleted since the parent. Restore
#: applies it wherever it stands (early backups have it first).
DELETED_MEMBER = ".backupkit-deleted.json"


def _str_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, os.PathLike)):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, (str, os.PathLike)) for v in value
    ):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(os.fspath(v) for v in value)


def _arcname_of(path: str) -> str:
    name = os.path.basename(os.path.normpath(os.path.abspath(path)))
    return name or "root"


def _validate_paths(inst: Any, attribute: Any, value: tuple[str, ...]) -> None:
    if not value:
        raise ValueError("paths must name at least one file or directory")
    seen: dict[str, str] = {}
    for path in value:
        name = _arcname_of(path)
        if name in seen:
            raise ValueError(
                f"paths {seen[name]!r} and {path!r} have the same base name {name!r}; "
                "put them in separate sources"
            )
        seen[name] = path


class _Batched:
    """Lines gathered and written to *out* a few thousand at a time (one write call per
    path was a tenth of an incremental backup that finds most files unchanged)."""

    def __init__(self, out: Writable, lines: int = 4096) -> None:
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
    def _matches(self, patterns: tuple[str, ...], arcname: str) -> bool:
        base = arcname.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(arcname, p) or fnmatch.fnmatchcase(base, p) for p in patterns)

    def _walk(self, root: str, arcroot: str) -> Iterator[tuple[str, str, os.stat_result]]:
        """(path, arcname, lstat) in a stable order, excludes pruned."""
        stack = [(root, arcroot)]
        while stack:
            path, arcname = stack.pop()
            if self.exclude and arcname != arcroot and self._matches(self.exclude, arcname):
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                log.warning("%s vanished before it could be read; skipped", path)
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if not is_dir and self.include and not self._matches(self.include, arcname):
                continue
            yield path, arcname, st
            if is_dir:
                try:
                    names = sorted(os.listdir(path), reverse=True)
                except OSError as exc:
                    raise SourceError(f"cannot list {path}: {exc.strerror}; check permissions") from None
                prefix, arcprefix = os.path.join(path, ""), arcname + "/"
                stack.extend([(prefix + n, arcprefix + n) for n in names])

    def _entries(self) -> Iterator[tuple[str, str, os.stat_result]]:
        for root in self.paths:
            yield from self._walk(root, _arcname_of(root))

    def backup(self, out: Writable, ctx: BackupContext) -> Mapping[str, Any] | None:
        for path in self.paths:
            if not os.path.lexists(path):
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
        gone = parent.keys() if parent is not None else set()  # parent's paths not walked yet
        key = b""
        for path, arcname, st in self._entries():
            ctx.progress(arcname)
            # Hard-linked files are always stored, so the links can be rebuilt.
            if parent is not None:
                key = json_bytes(arcname)
                gone.discard(key)
                if st.st_nlink == 1 and (line := parent.same_line(key, st)) is not None:
                    index_out.write(line)  # the same file: the same line
                    counts["files"] += 1
                    counts["unchanged_files"] += 1
                    continue
            is_file = stat.S_ISREG(st.st_mode)
            counts["files"] += is_file
            counts["directories"] += stat.S_ISDIR(st.st_mode)
            if parent is not None and st.st_nlink == 1 and is_file:
                same = unchanged(IndexEntry.from_stat(arcname, st), parent.entry(key), path)
                if same is not None:
                    index_out.write(same.to_line())
                    counts["unchanged_files"] += 1
                    continue
            stored = self._add(tar, inodes, path, arcname, st)
            if stored is None:
                continue
            if is_file:
                counts["stored_files"] += 1
                index_out.write(file_line(key if parent is not None else json_bytes(arcname), st, stored))
            else:
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
        return {**counts, "paths": [_arcname_of(p) for p in self.paths]}

    def _add(
        self,
        tar: TarWriter,
        inodes: dict[tuple[int, int], str],
        path: str,
        arcname: str,
        st: os.stat_result,
    ) -> str | None:
        """Add one entry; return the sha256 of a regular file's content ("" otherwise), or None if skipped."""
        head = None
        if st.st_nlink == 1 and stat.S_ISREG(st.st_mode):  # the common case, without tarfile
            head = file_header(arcname, st, *_owner_names(st.st_uid, st.st_gid))
        if head is None:
            try:
                info = _tarinfo(inodes, path, arcname, st)
            except FileNotFoundError:
                log.warning("%s vanished before it could be read; skipped", path)
                return None
            if info is None:
                log.warning("%s is a socket or similar; skipped", path)
                return None
            _exact_mtime(info, st)
            if not info.isreg():
                tar.add(info)
                return ""
            head = header(info)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            log.warning("%s vanished before it could be read; skipped", path)
            return None
        except OSError as exc:
            raise SourceError(
                f"cannot read {path}: {exc.strerror}; check permissions or exclude it"
            ) from None
        try:
            reader = _Exactly(functools.partial(os.read, fd), st.st_size, path)
            tar.add_encoded(head, st.st_size, cast(IO[bytes], reader))
        finally:
            os.close(fd)
        return reader.hexdigest()

    # -- restore ------------------------------------------------------------------
    def restore(self, stream: BinaryIO, ctx: RestoreContext) -> None:
        self.restore_chain(iter([stream]), ctx)

    def restore_chain(self, streams: Iterator[BinaryIO], ctx: RestoreContext) -> None:
        """Extract the full stream, then apply each incremental in order, then publish."""
        if ctx.target is None:
            raise ConfigError("restoring files needs a target directory; pass --to DIR")
        target = Path(ctx.target).absolute()
        if target.exists() and not target.is_dir():
            raise RestoreError(f"restore target {target} is not a directory")
        if target.is_dir() and any(target.iterdir()) and not ctx.overwrite:
            raise RestoreError(
                f"restore target {target} is not empty; choose an empty directory or "
                "pass --overwrite to replace what the backup contains"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f"{STAGING_PREFIX}{target.name}-{secrets.token_hex(4)}"
        staging.mkdir()
        try:
            directories: list[tarfile.TarInfo] = []
            symlinks: set[str] = set()  # symlinks this restore made: never write through them
            for position, stream in enumerate(streams):
                directories = self._extract(
                    stream, staging, ctx.artifact, replace=position > 0, symlinks=symlinks
                )
                while stream.read(COPY_BUFSIZE):  # to EOF: the engine checks checksums there
                    pass
            _set_directory_attrs(directories, staging)
            _publish(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _extract(
        self, stream: BinaryIO, dest: Path, artifact: str, *, replace: bool, symlinks: set[str]
    ) -> list[tarfile.TarInfo]:
        """Extract one stream into *dest*; return its directories (attrs set later)."""
        dest_str = str(dest)
        directories: list[tarfile.TarInfo] = []

        def refuse(member: tarfile.TarInfo, problem: str) -> NoReturn:
            raise UnsafeArchiveError(
                f"artifact {artifact} holds an unsafe member {member.name!r} ({problem}); "
                "nothing was restored"
            )

        def check(member: tarfile.TarInfo) -> None:
            problem = _lexical_problem(member)
            if problem:
                refuse(member, problem)
            for path in (member.name, member.linkname if member.islnk() else ""):
                via = _through_symlink(path, symlinks) if path else None
                if via is not None:
                    refuse(member, f"a path through the symlink {via!r}")

        def safe(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
            """The member as it is extracted (None: a device node, skipped).

            What tarfile's ``data`` filter would allow, with its checks done by ours: the
            lexical ones in ``check``, and a fresh staging directory in which only this
            restore makes symlinks (``symlinks``), none leading out and none written
            through, so the filter's ``realpath`` of every member (a fifth of a restore's
            time) adds nothing. Recorded permission bits are kept, minus set-id.
            """
            if member.ischr() or member.isblk():
                log.warning("%s: device node %s not restored", artifact, member.name)
                return None
            if not (
                member.isreg() or member.isdir() or member.issym() or member.islnk() or member.isfifo()
            ):
                refuse(member, f"an entry of unknown type {member.type!r}")
            if not member.issym():  # owners are not restored: uid and gid go unused
                member.mode &= 0o1777
            return member

        made: set[str] = set()  # directories known to exist (only while nothing is removed)
        try:
            reader = TarReader(_buffered(stream))
            while (member := reader.next()) is not None:
                if member.name == DELETED_MEMBER and member.isreg():
                    deleted = _delete_paths(json.loads(reader.read_data()), dest, artifact)
                    symlinks.difference_update(
                        s for s in list(symlinks) if any(_under(s, d) for d in deleted)
                    )
                    continue
                check(member)
                name = posixpath.normpath(member.name)
                if replace:  # clear the way first: the old entry may be a symlink
                    _make_room(_inside(dest, member.name, artifact), member)
                    symlinks.discard(name)
                    made.clear()
                checked = safe(member)
                if checked is None:
                    continue
                if checked.issym():
                    symlinks.add(name)
                _make_entry(reader, checked, dest_str, made, artifact)
                if checked.isdir():
                    directories.append(checked)  # attrs after their contents: see restore_chain
        except tarfile.TarError as exc:
            # Damaged stored bytes are the likely cause: read on to EOF, where the engine's
            # checksum check raises the error that names the stored object.
            while stream.read(COPY_BUFSIZE):
                pass
            raise IntegrityError(
                f"artifact {artifact} is not a valid tar stream ({exc}); restore an older backup"
            ) from None
        return directories


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


class _RawReader(io.RawIOBase):
    """The stream handed to restore, as a raw file ``io.BufferedReader`` can wrap."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _buffered(stream: BinaryIO) -> BinaryIO:
    """Read *stream* in big blocks: tarfile's stream mode reads 10 KiB at a time, and
    each read went through the decompressor and both checksums (100,000 calls per GB).
    Bytes read ahead are checked like the rest; the caller reads *stream* to its end.
    The engine's :class:`~backupkit.streaming.ReadAhead` already hands out big blocks.
    """
    if isinstance(stream, ReadAhead):
        return cast(BinaryIO, stream)
    return io.BufferedReader(_RawReader(stream), buffer_size=COPY_BUFSIZE)


def _lexical_problem(member: tarfile.TarInfo) -> str | None:
    """Our own check of names and link targets, without touching the disk.

    It does not depend on tarfile's ``data`` filter, whose realpath-based checks had
    bypasses before Python 3.11.13 (CVE-2025-4517 and others): a name must be
    relative without ``..``; a symlink's target, read from the link's own directory,
    and a hard link's target must stay inside the archive root.
    """
    name = member.name
    parts = _parts(name)
    if name.startswith(("/", os.sep)) or (parts and parts[0].endswith(":")):
        return "an absolute path"
    if ".." in parts:
        return "a '..' component"
    if member.issym() or member.islnk():
        target = member.linkname
        if target.startswith("/"):
            return "a link to an absolute path"
        target_parts = _parts(target)
        ups = next((i for i, part in enumerate(target_parts) if part != ".."), len(target_parts))
        depth = len(parts) - 1 if member.issym() else 0
        if ups > depth:
            return "a link leading outside the target"
        if ".." in target_parts[ups:]:  # '..' after a name may climb out of a symlinked dir
            return "a link with '..' after a name in its target"
    return None


def _parts(path: str) -> list[str]:
    """``PurePosixPath(path).parts`` of a relative path, without building a path object."""
    return [part for part in path.split("/") if part and part != "."]


def _through_symlink(name: str, symlinks: set[str]) -> str | None:
    """The first parent of *name* that this restore created as a symlink, if any."""
    parts = _parts(name)
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        if prefix in symlinks:
            return prefix
    return None


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def _make_entry(
    reader: TarReader, member: tarfile.TarInfo, dest: str, made: set[str], artifact: str
) -> None:
    """Create one checked member below *dest*: its content, mode and mtime (a
    directory's mode and mtime are set later, after its contents).

    An entry already there under the name (a duplicate member, an incremental's
    replacement) is replaced, never written through; a directory stays.
    """
    path = os.path.join(dest, member.name)
    try:
        parent = os.path.dirname(path)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        if member.isdir():
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                if not os.path.isdir(path) or os.path.islink(path):
                    _replace_with(path, functools.partial(os.mkdir, path, 0o700))
            made.add(path)
            return
        if member.isreg():
            try:
                fd = os.open(path, _CREATE, 0o600)
            except FileExistsError:
                fd = _replace_with(path, functools.partial(os.open, path, _CREATE, 0o600))
            try:
                reader.copy_to(fd)
                os.fchmod(fd, member.mode)
                ns = _mtime_ns(member)
                os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)
            return
        make: Callable[[], None]
        if member.issym():
            make = functools.partial(os.symlink, member.linkname, path)
        elif member.islnk():
            target = os.path.join(dest, member.linkname)
            make = functools.partial(os.link, target, path, follow_symlinks=False)
        else:  # a FIFO: safe() let no other kind through
            make = functools.partial(os.mkfifo, path, 0o600)
        try:
            make()
        except FileExistsError:
            _replace_with(path, make)
        _set_attrs(member, path)
    except OSError as exc:
        raise RestoreError(
            f"artifact {artifact}: cannot restore {member.name!r} ({exc.strerror or exc}); "
            "check the target's free space and permissions"
        ) from None


def _replace_with(path: str, make: Callable[[], _T]) -> _T:
    """Remove what is at *path* (not a real directory: that would lose its contents) and
    run *make* again."""
    if os.path.isdir(path) and not os.path.islink(path):
        raise IsADirectoryError(errno.EISDIR, "a directory is in the way", path)
    os.unlink(path)
    return make()


def _set_directory_attrs(directories: list[tarfile.TarInfo], dest: Path) -> None:
    """Directory modes and mtimes last, deepest first, as tarfile's extractall does."""
    for member in sorted(directories, key=lambda m: m.name, reverse=True):
        _set_attrs(member, os.path.join(dest, member.name))


def _exact_mtime(info: tarfile.TarInfo, st: os.stat_result) -> None:
    """Record the mtime to the nanosecond (a pax ``mtime`` record, as GNU tar reads it)."""
    seconds, ns = divmod(st.st_mtime_ns, 1_000_000_000)
    info.mtime = seconds
    if ns:
        info.pax_headers = {**info.pax_headers, "mtime": f"{seconds}.{ns:09d}"}


def _set_attrs(member: tarfile.TarInfo, path: str) -> None:
    """The recorded mode (not for symlinks, which have none) and mtime to the nanosecond
    (a symlink's own mtime too, as GNU tar does)."""
    if not member.issym():
        os.chmod(path, member.mode)
    ns = _mtime_ns(member)
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


def _mtime_ns(member: tarfile.TarInfo) -> int:
    """tarfile keeps mtimes as floats; the pax record has the exact nanoseconds."""
    text = member.pax_headers.get("mtime")
    if text is not None:
        try:
            return int(decimal.Decimal(text).scaleb(9))
        except decimal.InvalidOperation:
            pass
    return round(member.mtime * 1_000_000_000)


def _inside(dest: Path, name: str, artifact: str) -> Path:
    """*dest*/*name*, refusing names that leave *dest* lexically or through a symlinked parent."""
    path = dest / name
    root = os.path.realpath(dest)
    parent = os.path.realpath(path.parent)
    if (
        not name
        or os.path.isabs(name)
        or ".." in Path(name).parts
        or os.path.commonpath([root, parent]) != root
    ):
        raise UnsafeArchiveError(
            f"artifact {artifact} holds an unsafe path {name!r}; nothing was restored"
        )
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():
        path.unlink()


def _delete_paths(names: Any, dest: Path, artifact: str) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise IntegrityError(f"artifact {artifact} has a damaged deletion list")
    for name in names:
        _remove(_inside(dest, name, artifact))
    return [posixpath.normpath(n) for n in names]


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def _make_room(path: Path, member: tarfile.TarInfo) -> None:
    """Before applying an incremental member: remove what is in its way.

    A directory stays a directory; anything else (a file that became a directory, a
    symlink replaced by a file) is removed first, so nothing is written through an
    old symlink.
    """
    if not os.path.lexists(path):
        return
    if member.isdir() and path.is_dir() and not path.is_symlink():
        return
    _remove(path)


def _publish(staging: Path, target: Path) -> None:
    """Move the staged tree into *target* (created, or merged into with overwrite)."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        if target.exists():
            target.rmdir()
        staging.rename(target)
        staging.mkdir()  # so the caller's cleanup has something to remove
        return
    for entry in staging.iterdir():
        dest = target / entry.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        entry.rename(dest)


@hookimpl
def backupkit_register_sources(register: Register) -> None:
    register.source(FilesystemSource)
