"""The base class every sink plugin (where backups are stored) derives from."""

from __future__ import annotations

import abc
import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

from backupkit.core.manifest import MANIFEST_SUFFIX
from backupkit.errors import AlreadyExistsError, ConfigError, SinkError
from backupkit.params import build, public_params

if TYPE_CHECKING:
    from backupkit.plugin.run import RunInfo


class ArtifactWriter(abc.ABC):
    """An artifact being stored: ``write`` many times, then ``commit`` or ``abort``.

    Nothing written is visible under its key until ``commit`` returns; ``abort``
    removes every trace and may be called at any point, also after ``commit`` failed.
    """

    @abc.abstractmethod
    def write(self, data: bytes, /) -> int: ...

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def abort(self) -> None: ...


class Sink(abc.ABC):
    """A store of artifacts, manifests and logs addressed by ``/``-separated keys.

    Subclasses are attrs classes whose fields are their parameters. They implement
    five primitives (open_artifact, get_bytes, open_read, list_keys, delete); the
    rest is derived here.
    """

    id: ClassVar[str]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Sink:
        return build(cls, params, what=f"sink {cls.id!r}")

    def describe(self) -> dict[str, Any]:
        return public_params(self)

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where this sink stores, for messages (never contains credentials)."""

    # -- primitives -------------------------------------------------------------
    @abc.abstractmethod
    def open_artifact(self, key: str, *, run_id: str) -> ArtifactWriter:
        """Start storing an artifact under *key*; invisible until committed."""

    def put_bytes(self, key: str, data: bytes, *, run_id: str) -> None:
        """Store a small object atomically (manifests, logs).

        Derived from :meth:`open_artifact`; sinks with a cheaper one-shot write override it.
        """
        writer = self.open_artifact(key, run_id=run_id)
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def create(self, key: str, data: bytes, *, run_id: str) -> bool:
        """Store *data* under *key* unless the key exists: True if this call created it.

        Atomic between processes and hosts where the store is (an exclusive create: a hard
        link on a local disk, ``If-None-Match: *`` on S3); replicas claim backup slots with
        it. Sinks whose ``put_bytes`` can replace an object must override this or leave
        coordination refused (the check writes a probe twice).
        """
        try:
            self.put_bytes(key, data, run_id=run_id)
        except AlreadyExistsError:
            return False
        return True

    def put_standalone(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Store a small object outside any backup (an audit entry, a slot claim, a probe):
        in a run of its own, begun and ended around the write. With *exclusive*, as
        :meth:`create`: False if the key exists. True once stored."""
        run_id = f"standalone-{uuid.uuid4().hex[:12]}"
        self.begin_run(run_id)
        try:
            if exclusive:
                return self.create(key, data, run_id=run_id)
            self.put_bytes(key, data, run_id=run_id)
            return True
        finally:
            self.end_run(run_id)

    def modified_at(self, key: str) -> dt.datetime:
        """When *key* was last written, by the store's clock (leases are judged by it).
        Sinks that cannot tell raise :class:`ConfigError` (coordination is then refused)."""
        raise ConfigError(f"sink {self.location} cannot tell when an object was written; "
                          "replicas cannot coordinate through it")

    def size_of(self, key: str) -> int | None:
        """The stored size of *key* in bytes, for status reports; ``None`` (the default)
        when the sink cannot tell cheaply. May raise ``OSError`` for a key that is gone."""
        return None

    def open_uploads(self) -> list[tuple[str, dt.datetime, int]]:
        """Uploads begun and neither completed nor aborted (S3 multipart uploads): key,
        start, bytes so far; for status reports. The default: none (a sink without them)."""
        return []

    def local_directory(self) -> str | None:
        """The directory of this machine's filesystem the sink stores in, if it has one
        (status checks the room left there); ``None``, the default, for remote stores."""
        return None

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read a small object whole."""

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """Open a stored object for streaming reads."""

    @abc.abstractmethod
    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Every published key starting with *prefix* (temporary files excluded)."""

    @abc.abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete *keys*; keys that do not exist are ignored."""

    # -- run lifecycle (optional) -----------------------------------------------
    def begin_run(self, run_id: str) -> None:
        """Called before a run stores anything; a place to collect stale temp data."""

    def end_run(self, run_id: str) -> None:
        """Called when a run ends, successful or not; remove its temporary data."""

    def active_run_ids(self) -> set[str] | None:
        """Ids of backups running against this sink now, or None if the sink cannot tell.

        Prune never collects their artifacts as orphans. For a sink that cannot tell,
        prune waits longer before it collects what a run may still be writing (see
        :mod:`backupkit.prune`).
        """
        return None

    # -- derived ------------------------------------------------------------------
    def check_key(self, key: str) -> str:
        """*key* if it is a key this sink may store (``/``-separated parts, none empty,
        ``.`` or ``..``); a :class:`SinkError` naming it otherwise. Every sink checks the
        keys it is given with this before it touches storage."""
        if not key or any(part in ("", ".", "..") for part in key.split("/")):
            raise SinkError(f"invalid key {key!r} for sink {self.location}")
        return key

    def key_for(self, tier: str, filename: str, *, run: RunInfo | None = None) -> str:
        """The key of a file of a backup in *tier* (the layout; sinks may override).

        *run* (host name, reason, start time, run id) is given by the engine for
        layouts that need it, e.g. the s3 sink's ``<hostname>/<tier>/<filename>``.
        """
        return f"{tier}/{filename}"

    def log_key(self, filename: str, *, run: RunInfo | None = None) -> str:
        return f"logs/{filename}"

    def presign(self, key: str, *, expires: int = 3600) -> str:
        """An expiring URL anyone can GET *key* with; sinks that can make one override this."""
        raise ConfigError(
            f"sink {self.location} cannot make download URLs; store backups in S3 "
            "(or another store with signed URLs) to use them"
        )

    def list_manifest_keys(self) -> Iterator[str]:
        return (k for k in self.list_keys() if k.endswith(MANIFEST_SUFFIX))
