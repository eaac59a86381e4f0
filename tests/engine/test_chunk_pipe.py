"""ChunkPipe: the bytes written come out in order, in items of at most one chunk,
hashed on the producer side, however the writes are sized or typed."""

from __future__ import annotations

import hashlib
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from backupkit.streaming import ChunkPipe, Digest

CHUNK = 64

WRITES = st.lists(
    st.tuples(st.binary(max_size=5 * CHUNK), st.sampled_from(["bytes", "bytearray", "memoryview"])),
    max_size=40,
)


def _drain(pipe: ChunkPipe, writes: list[tuple[bytes, str]]) -> list[bytes]:
    """Write from another thread (as a source does) while this one reads."""

    def produce() -> None:
        try:
            scratch = bytearray()
            for data, kind in writes:
                if kind == "bytes":
                    pipe.write(data)
                else:
                    scratch[:] = data  # one buffer, reused: the pipe must have copied it
                    pipe.write(scratch if kind == "bytearray" else memoryview(scratch))
                    scratch[:] = b"\xff" * len(scratch)
            pipe.finish()
        except BaseException as exc:  # noqa: BLE001 - the reading side raises it
            pipe.fail(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    items = list(pipe)
    thread.join(timeout=60)
    assert not thread.is_alive()
    return items


@settings(max_examples=200, deadline=None)
@given(WRITES)
def test_items_are_the_writes_in_order_bounded_and_hashed(writes: list[tuple[bytes, str]]) -> None:
    digest = Digest()
    pipe = ChunkPipe(chunk=CHUNK, depth=2, digest=digest)
    items = _drain(pipe, writes)
    expected = b"".join(data for data, _ in writes)
    assert b"".join(items) == expected
    assert all(0 < len(item) <= CHUNK for item in items)
    assert all(isinstance(item, bytes) for item in items)
    assert digest.size == len(expected)
    assert digest.hexdigest() == hashlib.sha256(expected).hexdigest()


def test_small_writes_are_gathered_into_chunk_sized_items() -> None:
    pipe = ChunkPipe(chunk=CHUNK, depth=100)
    items = _drain(pipe, [(b"ab", "bytes")] * 100)  # 200 bytes in 2-byte writes
    assert [len(i) for i in items] == [64, 64, 64, 8]


def test_a_big_immutable_piece_is_queued_without_a_copy() -> None:
    pipe = ChunkPipe(chunk=CHUNK, depth=4)
    piece = bytes(range(48))  # at least half a chunk
    pipe.write(b"x")
    pipe.write(piece)
    pipe.finish()
    items = list(pipe)
    assert items == [b"x", piece] and items[1] is piece


def test_a_failure_reaches_the_reader_after_the_bytes_before_it() -> None:
    digest = Digest()
    pipe = ChunkPipe(chunk=CHUNK, depth=4, digest=digest)
    pipe.write(b"a" * 10)
    pipe.write(b"b" * 40)
    pipe.fail(OSError("disk gone"))
    got = []
    try:
        for item in pipe:  # the items before the error are what is checked
            got.append(item)  # noqa: PERF402
    except OSError as exc:
        assert str(exc) == "disk gone"
    else:
        raise AssertionError("the failure was not raised")
    assert b"".join(got) == b"a" * 10 + b"b" * 40
    assert digest.hexdigest() == hashlib.sha256(b"".join(got)).hexdigest()
