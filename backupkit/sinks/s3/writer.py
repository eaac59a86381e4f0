"""The multipart writer: an artifact streamed into a multipart upload of parts that a
small thread pool uploads, with no local temporary copy (see :mod:`backupkit.sinks.s3`)."""

from __future__ import annotations

import base64
import logging
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from backupkit.errors import BackupkitError, SinkError
from backupkit.plugin import ArtifactWriter
from backupkit.sinks.s3.boto import boto_errors
from backupkit.sinks.s3.errors import code_of, one_line, status_of

log = logging.getLogger("backupkit.s3")

MiB = 1 << 20
LAYOUTS = ("tiered", "flat")
MAX_PARTS = 10_000  # S3's limit for one multipart upload
MAX_PART_SIZE = 5 * 1024 * MiB  # S3's limit for one part
PARTS_PER_SIZE = 1_000  # parts uploaded at one size before it doubles


def part_size_for(number: int, first: int) -> int:
    """The size of part *number* (from 1) of an upload whose first parts are *first*
    bytes: doubled every :data:`PARTS_PER_SIZE` parts, at most S3's 5 GiB. An artifact's
    size is not known until its end, and this lets the 10,000 parts S3 allows hold
    ``first * 1000 * 1023`` bytes (7.8 TiB for 8 MiB) while a small artifact's memory
    stays at *first*-sized parts."""
    return min(first << ((number - 1) // PARTS_PER_SIZE), MAX_PART_SIZE)
RESUME_ATTEMPTS = 3


class UploadTarget(Protocol):
    """What the writer needs of its sink."""

    @property
    def bucket(self) -> str: ...

    @property
    def part_size(self) -> int: ...

    @property
    def concurrency(self) -> int: ...

    @property
    def checksums(self) -> bool: ...

    @property
    def client(self) -> Any: ...

    def _error(self, exc: BaseException, permission: str, key: str | None = None) -> BackupkitError: ...

    def _url(self, key: str | None) -> str: ...

    def _put_object(self, key: str, data: bytes, args: dict[str, Any]) -> None: ...


class MultipartWriter(ArtifactWriter):
    """Streams an artifact into a multipart upload; invisible until ``commit``."""

    def __init__(self, sink: UploadTarget, key: str, object_key: str, args: dict[str, Any]) -> None:
        self.sink = sink
        self.key = key
        self.object_key = object_key
        self.args = args
        self.part_size = part_size_for(1, sink.part_size)  # of the part being filled
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[dict[str, Any]]] = []
        self._in_flight = 0  # parts being uploaded
        self._room = threading.Condition()  # notified when a part ends
        self._error: BaseException | None = None
        self._state = "open"
        self._sent = 0  # bytes handed to parts

    def write(self, data: bytes, /) -> int:
        if self._state != "open":
            raise SinkError(f"artifact {self.key} was already {self._state}")
        self._buf += data
        while len(self._buf) >= self.part_size:
            # hand the buffer itself to the upload (no copy); only the overshoot moves
            part, self._buf = self._buf, bytearray(self._buf[self.part_size :])
            del part[self.part_size :]
            self._send(part)
        return len(data)

    def _send(self, part: bytes | bytearray) -> None:
        self._check()
        if self._upload_id is None:
            self._start()
        number = len(self._futures) + 1
        if number > MAX_PARTS:
            raise SinkError(
                f"artifact {self.key} needs more than the {MAX_PARTS:,} parts an S3 multipart "
                f"upload allows; raise the sink's 'part_size' (now {self.sink.part_size:,} bytes)"
            )
        self.part_size = part_size_for(number + 1, self.sink.part_size)
        self._sent += len(part)
        with self._room:
            while self._in_flight >= self._max_in_flight(len(part)):
                self._room.wait()
            self._in_flight += 1
        assert self._pool is not None
        future = self._pool.submit(self._upload_part, number, part)
        future.add_done_callback(self._part_done)
        self._futures.append(future)

    def _start(self) -> None:
        try:
            response = self.sink.client.create_multipart_upload(
                Bucket=self.sink.bucket, Key=self.object_key, **self._checksum, **self.args
            )
        except boto_errors() as exc:
            raise self.sink._error(exc, "s3:PutObject", self.key) from None
        self._upload_id = response["UploadId"]
        self._pool = ThreadPoolExecutor(self.sink.concurrency, thread_name_prefix="backupkit-s3")

    @property
    def _checksum(self) -> dict[str, str]:
        return {"ChecksumAlgorithm": "CRC32"} if self.sink.checksums else {}

    def _upload_part(self, number: int, data: bytes | bytearray) -> dict[str, Any]:
        response = self.sink.client.upload_part(
            Bucket=self.sink.bucket,
            Key=self.object_key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
            **self._checksum,
        )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in response:  # S3-compatible stores may not return checksums
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        return part

    def _max_in_flight(self, size: int) -> int:
        """How many parts of *size* bytes may upload at once: ``concurrency`` first parts'
        worth of bytes, at least one part. Memory is that plus the part being filled, so it
        grows far slower than the parts (see the module docstring)."""
        return max(1, self.sink.concurrency * self.sink.part_size // size)

    def _part_done(self, future: Future[dict[str, Any]]) -> None:
        with self._room:
            self._in_flight -= 1
            self._room.notify_all()
        if not future.cancelled() and future.exception() is not None and self._error is None:
            self._error = future.exception()

    def _check(self) -> None:
        """Raise the first error of a part upload (in this, the writing, thread)."""
        if self._error is None:
            return
        if isinstance(self._error, boto_errors()):
            raise self.sink._error(self._error, "s3:PutObject", self.key) from None
        raise self._error

    def commit(self) -> None:
        if self._state != "open":
            raise SinkError(f"artifact {self.key} was already {self._state}")
        if self._upload_id is None:  # smaller than one part: a single PUT
            self.sink._put_object(self.key, bytes(self._buf), self.args)
        else:
            last, self._buf = self._buf, bytearray()
            if last:
                self._send(last)
            parts = []
            for future in self._futures:
                try:
                    parts.append(future.result())
                except boto_errors() as exc:
                    raise self.sink._error(exc, "s3:PutObject", self.key) from None
            try:
                self.sink.client.complete_multipart_upload(
                    Bucket=self.sink.bucket,
                    Key=self.object_key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                )
            except boto_errors() as exc:
                if not self._completed_before(exc, parts):
                    raise self.sink._error(exc, "s3:PutObject", self.key) from None
            self._shutdown()
        self._state = "committed"
        self._buf = bytearray()

    def _completed_before(self, exc: BaseException, parts: list[dict[str, Any]]) -> bool:
        """Whether a CompleteMultipartUpload that failed with *exc* had in fact succeeded.

        botocore resends it after a timeout or a reset even when the first attempt
        completed the upload; the retry then finds the key taken (412) or the upload gone
        (NoSuchUpload). The stored object is ours if its size, its number of parts and its
        composite CRC32 (the CRC32 of the parts' CRC32s) are those we sent.
        """
        if status_of(exc) != 412 and code_of(exc) != "NoSuchUpload":
            return False
        try:
            head = self.sink.client.head_object(
                Bucket=self.sink.bucket, Key=self.object_key, ChecksumMode="ENABLED"
            )
        except boto_errors():
            return False
        if head.get("ContentLength") != self._sent:
            return False
        if not str(head.get("ETag", "")).strip('"').endswith(f"-{len(parts)}"):
            return False
        stored, expected = head.get("ChecksumCRC32"), _composite_crc32(parts)
        # S3 appends "-<parts>" to a composite checksum; some stores (moto) do not
        if stored and expected and stored not in (expected, f"{expected}-{len(parts)}"):
            return False
        log.info(
            "%s was stored by an earlier attempt of CompleteMultipartUpload (%s)",
            self.sink._url(self.key), code_of(exc) or status_of(exc),
        )
        return True

    def abort(self) -> None:
        """Stop uploading and abort the multipart upload; never raises.

        Queued parts are cancelled and AbortMultipartUpload is sent at once, before waiting
        for the parts in flight (a SIGKILL during that wait must not leave the upload
        billing); then it is sent again for parts that finished meanwhile, as S3 advises.
        """
        if self._state != "open":
            return
        self._state = "aborted"
        self._buf = bytearray()
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._abort_upload(quiet=True)
        finally:
            self._shutdown()
            self._abort_upload(quiet=False)

    def _abort_upload(self, *, quiet: bool) -> None:
        if self._upload_id is None:
            return
        try:
            self.sink.client.abort_multipart_upload(
                Bucket=self.sink.bucket, Key=self.object_key, UploadId=self._upload_id
            )
        except Exception as exc:  # must not hide the error that made us abort
            if quiet or code_of(exc) == "NoSuchUpload":  # the first abort went through
                log.debug("abort of %s: %s", self.sink._url(self.key), one_line(exc))
                return
            log.warning(
                "could not abort the multipart upload of %s (%s); the next run or a bucket "
                "lifecycle rule (AbortIncompleteMultipartUpload) removes it",
                self.sink._url(self.key), one_line(exc),
            )

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _composite_crc32(parts: list[dict[str, Any]]) -> str | None:
    """S3's composite CRC32 of a multipart upload (without ``-<parts>``), or None if a part
    has no CRC32: base64 of the CRC32 of the parts' raw CRC32s, in order."""
    if not parts or not all("ChecksumCRC32" in part for part in parts):
        return None
    raw = b"".join(base64.b64decode(part["ChecksumCRC32"]) for part in parts)
    return base64.b64encode(zlib.crc32(raw).to_bytes(4, "big")).decode()
