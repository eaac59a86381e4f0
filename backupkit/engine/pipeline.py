"""One stream through the transform chain, both ways: a source's bytes into a sink's
writer (compress, then encrypt, both ends hashed), and a stored artifact back out,
decoded and checked against its manifest."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Self

from backupkit.core.manifest import Artifact, Manifest
from backupkit.engine.runlog import working_for
from backupkit.errors import BackupkitError, IntegrityError, SinkError
from backupkit.plugin import ArtifactWriter, Sink, Transform
from backupkit.streaming import (
    Cancelled,
    CheckedReader,
    ChunkPipe,
    Digest,
    DigestReader,
    DigestWriter,
)

if TYPE_CHECKING:
    from backupkit.engine.parts import Parts


def chunks(fh: Any, digest: Digest, size: int = 1 << 20) -> Iterator[bytes]:
    """*fh*'s bytes in chunks, each added to *digest* as it passes."""
    for chunk in iter(lambda: fh.read(size), b""):
        digest.update(chunk)
        yield chunk


class Closing:
    """A checked reader that also closes the stored object it reads from."""

    def __init__(self, reader: CheckedReader, fh: Any) -> None:
        self.reader, self.fh = reader, fh

    def read(self, size: int = -1) -> bytes:
        return self.reader.read(size)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Read what the source left (so the checksums are compared: a source that
        reads only a header must not build on a damaged sidecar), then close."""
        try:
            while self.reader.read(1 << 20):
                pass
        finally:
            self.fh.close()

    def __enter__(self) -> Closing:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # the source failed: its error, not a check of the rest, is what counts
            self.fh.close()


def sink_error(exc: OSError, sink: Sink, key: str) -> BackupkitError:
    """A sink plugin's bare ``OSError``, translated at the engine's boundary."""
    if isinstance(exc, BackupkitError):
        return exc
    hint = (
        "the disk is full; free space or choose another sink"
        if exc.errno == errno.ENOSPC
        else exc.strerror or str(exc)
    )
    err = SinkError(f"cannot store {key} in sink {sink.location}: {hint}")
    err.errno = exc.errno
    return err


class SidecarStream:
    """A sidecar stored while its source still writes it: a pipe of its own, drained
    through the transform chain into its artifact by a thread of its own, so memory stays
    flat however big the sidecar gets and its compression overlaps the main stream."""

    def __init__(self, chain: list[Transform], key: str, writer: ArtifactWriter, run_id: str) -> None:
        self.key, self.writer, self.run_id = key, writer, run_id
        self.raw = Digest()
        self.pipe = ChunkPipe(digest=self.raw)
        self.stored: Digest | None = None  # set once the artifact is committed
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(chain,), name=f"backupkit-sidecar-{key}", daemon=True
        )
        try:
            self._thread.start()
        except BaseException:  # no thread (out of resources): nothing may stay half-written
            writer.abort()
            raise

    def _run(self, chain: list[Transform]) -> None:
        working_for(self.run_id)
        try:
            self.stored = encode(self.pipe, chain, self.writer, raw=self.raw)
        except BaseException as exc:  # noqa: BLE001 - the engine's thread raises it
            self.error = exc
            self.pipe.cancel()  # the source's next write to this sidecar fails, and it stops
            self.writer.abort()

    def wait(self) -> None:
        """Wait until the sidecar is stored or has failed."""
        self._thread.join()


class SidecarFile:
    """What a source gets from ``open_sidecar``: a write-only file over the sidecar's pipe.
    ``close`` does nothing: the engine ends the stream once the source returns."""

    def __init__(self, pipe: ChunkPipe) -> None:
        self._pipe = pipe
        self.closed = False

    def write(self, data: bytes, /) -> int:
        return self._pipe.write(data)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def caused_by_cancel(exc: BaseException) -> bool:
    """Whether *exc* is, or was raised while handling, a pipe's cancellation."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, Cancelled):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class SinkWriter(ArtifactWriter):
    """Wraps a sink's writer so its bare ``OSError`` (a full disk) is a :class:`SinkError`,
    not mistaken for a failing source."""

    def __init__(self, writer: ArtifactWriter, sink: Sink, key: str) -> None:
        self.writer, self.sink, self.key = writer, sink, key

    def write(self, data: bytes, /) -> int:
        try:
            return self.writer.write(data)
        except OSError as exc:
            raise sink_error(exc, self.sink, self.key) from None

    def commit(self) -> None:
        try:
            self.writer.commit()
        except OSError as exc:
            raise sink_error(exc, self.sink, self.key) from None

    def abort(self) -> None:
        self.writer.abort()


def encode(
    data: Iterable[bytes],
    chain: list[Transform],
    writer: ArtifactWriter,
    on_chunk: Callable[[DigestWriter], None] | None = None,
    *,
    raw: Digest,
) -> Digest:
    """Push *data* (whose digest is *raw*) through *chain* into *writer*; commit it;
    return the stored digest. With no transforms the stored bytes are the raw
    bytes, and are not hashed a second time."""
    stored = DigestWriter(writer, Digest(same_as=raw) if not chain else None)
    encoders = []
    out: Any = stored
    for transform in reversed(chain):
        out = transform.encoder(out)
        encoders.append(out)
    encoders.reverse()
    for chunk in data:
        out.write(chunk)
        if on_chunk is not None:
            on_chunk(stored)
    for encoder in encoders:  # compressors flush into encryptors, which are still open
        encoder.close()
    writer.commit()
    return stored.digest


def open_checked(
    parts: Parts,
    sink: Sink,
    manifest: Manifest,
    artifact: Artifact,
    on_read: Callable[[int], None] | None,
) -> tuple[CheckedReader, Any]:
    """Open a stored artifact for reading: decoded through its recorded chain, and
    checked against its manifest (sizes, both checksums) at its end. Returns the reader
    and the stored object, which the caller closes."""
    chain = parts.transforms(artifact.transforms, f"backup {manifest.id}")
    fh = sink.open_read(artifact.key)
    stored = DigestReader(fh)
    stream: Any = stored
    for transform in reversed(chain):
        stream = transform.decoder(stream)
    checked = CheckedReader(
        stream,
        Digest(),
        stored,
        expect_raw=(artifact.raw_size, artifact.raw_sha256),
        expect_stored=(artifact.stored_size, artifact.stored_sha256),
        label=f"artifact {artifact.name} of backup {manifest.id} ({artifact.key})",
        on_read=on_read,
    )
    return checked, fh


def check_stored(sink: Sink, manifest: Manifest, artifact: Artifact) -> None:
    """Compare an artifact's stored bytes with its manifest, without decoding them."""
    digest = Digest()
    with sink.open_read(artifact.key) as fh:
        for _ in chunks(fh, digest):
            pass
    if (digest.size, digest.hexdigest()) != (artifact.stored_size, artifact.stored_sha256):
        raise IntegrityError(
            f"artifact {artifact.name} of backup {manifest.id} ({artifact.key}) does not "
            f"match its manifest checksum (stored bytes changed: {digest.size} bytes read, "
            f"{artifact.stored_size} recorded); it was damaged or tampered with, restore "
            "an older backup"
        )
