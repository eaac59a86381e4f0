"""Bounded-memory plumbing between a source thread and the transform/sink thread.

A backup reads its source in one thread and compresses, encrypts and stores in
another; between them sits a :class:`ChunkPipe` holding at most ``depth`` chunks
of ``chunk`` bytes, so memory stays flat at any data size while reading,
compressing and writing overlap (zstd, zlib, hashlib and file I/O release the GIL).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from backupkit.errors import BackupkitError, IntegrityError, PluginError

CHUNK = 1 << 20
DEPTH = 4
_DONE = object()


class Cancelled(BackupkitError):
    """The consumer side of a pipe gave up; the producer stops writing."""


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ChunkPipe:
    """A writer in one thread, an iterator of chunks in another; bounded in between.

    With a *digest*, every byte written is hashed on the producer side, as it is
    queued: the consumer (compressing, encrypting, storing) is usually the busier.
    """

    def __init__(self, chunk: int = CHUNK, depth: int = DEPTH, *, digest: Digest | None = None) -> None:
        self.chunk = chunk
        self._digest = digest
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._small: list[bytes] = []  # small writes, joined into one item once they fill a chunk
        self._small_size = 0
        self._cancelled = threading.Event()

    # producer side
    def write(self, data: bytes) -> int:
        """Queue *data*: small writes gathered into items of at most ``chunk`` bytes
        (one copy, by a join), a big immutable piece as it is (no copy), and never
        more than ``chunk`` bytes in one item, however big the write: otherwise
        ``depth`` items of a source's 100 MB writes would be 400 MB."""
        n = len(data) if isinstance(data, (bytes, bytearray)) else memoryview(data).nbytes
        if n < self.chunk // 2:
            if not n:
                return 0
            if self._small_size + n > self.chunk:
                self._put_small()
            # A mutable buffer may be reused by the writer as soon as this returns.
            self._small.append(data if isinstance(data, bytes) else bytes(data))
            self._small_size += n
            return n
        self._put_small()
        if n <= self.chunk and isinstance(data, bytes):
            self._put_data(data)
            return n
        view = memoryview(data).cast("B")
        for start in range(0, n, self.chunk):
            self._put_data(bytes(view[start : start + self.chunk]))
        return n

    def _put_small(self) -> None:
        if self._small:
            data = b"".join(self._small)
            self._small.clear()  # first: a failure while queueing must not queue them twice
            self._small_size = 0
            self._put_data(data)

    def _put_data(self, data: bytes) -> None:
        self._put(data)
        if self._digest is not None:  # only what was queued
            self._digest.update(data)

    def flush(self) -> None:
        """Nothing to do: a source's writer wrapped around the pipe may call it."""

    def finish(self) -> None:
        """End the stream: the reader sees its end once it has read what is queued."""
        self._put_small()
        self._put(_DONE)

    def fail(self, error: BaseException) -> None:
        """Hand *error* to the consumer, after the bytes written before it."""
        try:
            self._put_small()
            self._put(_Failed(error))
        except Cancelled:
            pass

    def _put(self, item: Any) -> None:
        while True:
            if self._cancelled.is_set():
                raise Cancelled("backup cancelled")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # consumer side
    def cancel(self) -> None:
        """Stop the stream from the reading side: the writer's next write raises."""
        self._cancelled.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item


class ReadAhead:
    """Reads *inp* to its end in a thread, up to ``depth`` chunks ahead of the reader.

    Restore uses it so decompression, decryption and both checksums run beside the
    extraction instead of between its reads (zstd, the AEAD and hashlib release the
    GIL). The end of the stream reaches the reader only after *inp* has returned its
    end, so a check *inp* makes there (:class:`CheckedReader`) happens first; its
    errors are raised in the reader's thread, and again by every later read and
    :meth:`finish`, never followed by what looks like a clean end of stream.

    After :meth:`finish` or :meth:`close` (the restore moved on to the next stream of
    a chain) a read is a :class:`~backupkit.errors.PluginError`, not an empty stream:
    a source that kept a stream past its turn would otherwise restore nothing from it
    and report success.
    """

    #: Reads are served from whole chunks held in memory: a reader need not buffer them.
    buffered = True

    def __init__(self, inp: Any, *, name: str, chunk: int = CHUNK, depth: int = DEPTH) -> None:
        self._label: str = getattr(inp, "label", name)  # a CheckedReader names its artifact
        self._finished = self._closed = False  # then reads are a plugin's bug
        self._pipe = ChunkPipe(chunk, depth)
        self._chunks = iter(self._pipe)
        self._data, self._pos = b"", 0  # the chunk being read, and how far
        self._error: BaseException | None = None  # raised again by every later read
        self._thread = threading.Thread(target=self._produce, args=(inp,), name=name, daemon=True)
        self._thread.start()

    def _produce(self, inp: Any) -> None:
        try:
            while data := inp.read(self._pipe.chunk):
                self._pipe.write(data)
            self._pipe.finish()
        except Cancelled:
            pass
        except BaseException as exc:  # raised again in the reader's thread
            self._pipe.fail(exc)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._error is not None:
            raise self._error
        if self._finished or self._closed:
            raise PluginError(
                f"{self._label} was read after the restore moved on to the next stream; "
                "a source must read each stream of a chain before it takes the next"
            )
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        while self._pos >= len(self._data):
            try:
                data = next(self._chunks, None)
            except BaseException as exc:  # the stream is broken: never an end of stream after it
                self._error = exc
                raise
            if data is None:
                return b""
            self._data, self._pos = data, 0
        if self._pos == 0 and size >= len(self._data):
            self._pos = len(self._data)
            return self._data  # a whole chunk: no copy
        out = self._data[self._pos : self._pos + size]
        self._pos += len(out)
        return out

    def finish(self) -> None:
        """Read to the end (raising what the reading thread raised), then join it;
        idempotent. Reads after it are refused."""
        if self._finished:
            return
        while self.read(CHUNK):
            pass
        self._thread.join()
        self._finished = True

    def close(self) -> None:
        """Stop the reading thread early (the reader gave up); idempotent. Reads after
        it are refused."""
        self._closed = True
        self._pipe.cancel()
        self._thread.join()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Digest:
    """sha256 and byte count of a stream.

    ``Digest(same_as=other)`` counts bytes but takes its sha256 from *other*: for a
    stream known to carry the same bytes (stored bytes with no transforms), so they
    are not hashed twice.
    """

    def __init__(self, *, same_as: Digest | None = None) -> None:
        self._hash = hashlib.sha256() if same_as is None else None
        self._same_as = same_as
        self.size = 0

    def update(self, data: bytes) -> None:
        """Add *data* to the running size and sha256."""
        if self._hash is not None:
            self._hash.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        """The sha256 of everything added, in hex."""
        if self._same_as is not None:
            return self._same_as.hexdigest()
        assert self._hash is not None
        return self._hash.hexdigest()


class DigestWriter:
    """Passes writes on to *out*, hashing and counting them."""

    def __init__(self, out: Any, digest: Digest | None = None) -> None:
        self.out = out
        self.digest = digest or Digest()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        pass


class DigestReader:
    """Reads from *inp*, hashing and counting what passes."""

    def __init__(self, inp: Any, digest: Digest | None = None) -> None:
        self.inp = inp
        self.digest = digest or Digest()
        self.eof = False

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.inp.read(size)
        if data:
            self.digest.update(data)
        elif size != 0:
            self.eof = True
        return data

    def readable(self) -> bool:
        return True


class CheckedReader:
    """The decoded stream handed to a source's restore.

    Errors of the decoders (corrupt compressed data, failed authentication) become
    :class:`IntegrityError`; at end of stream both checksums and sizes are compared
    with the manifest, before the source makes anything visible.
    """

    def __init__(
        self,
        decoded: Any,
        raw: Digest,
        stored: DigestReader,
        *,
        expect_raw: tuple[int, str],
        expect_stored: tuple[int, str],
        label: str,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self.decoded = decoded
        self.raw = raw
        self.stored = stored
        self.expect_raw = expect_raw
        self.expect_stored = expect_stored
        self.label = label
        self.on_read = on_read
        self.checked = False  # both checksums compared, and they matched
        self._error: BaseException | None = None  # raised again by every later read or check

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._error is not None:
            raise self._error
        try:
            data = self._decode(size)
        except BaseException as exc:
            self._error = exc
            raise
        if data:
            self.raw.update(data)
            if self.on_read is not None:
                self.on_read(len(data))
        elif size != 0:
            self.check()
        return data

    def _decode(self, size: int) -> bytes:
        try:
            data: bytes = self.decoded.read(size)
        except IntegrityError as exc:  # a decoder's own check (AEAD): say which artifact
            raise IntegrityError(f"{self.label}: {exc}; restore an older backup") from None
        except BackupkitError:
            raise
        except Exception as exc:  # zstd/gzip/AEAD errors mean the stored bytes are bad
            raise IntegrityError(
                f"{self.label} is corrupt and cannot be decoded ({type(exc).__name__}: {exc}); "
                "restore an older backup"
            ) from None
        return data

    def check(self) -> None:
        """Compare checksums; reads any stored bytes the decoders left over.

        A failed check (or read) fails again each time it is repeated: a source that
        catches the error and reads or checks on must not see a clean end of stream.
        """
        if self._error is not None:
            raise self._error
        if self.checked:
            return
        try:
            self._compare()
        except BaseException as exc:
            self._error = exc
            raise
        self.checked = True

    def _compare(self) -> None:
        while self.stored.read(CHUNK):
            pass
        if (self.stored.digest.size, self.stored.digest.hexdigest()) != self.expect_stored:
            raise IntegrityError(
                f"{self.label} does not match its manifest checksum (stored bytes changed: "
                f"{self.stored.digest.size} bytes read, {self.expect_stored[0]} recorded); "
                "it was damaged or tampered with, restore an older backup"
            )
        if (self.raw.size, self.raw.hexdigest()) != self.expect_raw:
            raise IntegrityError(
                f"{self.label} decodes to data that does not match its manifest checksum; "
                "it was damaged or tampered with, restore an older backup"
            )
