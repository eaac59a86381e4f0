"""The ``local`` sink: a tiered directory tree (seed 002's layout).

::

    <root>/daily/  weekly/  monthly/  incremental/   published backups by tier
    <root>/temp/<run-id>/                            a run's files while being written
    <root>/logs/                                     one log file per run

Artifacts are written into ``temp/<run-id>/`` and hard-linked into their tier when
complete (fsync'ed first), so a reader never sees a partial file and a stored file is
never replaced (where hard links are unsupported: a check, then a rename). Deletes
fsync their directories, so prune's order (manifest first) survives a power cut. Each running
backup holds an exclusive ``flock`` on ``temp/<run-id>/.lock``; a run directory
whose lock can be taken belongs to a dead run and is removed by the next run.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import attrs

from backupkit.errors import AlreadyExistsError, ConfigError, NotFoundError, SinkError
from backupkit.plugin import ArtifactWriter, Register, Sink, hookimpl

TIERS = ("daily", "weekly", "monthly", "incremental")
LAYOUT = (*TIERS, "temp", "logs")
_HIDDEN = ("temp/",)
STALE_UNLOCKED_SECONDS = 3600


def _os_error(exc: OSError, action: str, path: Path) -> SinkError:
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full; free space or choose another sink"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "permission denied; make it writable or choose another sink"
    else:
        hint = exc.strerror or str(exc)
    err = SinkError(f"cannot {action} {path}: {hint}")
    err.errno = exc.errno
    return err


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: os.link's errors where the filesystem has no hard links (FAT, some FUSE and SMB mounts)
#: or the tier directory is another mount: publish with check-then-rename there.
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS})


def _exists_error(path: Path) -> SinkError:
    return AlreadyExistsError(f"{path} already exists; refusing to overwrite a stored artifact")


class _FileWriter(ArtifactWriter):
    def __init__(self, tmp: Path, final: Path) -> None:
        self.tmp = tmp
        self.final = final
        self.published = False  # the final file is ours: abort removes it until commit returns
        self.committed = False
        try:
            self.fh: BinaryIO | None = open(tmp, "xb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise _os_error(exc, "write", tmp) from None

    def write(self, data: bytes, /) -> int:
        assert self.fh is not None, "write after commit/abort"
        view = memoryview(data).cast("B")
        size = view.nbytes
        try:
            # An unbuffered write may store less than asked (a disk filling up does
            # that): write the rest, so the file never silently lacks bytes.
            while view:
                written = self.fh.write(view)
                if not written:
                    raise OSError(errno.EIO, "the write stored nothing")
                view = view[written:]
        except OSError as exc:
            raise _os_error(exc, "write", self.tmp) from None
        return size

    def commit(self) -> None:
        assert self.fh is not None
        try:
            os.fsync(self.fh.fileno())
            self.fh.close()
            self.fh = None
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self._publish()
            _fsync_dir(self.final.parent)
        except SinkError:
            raise
        except OSError as exc:
            raise _os_error(exc, "store", self.final) from None
        self.committed = True

    def _publish(self) -> None:
        """Move tmp to final, never replacing a file there: a hard link fails if one exists."""
        try:
            os.link(self.tmp, self.final)
        except FileExistsError:
            raise _exists_error(self.final) from None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if self.final.exists():
                raise _exists_error(self.final) from None
            os.replace(self.tmp, self.final)
            self.published = True
        else:
            self.published = True
            self.tmp.unlink()

    def abort(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        if self.published and not self.committed:  # commit failed after publishing
            self.final.unlink(missing_ok=True)
            self.published = False
        self.tmp.unlink(missing_ok=True)


def _expand(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.expanduser(os.fspath(path)))


@attrs.frozen
class LocalSink(Sink):
    """Backups in a local directory, laid out by tier."""

    id: ClassVar[str] = "local"

    root: Path = attrs.field(converter=_expand)
    _locks: dict[str, int] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    @property
    def location(self) -> str:
        return str(self.root)

    def describe(self) -> dict[str, Any]:
        return {"root": str(self.root)}

    def local_directory(self) -> str | None:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*self.check_key(key).split("/"))

    def _ensure_layout(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"sink {self.root} is not a directory; choose a directory")
        try:
            for name in LAYOUT:
                (self.root / name).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _os_error(exc, "create", self.root) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise SinkError(
                f"cannot write to sink {self.root}: permission denied; make it writable "
                "or choose another sink"
            )

    # -- run lifecycle ------------------------------------------------------------
    def begin_run(self, run_id: str) -> None:
        self._ensure_layout()
        self.collect_stale_temp()
        run_dir = self.root / "temp" / run_id
        # The directory appears under its name only with its lock already held (made under a
        # dot name, then renamed), so another process's collector never sees it unlocked.
        staging = self.root / "temp" / f".{run_id}"
        fd = -1
        try:
            if run_dir.exists():
                raise FileExistsError(errno.EEXIST, "run directory exists", str(run_dir))
            staging.mkdir()
            fd = os.open(staging / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(staging, run_dir)
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            shutil.rmtree(staging, ignore_errors=True)
            raise _os_error(exc, "create", run_dir) from None
        self._locks[run_id] = fd

    def end_run(self, run_id: str) -> None:
        shutil.rmtree(self.root / "temp" / run_id, ignore_errors=True)
        fd = self._locks.pop(run_id, None)
        if fd is not None:
            os.close(fd)

    def active_run_ids(self) -> set[str]:
        """Runs whose ``temp/<run-id>/.lock`` is held by a live process (or by us)."""
        active = set(self._locks)
        temp = self.root / "temp"
        if not temp.is_dir():
            return active
        for run_dir in temp.iterdir():
            name = run_dir.name.removeprefix(".")  # a run being set up is alive too
            try:
                fd = os.open(run_dir / ".lock", os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                active.add(name)
            finally:
                os.close(fd)  # closing drops a lock we may just have taken
        return active

    def collect_stale_temp(self) -> list[str]:
        """Remove temp directories of runs that are no longer alive; return their ids."""
        removed: list[str] = []
        temp = self.root / "temp"
        if not temp.is_dir():
            return removed
        for run_dir in temp.iterdir():
            if run_dir.name in self._locks:
                continue
            lock = run_dir / ".lock"
            try:
                if run_dir.name.startswith("."):
                    raise FileNotFoundError(lock)  # a run being set up: judged by age alone
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:
                # Lockless: a run being set up (or one from a version that locked later).
                try:
                    if time.time() - run_dir.lstat().st_mtime < STALE_UNLOCKED_SECONDS:
                        continue
                except FileNotFoundError:
                    continue
                fd = -1
            except OSError:
                continue
            try:
                if fd >= 0:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live run holds it
            else:
                # The owner may have ended the run (and removed the directory) since we looked.
                if run_dir.is_dir():
                    shutil.rmtree(run_dir, ignore_errors=True)
                else:
                    run_dir.unlink(missing_ok=True)
                removed.append(run_dir.name)
            finally:
                if fd >= 0:
                    os.close(fd)
        return removed

    # -- primitives ---------------------------------------------------------------
    def open_artifact(self, key: str, *, run_id: str) -> ArtifactWriter:
        final = self._path(key)
        if final.exists():
            raise _exists_error(final)
        tmp = self.root / "temp" / run_id / key.replace("/", "__")
        return _FileWriter(tmp, final)

    def modified_at(self, key: str) -> dt.datetime:
        """The file's mtime (the file system's clock, shared by every host that mounts it)."""
        try:
            return dt.datetime.fromtimestamp(self._path(key).stat().st_mtime, dt.UTC)
        except FileNotFoundError:
            raise NotFoundError(f"{key} is not in {self.location}") from None

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"{path} does not exist in sink {self.root}") from None
        except OSError as exc:
            raise _os_error(exc, "read", path) from None

    def open_read(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise NotFoundError(f"{path} is missing from sink {self.root}") from None
        except OSError as exc:
            raise _os_error(exc, "read", path) from None

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(self.root, onerror=self._unlistable):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            if rel.startswith(_HIDDEN):
                dirnames[:] = []
                continue
            dirnames.sort()
            for name in sorted(filenames):
                key = rel + name
                if key.startswith(prefix):
                    yield key

    def _unlistable(self, exc: OSError) -> None:
        """A directory os.walk cannot read: a catalog without it would be wrong, so fail."""
        if isinstance(exc, FileNotFoundError):
            return  # removed while listing (a run's temp directory)
        raise _os_error(exc, "list", Path(exc.filename or self.root)) from None

    def delete(self, keys: Iterable[str]) -> None:
        """Delete *keys*, then fsync their directories: prune's order survives a power cut."""
        directories: dict[Path, None] = {}
        for key in keys:
            path = self._path(key)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise _os_error(exc, "delete", path) from None
            directories[path.parent] = None
        for directory in directories:
            try:
                _fsync_dir(directory)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise _os_error(exc, "sync", directory) from None

    def size_of(self, key: str) -> int:
        """The stored size of *key* in bytes (``FileNotFoundError`` if it is gone)."""
        return self._path(key).stat().st_size


@hookimpl
def backupkit_register_sinks(register: Register) -> None:
    register.sink(LocalSink)


@hookimpl(trylast=True)
def backupkit_sink_for_url(url: str) -> tuple[str, dict[str, object]] | None:
    """Plain paths and ``file://`` URLs belong to the local sink."""
    if url.startswith("file://"):
        return ("local", {"root": url[len("file://"):]})
    if "://" in url:
        return None
    return ("local", {"root": url})
