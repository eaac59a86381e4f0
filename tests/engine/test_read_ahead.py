"""ReadAhead and CheckedReader: restore's reader thread hands over the same bytes, its
errors (again each time it is read), and stops."""

from __future__ import annotations

import gzip
import hashlib
import io
import threading
import time

import pytest

from backupkit.errors import IntegrityError, PluginError
from backupkit.streaming import CheckedReader, Digest, DigestReader, ReadAhead
from backupkit.transforms.gzip import GzipTransform


class Source(io.RawIOBase):
    """Bytes in small reads; raises *error* at the end instead of returning EOF."""

    def __init__(self, data: bytes, *, error: Exception | None = None, step: int = 7000) -> None:
        self.data, self.error, self.step = data, error, step
        self.pos = 0
        self.reads = 0

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        self.reads += 1
        if self.pos >= len(self.data):
            if self.error is not None:
                raise self.error
            return b""
        out = self.data[self.pos : self.pos + min(size, self.step)]
        self.pos += len(out)
        return out


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 50_000])
@pytest.mark.parametrize("read_size", [1, 100, 1024, 5000, -1])
def test_reads_give_back_the_source_bytes_in_order(size: int, read_size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    with ReadAhead(Source(data), name="t", chunk=1024, depth=2) as ahead:
        got = bytearray()
        while chunk := ahead.read(read_size):
            assert read_size < 0 or len(chunk) <= read_size
            got += chunk
        ahead.finish()
    assert bytes(got) == data


def test_an_error_at_the_end_reaches_the_reader_after_the_data() -> None:
    data = b"a" * 10_000
    error = IntegrityError("artifact x does not match its manifest checksum")
    with ReadAhead(Source(data, error=error), name="t", chunk=1024, depth=2) as ahead:
        got = bytearray()
        with pytest.raises(IntegrityError, match="artifact x"):
            while chunk := ahead.read(4096):
                got += chunk
    assert bytes(got) == data  # everything before the error was delivered


def test_finish_reads_what_the_reader_left_and_raises_its_error() -> None:
    source = Source(b"b" * 10_000, error=IntegrityError("bad"))
    ahead = ReadAhead(source, name="t", chunk=1024, depth=2)
    assert ahead.read(10) == b"b" * 10
    with pytest.raises(IntegrityError, match="bad"):
        ahead.finish()
    ahead.close()


def test_the_thread_stays_at_most_depth_chunks_ahead_and_close_stops_it() -> None:
    source = Source(b"c" * 1_000_000, step=1024)
    ahead = ReadAhead(source, name="backupkit-read-test", chunk=1024, depth=3)
    queue = ahead._pipe._queue
    deadline = time.monotonic() + 60  # a hang guard: an unbounded queue is never full
    while not queue.full() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert queue.full() and queue.maxsize == 3
    # depth queued chunks plus one the thread is blocked putting, whatever the timing
    assert 3 <= source.reads <= 5
    closer = threading.Thread(target=ahead.close)
    closer.start()
    closer.join(timeout=60)  # a hang guard
    assert not closer.is_alive()
    assert not any(t.name == "backupkit-read-test" for t in threading.enumerate())
    assert source.pos < 1_000_000


def checked_reader(stored: bytes, expected: bytes) -> CheckedReader:
    """The reader restore hands on: *stored* bytes, no transforms, checked against *expected*."""
    reader = DigestReader(io.BytesIO(stored))
    digest = (len(expected), hashlib.sha256(expected).hexdigest())
    return CheckedReader(reader, Digest(), reader, expect_raw=digest, expect_stored=digest, label="artifact x")


def test_an_error_is_raised_again_by_every_later_read_and_finish() -> None:
    good = b"a" * 100_000
    with ReadAhead(checked_reader(good[:-1] + b"b", good), name="t", chunk=1024, depth=2) as ahead:
        with pytest.raises(IntegrityError, match="artifact x") as first:
            while ahead.read(4096):
                pass
        for again in (lambda: ahead.read(10), lambda: ahead.read(), ahead.finish):
            with pytest.raises(IntegrityError) as later:
                again()
            assert later.value is first.value


def test_a_failed_check_fails_again_and_never_counts_as_checked() -> None:
    good = b"a" * 5000
    reader = checked_reader(good[:-1] + b"b", good)
    with pytest.raises(IntegrityError, match="does not match") as first:
        while reader.read(1000):
            pass
    assert not reader.checked
    for again in (lambda: reader.read(10), reader.check):
        with pytest.raises(IntegrityError) as later:
            again()
        assert later.value is first.value
    assert not reader.checked


def test_a_decoding_error_is_raised_again_not_read_past() -> None:
    raw = bytes(range(256)) * 200
    good = gzip.compress(raw, mtime=0)
    stored = DigestReader(io.BytesIO(good[:100] + bytes(50) + good[150:]))
    digest = (len(raw), hashlib.sha256(raw).hexdigest())
    reader = CheckedReader(
        GzipTransform().decoder(stored), Digest(), stored, expect_raw=digest,
        expect_stored=(len(good), hashlib.sha256(good).hexdigest()), label="artifact x",
    )
    with pytest.raises(IntegrityError, match="cannot be decoded") as first:
        while reader.read(1000):
            pass
    with pytest.raises(IntegrityError) as later:
        reader.read(1000)
    assert later.value is first.value


@pytest.mark.parametrize("moved_on", ["finish", "close", "finish and close"])
@pytest.mark.parametrize("read_size", [10, 0, -1])
def test_a_read_after_the_restore_moved_on_is_an_error_not_an_empty_stream(moved_on: str, read_size: int) -> None:
    good = b"a" * 10_000
    ahead = ReadAhead(checked_reader(good, good), name="t", chunk=1024, depth=2)
    if "finish" in moved_on:
        ahead.finish()
        ahead.finish()  # idempotent
    if "close" in moved_on:
        ahead.close()
    outcome: list[object] = []

    def attempt() -> None:
        try:
            outcome.append(ahead.read(read_size))
        except PluginError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=attempt, daemon=True)  # a read once blocked for ever
    reader.start()
    reader.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], PluginError), outcome
    assert "artifact x was read after the restore moved on to the next stream" in str(outcome[0])
    ahead.close()
