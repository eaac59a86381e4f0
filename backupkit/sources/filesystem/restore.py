"""Restoring a filesystem backup: extraction, its safety checks, and publishing.

A restore extracts every stream of a chain (the full backup, then each incremental's
changed entries and deletions) into a fresh staging directory inside the target, and
moves the staged entries into place only after every stream was read to its end and
its checksums matched. So a damaged or hostile backup leaves the target as it was.

Members are checked on their names alone (:func:`lexical_problem`): no absolute
names, no ``..``, no links leading out of the target, no path through a symlink the
restore itself made. The staging directory is new and only this restore puts
symlinks in it, so nothing is ever written or deleted through a symlink, and no
``realpath`` of each member is needed.

With ``overwrite``, each top-level entry of the backup replaces the entry of that
name in the target: the old one is first moved aside, and removed only once every
new entry is in place; if a move fails, the moves done are undone.
"""

from __future__ import annotations

import decimal
import errno
import functools
import hashlib
import io
import json
import logging
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from backupkit.errors import IntegrityError, RestoreError, UnsafeArchiveError
from backupkit.plugin import Reader
from backupkit.sources.filesystem.tarread import TarFormatError, TarReader

log = logging.getLogger("backupkit.sources.filesystem")

_T = TypeVar("_T")

COPY_BUFSIZE = 1 << 20
STAGING_PREFIX = ".backupkit-partial-"
#: Last member of an incremental stream: the paths deleted since the parent. Restore
#: applies it wherever it stands (early backups have it first).
DELETED_MEMBER = ".backupkit-deleted.json"


def restore_tree(
    streams: Iterator[Reader], target: Path, *, artifact: str, overwrite: bool,
    external_symlinks: bool = False, hashes: dict[str, bytes] | None = None,
) -> None:
    """Extract *streams* (a full backup, then its incrementals) into *target*.

    *external_symlinks* allows symlinks leading out of it (see :func:`lexical_problem`).
    *hashes*, if given, gets the sha256 of the bytes written into each regular file, by
    its path in the backup (a restore drill checks them against the file index without
    reading every file again); paths an incremental deleted or replaced by something
    else than a file's content are left out.
    """
    target = target.absolute()
    try:
        st: os.stat_result | None = os.stat(target)  # a symlink to a directory will do
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise RestoreError(f"cannot use restore target {target} ({exc.strerror}); choose another") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise RestoreError(f"restore target {target} is not a directory")
    if st is not None and not overwrite and _holds_entries(target):
        raise RestoreError(
            f"restore target {target} is not empty; choose an empty directory or "
            "pass --overwrite to replace what the backup contains"
        )
    try:
        target.mkdir(parents=True, exist_ok=True)
        # Inside the target: the same filesystem (a mount point works), and no need to
        # write to its parent.
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target))
    except OSError as exc:
        raise RestoreError(
            f"cannot create restore target {target} ({exc.strerror}); check the path and permissions"
        ) from None
    try:
        directories: list[tarfile.TarInfo] = []
        symlinks: set[str] = set()  # symlinks this restore made: never write through them
        for position, stream in enumerate(streams):
            directories = extract(
                stream, staging, artifact, replace=position > 0, symlinks=symlinks,
                external_symlinks=external_symlinks, hashes=hashes,
            )
            while stream.read(COPY_BUFSIZE):  # to EOF: the engine checks checksums there
                pass
        _set_directory_attrs(directories, staging, artifact)
        _publish(staging, target, artifact)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if st is None:  # made for this restore: a failed one leaves no trace
            shutil.rmtree(target, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)


def _holds_entries(target: Path) -> bool:
    """Whether *target* holds anything but staging directories a killed restore left."""
    with os.scandir(target) as entries:
        return any(not entry.name.startswith(STAGING_PREFIX) for entry in entries)


def extract(
    stream: Reader, dest: Path, artifact: str, *, replace: bool, symlinks: set[str],
    external_symlinks: bool = False, hashes: dict[str, bytes] | None = None,
) -> list[tarfile.TarInfo]:
    """Extract one stream into *dest*; return its directories (attrs set later). Each
    regular file's sha256 goes into *hashes*, if given (see :func:`restore_tree`)."""
    dest_str = str(dest)
    directories: list[tarfile.TarInfo] = []

    def refuse(member: tarfile.TarInfo, problem: str) -> NoReturn:
        raise UnsafeArchiveError(
            f"artifact {artifact} holds an unsafe member {member.name!r} ({problem}); "
            "nothing was restored"
        )

    def check(member: tarfile.TarInfo) -> None:
        problem = lexical_problem(member, external_symlinks=external_symlinks)
        if problem:
            if member.issym():
                problem += "; if you trust this backup, restore with --allow-external-symlinks"
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
                if hashes is not None and deleted:
                    hashes.clear()  # rare: the files under them are read again instead
                symlinks.difference_update(
                    s for s in list(symlinks) if any(_under(s, d) for d in deleted)
                )
                continue
            check(member)
            name = posixpath.normpath(member.name)
            if replace:  # clear the way first: the old entry may be a symlink
                _make_room(dest, member, artifact)
                symlinks.discard(name)
                made.clear()
            checked = safe(member)
            if checked is None:
                continue
            if checked.issym():
                symlinks.add(name)
            digest = None
            if hashes is not None:
                hashes.pop(name, None)
                digest = hashlib.sha256() if checked.isreg() else None
            _make_entry(reader, checked, dest_str, made, artifact, digest)
            if digest is not None and hashes is not None:
                hashes[name] = digest.digest()
            if checked.isdir():
                directories.append(checked)  # attrs after their contents: see restore_tree
    except tarfile.TarError as exc:
        # Damaged stored bytes are the likely cause: read on to EOF, where the engine's
        # checksum check raises the error that names the stored object.
        while stream.read(COPY_BUFSIZE):
            pass
        raise IntegrityError(
            f"artifact {artifact} is not a valid tar stream ({exc}); restore an older backup"
        ) from None
    return directories


class _RawReader(io.RawIOBase):
    """The stream handed to restore, as a raw file ``io.BufferedReader`` can wrap."""

    def __init__(self, stream: Reader) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _buffered(stream: Reader) -> Reader:
    """Read *stream* in big blocks: tar headers are read 512 bytes at a time, and each
    read went through the decompressor and both checksums (100,000 calls per GB).
    Bytes read ahead are checked like the rest; the caller reads *stream* to its end.

    A stream whose class sets ``buffered = True`` already serves reads from big blocks
    it holds (the engine's read-ahead reader does) and is read as it is: buffering it
    again would only copy every byte once more.
    """
    if getattr(stream, "buffered", False) is True:
        return stream
    return io.BufferedReader(_RawReader(stream), buffer_size=COPY_BUFSIZE)


def lexical_problem(member: tarfile.TarInfo, *, external_symlinks: bool = False) -> str | None:
    """Our own check of names and link targets, without touching the disk.

    It does not depend on tarfile's ``data`` filter, whose realpath-based checks had
    bypasses before Python 3.11.13 (CVE-2025-4517 and others): a name must be
    relative without ``..``; a symlink's target, read from the link's own directory,
    and a hard link's target must stay inside the archive root. With
    *external_symlinks*, a symlink's target is not checked: a restore never writes
    through a symlink, so where one leads harms nothing it writes.
    """
    name = member.name
    parts = path_parts(name)
    if name.startswith(("/", os.sep)) or (parts and parts[0].endswith(":")):
        return "an absolute path"
    if ".." in parts:
        return "a '..' component"
    if (member.issym() and not external_symlinks) or member.islnk():
        target = member.linkname
        if target.startswith("/"):
            return "a link to an absolute path"
        target_parts = path_parts(target)
        ups = next((i for i, part in enumerate(target_parts) if part != ".."), len(target_parts))
        depth = len(parts) - 1 if member.issym() else 0
        if ups > depth:
            return "a link leading outside the target"
        if ".." in target_parts[ups:]:  # '..' after a name may climb out of a symlinked dir
            return "a link with '..' after a name in its target"
    return None


def path_parts(path: str) -> list[str]:
    """``PurePosixPath(path).parts`` of a relative path, without building a path object."""
    return [part for part in path.split("/") if part and part != "."]


def _through_symlink(name: str, symlinks: set[str]) -> str | None:
    """The first parent of *name* that this restore created as a symlink, if any."""
    parts = path_parts(name)
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        if prefix in symlinks:
            return prefix
    return None


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def _make_entry(
    reader: TarReader, member: tarfile.TarInfo, dest: str, made: set[str], artifact: str,
    digest: Any = None,
) -> None:
    """Create one checked member below *dest*: its content (hashed into *digest*, if
    given), mode and mtime (a directory's mode and mtime are set later, after its contents).

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
                reader.copy_to(fd, digest)
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


def _set_directory_attrs(directories: list[tarfile.TarInfo], dest: Path, artifact: str) -> None:
    """Directory modes and mtimes last, deepest first, as tarfile's extractall does."""
    for member in sorted(directories, key=lambda m: m.name, reverse=True):
        path = os.path.join(dest, member.name)
        try:
            _set_attrs(member, path)
        except FileNotFoundError:
            pass  # removed again by a later incremental of the chain
        except OSError as exc:
            raise RestoreError(
                f"artifact {artifact}: cannot set the mode and mtime of {member.name!r} "
                f"({exc.strerror}); check the target's permissions"
            ) from None


def _set_attrs(member: tarfile.TarInfo, path: str) -> None:
    """The recorded mode (not for symlinks, which have none) and mtime to the nanosecond
    (a symlink's own mtime too, as GNU tar does)."""
    if not member.issym():
        os.chmod(path, member.mode)
    ns = _mtime_ns(member)
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


def _mtime_ns(member: tarfile.TarInfo) -> int:
    """tarfile keeps mtimes as floats; the pax record has the exact nanoseconds.

    :class:`TarReader` refuses mtimes that are not finite or too big; should one get
    here all the same, it is damage (:class:`TarFormatError`), not a traceback.
    """
    text = member.pax_headers.get("mtime")
    try:
        if text is not None:
            try:
                return int(decimal.Decimal(text).scaleb(9))
            except decimal.InvalidOperation:
                pass
        return round(member.mtime * 1_000_000_000)
    except (ArithmeticError, ValueError):  # OverflowError, decimal.Overflow, NaN
        raise TarFormatError(f"member {member.name!r} has an invalid mtime") from None


def _staged(dest: Path, name: str) -> str | None:
    """*dest*/*name* if each of its parents below *dest* is a real directory (``lstat``,
    never following a symlink); None if one is not: then nothing is there to remove."""
    parts = path_parts(name)
    path = str(dest)
    for part in parts[:-1]:
        path = os.path.join(path, part)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return None
        except FileNotFoundError:
            return None
    return os.path.join(path, parts[-1]) if parts else None


def _remove(path: str) -> None:
    """Remove the entry at *path* itself: a symlink, never what it points to."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _delete_paths(names: Any, dest: Path, artifact: str) -> list[str]:
    """Apply an incremental's deletion list. A path whose parent the incremental
    replaced (by a symlink, a file) is gone already: it is never followed."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise IntegrityError(f"artifact {artifact} has a damaged deletion list")
    for name in names:
        if not name or name.startswith("/") or ".." in path_parts(name):
            raise UnsafeArchiveError(
                f"artifact {artifact} holds an unsafe path {name!r}; nothing was restored"
            )
        path = _staged(dest, name)
        if path is None:
            continue
        try:
            _remove(path)
        except OSError as exc:
            raise RestoreError(
                f"artifact {artifact}: cannot remove {name!r}, deleted since its parent backup "
                f"({exc.strerror}); check the target's permissions"
            ) from None
    return [posixpath.normpath(n) for n in names]


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def _make_room(dest: Path, member: tarfile.TarInfo, artifact: str) -> None:
    """Before applying an incremental member: remove what is in its way.

    A directory stays a directory; anything else (a file that became a directory, a
    symlink replaced by a file) is removed first, so nothing is written through an
    old symlink.
    """
    path = _staged(dest, member.name)
    if path is None:
        return
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if member.isdir() and stat.S_ISDIR(st.st_mode):
        return
    try:
        _remove(path)
    except OSError as exc:
        raise RestoreError(
            f"artifact {artifact}: cannot replace {member.name!r} ({exc.strerror}); "
            "check the target's permissions"
        ) from None


def _publish(staging: Path, target: Path, artifact: str) -> None:
    """Move the staged entries into *target*.

    An entry of the same name already there (only with overwrite) is moved aside first,
    into a directory beside the staging one, and removed only once every new entry is
    in place. If a move fails or the restore is interrupted, the moves done are undone,
    so the target holds its old entries, never neither.
    """
    names = sorted(os.listdir(staging))
    aside: Path | None = None
    done: list[tuple[str, bool]] = []  # (name, its old entry was moved aside)
    try:
        for name in names:
            dest = target / name
            had_old = os.path.lexists(dest)
            if had_old:
                if aside is None:
                    aside = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target))
                os.rename(dest, aside / name)
            done.append((name, had_old))
            os.rename(staging / name, dest)
    except BaseException as exc:
        for name, had_old in reversed(done):
            if not os.path.lexists(staging / name):  # the new entry went in: take it out
                os.rename(target / name, staging / name)
            if had_old and aside is not None:
                os.rename(aside / name, target / name)
        if aside is not None:
            os.rmdir(aside)
        if isinstance(exc, OSError):
            raise RestoreError(
                f"artifact {artifact}: cannot move {exc.filename!r} into {target} "
                f"({exc.strerror}); the target was left as it was"
            ) from None
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
