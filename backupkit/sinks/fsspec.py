"""The ``fsspec`` sink: backups on any filesystem fsspec knows (``memory://``,
``sftp://``, ``gcs://``, ``abfs://``, ``s3://`` through s3fs, ...).

Keys map to paths under the URL. Publishing is atomic in one of two ways,
chosen by protocol (``publish = "auto"``) or set explicitly:

``rename``
    write to ``temp/<run-id>/`` under the URL, then move into place (filesystems
    with a cheap rename: local, memory, sftp, hdfs, smb...). ``temp/`` is never
    listed; ``end_run`` removes a run's temp directory.
``transaction``
    object stores, where a move is a copy: open the final path with
    ``autocommit=False``, so the upload becomes visible only on ``commit`` and
    ``discard`` drops it (s3fs aborts its multipart upload).

``storage_options`` are passed to the filesystem and never leave the process
(they often hold credentials). Plain paths and ``file://`` belong to the
``local`` sink and ``s3://`` to the ``s3`` sink; name this sink in the config
(``{type = "fsspec", url = "..."}``) to use it for those.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO, ClassVar, NoReturn

import attrs

from backupkit.errors import BackupkitError, NotFoundError, SinkError
from backupkit.params import secret, strip_userinfo
from backupkit.plugin import ArtifactWriter, Register, Sink, hookimpl

log = logging.getLogger("backupkit.fsspec")

PUBLISH_MODES = ("auto", "rename", "transaction")
#: Protocols whose "move" is a server-side copy; they publish by transaction.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "oss", "oci"})
#: URL schemes other sinks own (see the module docstring).
_NOT_OURS = frozenset({"", "file", "local", "s3", "s3a"})
_TEMP = "temp"
def _sink_error(exc: BaseException, action: str, where: str) -> BackupkitError:
    if isinstance(exc, BackupkitError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(f"{where} does not exist")
    if isinstance(exc, FileExistsError) or "PreconditionFailed" in str(exc):
        return SinkError(f"{where} already exists; refusing to overwrite a stored artifact")
    if isinstance(exc, PermissionError):
        return SinkError(f"cannot {action} {where}: permission denied; grant access or choose another sink")
    return SinkError(f"cannot {action} {where}: {_detail(exc)}")


def _detail(exc: BaseException) -> str:
    """*exc* as one line without passwords."""
    return strip_userinfo(" ".join(str(exc).split())) or type(exc).__name__


@attrs.frozen
class FsspecSink(Sink):
    """Backups under any fsspec URL."""

    id: ClassVar[str] = "fsspec"

    url: str = attrs.field(repr=lambda url: repr(strip_userinfo(url)))  # no passwords
    storage_options: Mapping[str, Any] = secret(factory=dict)
    publish: str = attrs.field(default="auto", validator=attrs.validators.in_(PUBLISH_MODES))
    _cache: dict[str, Any] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    # A backup writes a source's sidecar while the main artifact is written, from another
    # thread; some filesystems are not safe to use from two at once (sftp's one paramiko
    # client), so every writer's calls into the filesystem take turns.
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False, eq=False)

    @property
    def location(self) -> str:
        return strip_userinfo(self.url).rstrip("/")

    def describe(self) -> dict[str, Any]:
        return {"url": self.location, "publish": self.publish}

    # -- the filesystem ---------------------------------------------------------------
    @property
    def fs(self) -> Any:
        """The fsspec filesystem (made on first use)."""
        if "fs" not in self._cache:
            try:
                import fsspec  # type: ignore[import-untyped]  # noqa: PLC0415 - 25 ms at start-up otherwise

                fs, root = fsspec.core.url_to_fs(self.url, **dict(self.storage_options))
            except (ImportError, ValueError) as exc:
                raise SinkError(
                    f"cannot open {self.location}: {_detail(exc)}; install the fsspec implementation "
                    "for this protocol (e.g. pip install s3fs gcsfs adlfs)"
                ) from None
            except Exception as exc:  # sftp connects here: refused, unknown host, bad password
                raise SinkError(
                    f"cannot open {self.location}: {_detail(exc)}; check the URL, that the server "
                    "is up, and the credentials in the URL or storage_options"
                ) from None
            self._cache["fs"], self._cache["root"] = fs, root.rstrip("/")
        return self._cache["fs"]

    @property
    def root(self) -> str:
        """The root path in the filesystem, without its protocol (``bucket/prefix``)."""
        self.fs  # noqa: B018 (fills the cache)
        root: str = self._cache["root"]
        return root

    @property
    def mode(self) -> str:
        """How artifacts are published: ``rename`` or ``transaction``."""
        if self.publish != "auto":
            return self.publish
        protocols = self.fs.protocol
        protocols = (protocols,) if isinstance(protocols, str) else tuple(protocols)
        return "transaction" if OBJECT_STORES.intersection(protocols) else "rename"

    def _path(self, key: str) -> str:
        self.check_key(key)
        return f"{self.root}/{key}"

    def _where(self, key: str) -> str:
        return f"{self.location}/{key}"

    def _fail(self, exc: BaseException, action: str, key: str) -> NoReturn:
        raise _sink_error(exc, action, self._where(key)) from None

    # -- run lifecycle ------------------------------------------------------------------
    def end_run(self, run_id: str) -> None:
        # Never raises: it runs after a failure too, whose error must not be hidden.
        try:
            if self.mode == "rename":
                self.fs.rm(f"{self.root}/{_TEMP}/{run_id}", recursive=True)
        except Exception as exc:  # nothing was written, or it is gone already
            log.debug("could not remove the temp data of run %s in %s: %s", run_id, self.location, exc)

    # -- primitives -------------------------------------------------------------------
    def open_artifact(self, key: str, *, run_id: str) -> ArtifactWriter:
        final = self._path(key)
        try:
            with self._lock:
                if self.fs.exists(final):
                    raise SinkError(
                        f"{self._where(key)} already exists; refusing to overwrite a stored artifact"
                    )
                if self.mode == "transaction":
                    try:  # exclusive: the store refuses the commit if the key appeared meanwhile
                        fh = self.fs.open(final, "xb", autocommit=False)
                    except (ValueError, NotImplementedError, TypeError):  # no such mode there
                        fh = self.fs.open(final, "wb", autocommit=False)
                    return _TransactionWriter(fh, self._where(key), self._lock)
                tmp = f"{self.root}/{_TEMP}/{run_id}/{key.replace('/', '__')}"
                self.fs.makedirs(tmp.rpartition("/")[0], exist_ok=True)
                fh = self.fs.open(tmp, "wb")
            return _RenameWriter(self.fs, fh, tmp, final, self._where(key), self._lock)
        except Exception as exc:
            self._fail(exc, "write", key)

    def get_bytes(self, key: str) -> bytes:
        try:
            data: bytes = self.fs.cat_file(self._path(key))
        except Exception as exc:
            self._fail(exc, "read", key)
        return data

    def open_read(self, key: str) -> BinaryIO:
        try:
            fh: BinaryIO = self.fs.open(self._path(key), "rb")
        except Exception as exc:
            self._fail(exc, "read", key)
        return fh

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        try:
            start = len(self.root) + 1
            paths = sorted(self.fs.find(self.root, withdirs=False))
        except FileNotFoundError:
            return
        except Exception as exc:
            raise _sink_error(exc, "list", self.location) from None
        for path in paths:
            key = path[start:]
            if key.startswith(prefix) and not key.startswith(f"{_TEMP}/"):
                yield key

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            try:
                self.fs.rm_file(self._path(key))
            except FileNotFoundError:
                pass
            except Exception as exc:
                self._fail(exc, "delete", key)

    def presign(self, key: str, *, expires: int = 3600) -> str:
        try:
            url: str = self.fs.sign(self._path(key), expiration=expires)
        except NotImplementedError:
            return super().presign(key, expires=expires)
        except Exception as exc:
            self._fail(exc, "sign a URL for", key)
        return url


class _FileHandleWriter(ArtifactWriter):
    """Writes go to an fsspec file handle ``fh``, holding the sink's ``lock``; errors name
    ``where``."""

    fh: Any
    where: str
    lock: threading.Lock

    def write(self, data: bytes, /) -> int:
        try:
            with self.lock:
                self.fh.write(data)
        except Exception as exc:
            raise _sink_error(exc, "write", self.where) from None
        return len(data)


class _RenameWriter(_FileHandleWriter):
    """Writes a temp file, moved into place on commit."""

    def __init__(self, fs: Any, fh: Any, tmp: str, final: str, where: str, lock: threading.Lock) -> None:
        self.fs, self.fh, self.tmp, self.final, self.where = fs, fh, tmp, final, where
        self.lock = lock

    def commit(self) -> None:
        try:
            with self.lock:
                self.fh.close()
                self.fs.makedirs(self.final.rpartition("/")[0], exist_ok=True)
                # checked again here, not only at open: a move replaces what is there
                if self.fs.exists(self.final):
                    raise FileExistsError(self.final)
                self.fs.mv(self.tmp, self.final)
        except FileExistsError:
            raise SinkError(
                f"{self.where} already exists; refusing to overwrite a stored artifact"
            ) from None
        except Exception as exc:
            raise _sink_error(exc, "store", self.where) from None
        self.fh = None

    def abort(self) -> None:
        if self.fh is None:
            return  # committed
        try:
            with self.lock:
                self.fh.close()
                self.fs.rm_file(self.tmp)
        except Exception as exc:
            log.debug("could not remove %s: %s", self.tmp, exc)
        self.fh = None


class _TransactionWriter(_FileHandleWriter):
    """Writes the final path with ``autocommit=False``: visible only on commit."""

    def __init__(self, fh: Any, where: str, lock: threading.Lock) -> None:
        self.fh, self.where, self.lock = fh, where, lock
        self.done = False

    def commit(self) -> None:
        try:
            with self.lock:
                self.fh.close()
                self.fh.commit()
        except Exception as exc:
            raise _sink_error(exc, "store", self.where) from None
        self.done = True

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            with self.lock:
                self.fh.discard()
            # fsspec's buffered files still flush on close/__del__ after a discard;
            # mark it closed so nothing is uploaded (or fails) later.
            self.fh.closed = True
        except Exception as exc:
            log.warning("could not discard the partial upload of %s: %s", self.where, exc)


@hookimpl
def backupkit_register_sinks(register: Register) -> None:
    register.sink(FsspecSink)


@hookimpl(trylast=True)
def backupkit_sink_for_url(url: str) -> tuple[str, dict[str, object]] | None:
    """Any URL whose protocol fsspec knows, except those the local and s3 sinks own."""
    scheme, sep, _ = url.partition("://")
    protocol = scheme.split("::")[0].lower() if sep else ""
    if protocol in _NOT_OURS:
        return None
    import fsspec  # noqa: PLC0415

    if protocol not in fsspec.available_protocols():
        return None
    return ("fsspec", {"url": url})
