"""The streaming reader of a stored object: a GET read in pieces, resumed where it broke
off, and checked against the object it began with."""

from __future__ import annotations

import io
import logging
from typing import Any, Protocol

from backupkit.errors import BackupkitError
from backupkit.sinks.s3.boto import boto_errors
from backupkit.sinks.s3.writer import RESUME_ATTEMPTS

log = logging.getLogger("backupkit.s3")


class ReadTarget(Protocol):
    """What the reader needs of its sink."""

    @property
    def bucket(self) -> str: ...

    @property
    def client(self) -> Any: ...

    def _error(self, exc: BaseException, permission: str, key: str | None = None) -> BackupkitError: ...

    def _object_key(self, key: str) -> str: ...

    def _url(self, key: str | None) -> str: ...


class ObjectReader(io.RawIOBase):
    """A streaming GET that resumes with a Range request if the connection drops."""

    #: What a read retries on (a broken connection), before it gives up.
    retried: tuple[type[BaseException], ...]

    def __init__(self, sink: ReadTarget, key: str) -> None:
        super().__init__()
        self.sink = sink
        self.key = key
        self.retried = (*boto_errors(), OSError)
        self._pos = 0
        self._etag: str | None = None
        self._size: int | None = None  # from the first GET: the end of the object
        self._body = self._get()

    def _get(self) -> Any:
        args: dict[str, Any] = {}
        if self._etag is not None:
            args = {"Range": f"bytes={self._pos}-", "IfMatch": self._etag}
        try:
            response = self.sink.client.get_object(
                Bucket=self.sink.bucket, Key=self.sink._object_key(self.key), **args
            )
        except boto_errors() as exc:
            raise self.sink._error(exc, "s3:GetObject", self.key) from None
        if self._etag is None:
            self._size = response.get("ContentLength")
        self._etag = response["ETag"]
        return response["Body"]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        for attempt in range(RESUME_ATTEMPTS + 1):
            try:
                data: bytes = self._body.read(None if size is None or size < 0 else size)
            except self.retried as exc:
                if self._pos == self._size:  # dropped after the last byte: nothing to resume
                    return b""
                if attempt == RESUME_ATTEMPTS or isinstance(exc, BackupkitError):
                    raise self.sink._error(exc, "s3:GetObject", self.key) from None
                log.info("resuming %s at byte %d: %s", self.sink._url(self.key), self._pos, exc)
                self._body.close()
                self._body = self._get()
                continue
            self._pos += len(data)
            return data
        raise AssertionError("unreachable")

    def close(self) -> None:
        body = getattr(self, "_body", None)  # None if the GET itself failed
        if body is not None and not self.closed:
            body.close()
        super().close()
