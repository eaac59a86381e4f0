"""The contract every sink keeps, as a pytest suite to subclass.

A sink author writes one class::

    from backupkit.testing.sink_suite import SinkConformance

    class TestMySink(SinkConformance):
        @pytest.fixture
        def sink(self, tmp_path):
            return MySink(root=tmp_path)   # a fresh, empty sink for each test

and gets every test below: an artifact is invisible until committed, ``abort``
leaves nothing at any point, a failure in the middle of a large write leaves
nothing visible, small objects round-trip, listing by prefix, streaming reads,
idempotent deletes, and temporary data never listed. Tests run inside a run
(``begin_run`` ... ``end_run``), as the engine calls them.

An ``other_sink`` fixture, a second instance over the same storage (what another
process, such as a prune from cron, would build), adds the tests between two
instances; without it they are skipped::

        @pytest.fixture
        def other_sink(self, sink):
            return MySink(root=sink.root)
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from backupkit.core.manifest import MANIFEST_SUFFIX
from backupkit.errors import NotFoundError, SinkError
from backupkit.plugin import Sink

RUN_ID = "20240101T020000Z-c0ffee"
OTHER_RUN_ID = "20240101T020000Z-facade"


class SinkConformance:
    """Subclass it and provide a ``sink`` fixture returning a fresh, empty sink."""

    #: Bytes written by the "large" tests: more than one upload part / buffer of most
    #: sinks (the s3 sink's minimum part is 5 MiB). Lower it for very slow backends.
    large_size: int = 12 * (1 << 20) + 123

    @pytest.fixture
    def sink(self) -> Sink:
        raise NotImplementedError("subclasses provide a 'sink' fixture")

    @pytest.fixture
    def other_sink(self) -> Sink | None:
        """Override to return a second instance over ``sink``'s storage (another process)."""
        return None

    @pytest.fixture
    def other(self, other_sink: Sink | None) -> Sink:
        if other_sink is None:
            pytest.skip("no 'other_sink' fixture: a second instance over the same storage")
        return other_sink

    @pytest.fixture
    def run_id(self, sink: Sink) -> Iterator[str]:
        sink.begin_run(RUN_ID)
        try:
            yield RUN_ID
        finally:
            sink.end_run(RUN_ID)

    @staticmethod
    def store(sink: Sink, key: str, data: bytes, run_id: str, chunk: int = 1 << 20) -> None:
        writer = sink.open_artifact(key, run_id=run_id)
        for start in range(0, len(data), chunk):
            writer.write(data[start : start + chunk])
        writer.commit()

    @staticmethod
    def keys(sink: Sink, prefix: str = "") -> list[str]:
        return sorted(sink.list_keys(prefix))

    # -- artifacts ----------------------------------------------------------------------
    def test_committed_artifact_is_listed_and_readable(self, sink: Sink, run_id: str) -> None:
        self.store(sink, "daily/a.tar.zst", b"artifact bytes", run_id)
        assert self.keys(sink) == ["daily/a.tar.zst"]
        assert sink.get_bytes("daily/a.tar.zst") == b"artifact bytes"

    def test_artifact_is_invisible_until_commit(self, sink: Sink, run_id: str) -> None:
        writer = sink.open_artifact("daily/a.bin", run_id=run_id)
        writer.write(b"x" * 1000)
        assert self.keys(sink) == []
        with pytest.raises(NotFoundError):
            sink.get_bytes("daily/a.bin")
        writer.commit()
        assert self.keys(sink) == ["daily/a.bin"]

    def test_large_artifact_round_trips(self, sink: Sink, run_id: str) -> None:
        data = os.urandom(self.large_size)
        self.store(sink, "daily/big.bin", data, run_id)
        assert sink.get_bytes("daily/big.bin") == data

    def test_empty_artifact_round_trips(self, sink: Sink, run_id: str) -> None:
        self.store(sink, "daily/empty.bin", b"", run_id)
        assert sink.get_bytes("daily/empty.bin") == b""

    def test_abort_leaves_nothing(self, sink: Sink, run_id: str) -> None:
        writer = sink.open_artifact("daily/a.bin", run_id=run_id)
        writer.write(b"partial")
        writer.abort()
        writer.abort()  # twice is fine
        assert self.keys(sink) == []
        with pytest.raises(NotFoundError):
            sink.get_bytes("daily/a.bin")

    def test_abort_before_any_write_leaves_nothing(self, sink: Sink, run_id: str) -> None:
        sink.open_artifact("daily/a.bin", run_id=run_id).abort()
        assert self.keys(sink) == []

    def test_abort_after_commit_keeps_the_artifact(self, sink: Sink, run_id: str) -> None:
        writer = sink.open_artifact("daily/a.bin", run_id=run_id)
        writer.write(b"kept")
        writer.commit()
        writer.abort()
        assert sink.get_bytes("daily/a.bin") == b"kept"

    def test_failure_mid_write_leaves_nothing_visible(self, sink: Sink, run_id: str) -> None:
        writer = sink.open_artifact("daily/big.bin", run_id=run_id)
        chunk = os.urandom(1 << 20)
        with pytest.raises(RuntimeError, match="source died"):
            try:
                for _ in range(self.large_size // len(chunk)):
                    writer.write(chunk)
                raise RuntimeError("source died")
            except BaseException:
                writer.abort()  # what the engine does
                raise
        assert self.keys(sink) == []
        with pytest.raises(NotFoundError):
            sink.get_bytes("daily/big.bin")

    def test_list_excludes_temporary_data(self, sink: Sink, run_id: str) -> None:
        self.store(sink, "daily/done.bin", b"done", run_id)
        writer = sink.open_artifact("daily/pending.bin", run_id=run_id)
        writer.write(os.urandom(self.large_size))
        try:
            assert self.keys(sink) == ["daily/done.bin"]
        finally:
            writer.abort()

    def test_open_artifact_refuses_to_overwrite(self, sink: Sink, run_id: str) -> None:
        self.store(sink, "daily/a.bin", b"first", run_id)
        with pytest.raises(SinkError):
            self.store(sink, "daily/a.bin", b"second", run_id)
        assert sink.get_bytes("daily/a.bin") == b"first"

    def test_a_writer_never_replaces_an_artifact_committed_after_it_opened(
        self, sink: Sink, run_id: str
    ) -> None:
        other = OTHER_RUN_ID  # a second run, at once (two hosts, two sets)
        sink.begin_run(other)
        try:
            first = sink.open_artifact("daily/a.bin", run_id=run_id)
            second = sink.open_artifact("daily/a.bin", run_id=other)  # both saw no object
            first.write(b"first")
            second.write(b"second")
            first.commit()
            with pytest.raises(SinkError):
                second.commit()
            second.abort()
        finally:
            sink.end_run(other)
        assert sink.get_bytes("daily/a.bin") == b"first"
        assert self.keys(sink) == ["daily/a.bin"]

    # -- small objects ------------------------------------------------------------------
    def test_put_and_get_bytes(self, sink: Sink, run_id: str) -> None:
        sink.put_bytes("daily/x" + MANIFEST_SUFFIX, b'{"format": 1}\n', run_id=run_id)
        sink.put_bytes("logs/x.log", b"", run_id=run_id)
        assert sink.get_bytes("daily/x" + MANIFEST_SUFFIX) == b'{"format": 1}\n'
        assert sink.get_bytes("logs/x.log") == b""
        assert list(sink.list_manifest_keys()) == ["daily/x" + MANIFEST_SUFFIX]

    def test_get_bytes_of_missing_key_is_not_found(self, sink: Sink) -> None:
        with pytest.raises(NotFoundError):
            sink.get_bytes("daily/missing.bin")

    # -- listing, reading, deleting -----------------------------------------------------
    def test_list_with_prefix(self, sink: Sink, run_id: str) -> None:
        for key in ("host/daily/a", "host/daily/b", "host/weekly/c", "hostile/d", "other/e"):
            sink.put_bytes(key, key.encode(), run_id=run_id)
        assert self.keys(sink, "host/daily/") == ["host/daily/a", "host/daily/b"]
        assert self.keys(sink, "host/") == ["host/daily/a", "host/daily/b", "host/weekly/c"]
        assert self.keys(sink, "host") == [
            "host/daily/a", "host/daily/b", "host/weekly/c", "hostile/d",
        ]
        assert len(self.keys(sink)) == 5
        assert self.keys(sink, "nothing/") == []

    def test_open_read_streams(self, sink: Sink, run_id: str) -> None:
        data = os.urandom(3 * (1 << 20) + 7)
        self.store(sink, "daily/s.bin", data, run_id)
        pieces = []
        with sink.open_read("daily/s.bin") as fh:
            while piece := fh.read(256 * 1024):
                assert len(piece) <= 256 * 1024
                pieces.append(piece)
        assert len(pieces) > 1
        assert b"".join(pieces) == data

    def test_open_read_of_missing_key_is_not_found(self, sink: Sink) -> None:
        with pytest.raises(NotFoundError):
            sink.open_read("daily/missing.bin").read()

    def test_delete_is_idempotent(self, sink: Sink, run_id: str) -> None:
        for name in ("a", "b", "c"):
            sink.put_bytes(f"daily/{name}", b"x", run_id=run_id)
        sink.delete(["daily/a", "daily/b", "daily/never-existed"])
        assert self.keys(sink) == ["daily/c"]
        sink.delete(["daily/a", "daily/b"])
        sink.delete([])
        assert self.keys(sink) == ["daily/c"]

    def test_get_bytes_of_a_deleted_key_is_not_found(self, sink: Sink, run_id: str) -> None:
        # Prune and verify tell "gone" from "unreadable" by NotFoundError.
        self.store(sink, "daily/a.bin", b"x", run_id)
        sink.delete(["daily/a.bin"])
        with pytest.raises(NotFoundError):
            sink.get_bytes("daily/a.bin")

    def test_invalid_keys_are_refused(self, sink: Sink, run_id: str) -> None:
        for key in ("", "/abs", "a/../b", "a//b"):
            with pytest.raises(SinkError):
                sink.put_bytes(key, b"x", run_id=run_id)

    # -- two instances over the same storage (optional: the other_sink fixture) --------
    def test_a_writer_opened_before_another_instance_begins_a_run_still_commits(
        self, sink: Sink, other: Sink, run_id: str
    ) -> None:
        # The other instance's begin_run collects stale temp data: never a live run's.
        data = os.urandom(self.large_size)
        half = len(data) // 2
        writer = sink.open_artifact("daily/a.bin", run_id=run_id)
        writer.write(data[:half])
        other.begin_run(OTHER_RUN_ID)
        try:
            writer.write(data[half:])
            writer.commit()
        finally:
            writer.abort()  # a no-op after commit
            other.end_run(OTHER_RUN_ID)
        assert sink.get_bytes("daily/a.bin") == data
        assert other.get_bytes("daily/a.bin") == data

    def test_another_instance_sees_a_run_as_active_until_it_ends(
        self, sink: Sink, other: Sink
    ) -> None:
        # Prune in another process must not collect the artifacts of a run still going.
        sink.begin_run(RUN_ID)
        try:
            active = other.active_run_ids()
            assert active is None or RUN_ID in active, f"{RUN_ID} missing from {active}"
        finally:
            sink.end_run(RUN_ID)
        active = other.active_run_ids()
        assert active is None or RUN_ID not in active, f"{RUN_ID} still in {active}"

    def test_a_key_deleted_by_another_instance_is_not_found(
        self, sink: Sink, other: Sink, run_id: str
    ) -> None:
        self.store(sink, "daily/a.bin", b"x", run_id)
        other.delete(["daily/a.bin"])
        for instance in (sink, other):
            with pytest.raises(NotFoundError):
                instance.get_bytes("daily/a.bin")
        assert self.keys(sink) == []
