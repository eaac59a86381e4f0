"""The ``filesystem`` source: files and directories as a POSIX (pax) tar stream.

Each configured path is stored under its base name (``/srv/app/media`` becomes
``media/...`` in the archive), so ``tar -x`` of a decompressed artifact recreates
the same tree. Modes, mtimes, symlinks and hard links are kept; ownership is not
restored (restores run as whoever runs them).

Restore is safe against hostile archives: absolute names, ``..`` components and
links pointing outside the target are refused (tarfile's ``data`` filter checks,
with the original permission bits kept). Files are extracted into a staging
directory next to the target and moved into place only after the whole stream
has been read and its checksums matched, so a corrupt backup writes nothing.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import secrets
import shutil
import stat
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import attrs

from backupkit.errors import ConfigError, RestoreError, SourceError, UnsafeArchiveError
from backupkit.plugins import Register, hookimpl
from backupkit.sources.base import BackupContext, RestoreContext, Source, Writable

log = logging.getLogger("backupkit.sources.filesystem")

COPY_BUFSIZE = 1 << 20
STAGING_PREFIX = ".backupkit-partial-"


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


class _Tell:
    """Adapts a plain writer for tarfile's ``w`` mode, which asks for ``tell()``."""

    def __init__(self, out: Writable) -> None:
        self.out = out
        self.pos = 0

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos


class _Exactly:
    """Reads exactly *size* bytes of a file, zero-padding one that shrank meanwhile."""

    def __init__(self, fh: BinaryIO, size: int, name: str) -> None:
        self.fh, self.left, self.name, self.warned = fh, size, name, False

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            n = self.left
        data = self.fh.read(n)
        if len(data) < n:
            if not self.warned:
                log.warning("%s shrank while being read; the rest is stored as zeros", self.name)
                self.warned = True
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        return data


@attrs.frozen
class FilesystemSource(Source):
    """Files and directories, stored as a pax tar stream."""

    id: ClassVar[str] = "filesystem"
    extension: ClassVar[str] = ".tar"

    paths: tuple[str, ...] = attrs.field(converter=_str_tuple, validator=_validate_paths)
    include: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    exclude: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)

    # -- backup -------------------------------------------------------------------
    def _matches(self, patterns: tuple[str, ...], arcname: str) -> bool:
        base = arcname.rsplit("/", 1)[-1]
        return any(fnmatch.fnmatchcase(arcname, p) or fnmatch.fnmatchcase(base, p) for p in patterns)

    def _walk(self, root: str, arcroot: str) -> Iterator[tuple[str, str, bool]]:
        """(path, arcname, is_dir) in a stable order, excludes pruned."""
        stack = [(root, arcroot)]
        while stack:
            path, arcname = stack.pop()
            if arcname != arcroot and self._matches(self.exclude, arcname):
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                log.warning("%s vanished before it could be read; skipped", path)
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if not is_dir and self.include and not self._matches(self.include, arcname):
                continue
            yield path, arcname, is_dir
            if is_dir:
                try:
                    names = sorted(os.listdir(path), reverse=True)
                except OSError as exc:
                    raise SourceError(f"cannot list {path}: {exc.strerror}; check permissions") from None
                stack.extend((os.path.join(path, n), f"{arcname}/{n}") for n in names)

    def backup(self, out: Writable, ctx: BackupContext) -> Mapping[str, Any] | None:
        for path in self.paths:
            if not os.path.lexists(path):
                raise SourceError(f"source path {path} does not exist; fix the path or remove it")
        files = dirs = 0
        with tarfile.open(
            fileobj=_Tell(out),  # type: ignore[arg-type]
            mode="w",
            format=tarfile.PAX_FORMAT,
            copybufsize=COPY_BUFSIZE,
        ) as tar:
            for root in self.paths:
                for path, arcname, is_dir in self._walk(root, _arcname_of(root)):
                    ctx.progress(arcname)
                    try:
                        info = tar.gettarinfo(path, arcname)
                    except FileNotFoundError:
                        log.warning("%s vanished before it could be read; skipped", path)
                        continue
                    if info is None:
                        log.warning("%s is a socket or similar; skipped", path)
                        continue
                    if info.isreg():
                        try:
                            fh = open(path, "rb")  # noqa: SIM115
                        except FileNotFoundError:
                            log.warning("%s vanished before it could be read; skipped", path)
                            continue
                        except OSError as exc:
                            raise SourceError(
                                f"cannot read {path}: {exc.strerror}; check permissions or exclude it"
                            ) from None
                        with fh:
                            tar.addfile(info, _Exactly(fh, info.size, path))  # type: ignore[arg-type]
                        files += 1
                    else:
                        tar.addfile(info)
                        dirs += is_dir
                    tar.members.clear()  # keep memory flat; hard links use tar.inodes
        return {"files": files, "directories": dirs, "paths": [_arcname_of(p) for p in self.paths]}

    # -- restore ------------------------------------------------------------------
    def restore(self, stream: BinaryIO, ctx: RestoreContext) -> None:
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
            self._extract(stream, staging, ctx.artifact)
            while stream.read(COPY_BUFSIZE):  # read to EOF: the engine checks checksums there
                pass
            _publish(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _extract(self, stream: BinaryIO, dest: Path, artifact: str) -> None:
        dest_str = str(dest)
        directories: list[tarfile.TarInfo] = []

        def safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
            try:
                checked = tarfile.data_filter(member, path)
            except tarfile.FilterError as exc:
                raise UnsafeArchiveError(
                    f"artifact {artifact} holds an unsafe member {member.name!r} ({exc}); "
                    "nothing was restored"
                ) from None
            # data_filter's checks, but keep the recorded permission bits (minus set-id).
            mode = None if member.issym() else member.mode & 0o1777
            return checked.replace(mode=mode, uid=None, gid=None, uname=None, gname=None, deep=False)

        with tarfile.open(fileobj=stream, mode="r|", copybufsize=COPY_BUFSIZE) as tar:
            while (member := tar.next()) is not None:
                tar.members.clear()
                checked = safe(member, dest_str)
                if checked.isdir():
                    directories.append(checked)
                    tar.extract(checked, dest_str, set_attrs=False, filter="fully_trusted")
                    continue
                tar.extract(checked, dest_str, filter="fully_trusted")
            # Directory modes and mtimes last, deepest first, like extractall does.
            directories.sort(key=lambda m: m.name, reverse=True)
            for member in directories:
                path = os.path.join(dest_str, member.name)
                tar.chmod(member, path)
                tar.utime(member, path)


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
