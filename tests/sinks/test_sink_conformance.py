"""Every built-in sink passes the conformance suite plugin authors use."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar

import attrs
import fsspec
import pytest

from backupkit.errors import NotFoundError, SinkError
from backupkit.plugin import ArtifactWriter, Sink
from backupkit.sinks.fsspec import FsspecSink
from backupkit.sinks.local import LocalSink
from backupkit.sinks.s3 import S3Sink
from backupkit.testing.s3server import S3Server, s3, s3_server  # noqa: F401
from backupkit.testing.sink_suite import RUN_ID, SinkConformance

MiB = 1 << 20


class TestLocalSink(SinkConformance):
    @pytest.fixture
    def sink(self, tmp_path: Path) -> Sink:
        return LocalSink(tmp_path / "backups")

    @pytest.fixture
    def other_sink(self, tmp_path: Path) -> Sink:
        return LocalSink(tmp_path / "backups")


@pytest.mark.integration
class TestS3Sink(SinkConformance):
    @pytest.fixture
    def sink(self, s3: S3Server) -> Sink:  # noqa: F811
        s3.create_bucket("conformance")
        return S3Sink(bucket="conformance", prefix="suite", part_size=5 * MiB)

    @pytest.fixture
    def other_sink(self, sink: Sink) -> Sink:
        return S3Sink(bucket="conformance", prefix="suite", part_size=5 * MiB)

    @pytest.mark.xfail(
        raises=SinkError,
        reason="moto lists every multipart upload as initiated on 2010-11-10, so the other "
        "instance's begin_run aborts the live one as stale (older than STALE_UPLOAD_AGE); "
        "real S3 reports the true time",
    )
    def test_a_writer_opened_before_another_instance_begins_a_run_still_commits(
        self, sink: Sink, other: Sink, run_id: str
    ) -> None:
        super().test_a_writer_opened_before_another_instance_begins_a_run_still_commits(
            sink, other, run_id
        )


class TestFsspecMemorySink(SinkConformance):
    @pytest.fixture
    def sink(self) -> Iterator[Sink]:
        url = f"memory://conformance-{uuid.uuid4().hex}"
        yield FsspecSink(url)
        memory = fsspec.filesystem("memory")
        if memory.exists(url):
            memory.rm(url, recursive=True)

    @pytest.fixture
    def other_sink(self, sink: FsspecSink) -> Sink:
        return FsspecSink(sink.url)  # fsspec's memory filesystem is one per process


class TestFsspecFileSink(SinkConformance):
    @pytest.fixture
    def sink(self, tmp_path: Path) -> Sink:
        return FsspecSink(f"file://{tmp_path}/backups")

    @pytest.fixture
    def other_sink(self, tmp_path: Path) -> Sink:
        return FsspecSink(f"file://{tmp_path}/backups")


@pytest.mark.integration
class TestFsspecS3Sink(SinkConformance):
    """s3fs through the generic sink: publishes by transaction (multipart commit/discard)."""

    @pytest.fixture
    def sink(self, s3: S3Server) -> Sink:  # noqa: F811
        s3.create_bucket("conformance")
        return FsspecSink("s3://conformance/fs", storage_options={"skip_instance_cache": True})

    @pytest.fixture
    def other_sink(self, sink: Sink) -> Sink:
        return FsspecSink("s3://conformance/fs", storage_options={"skip_instance_cache": True})


# -- the two-instance tests catch a sink that only knows its own runs -------------------------
@attrs.define
class _Storage:
    done: dict[str, bytes] = attrs.field(factory=dict)
    temp: dict[tuple[str, str], bytearray] = attrs.field(factory=dict)


@attrs.define
class _Writer(ArtifactWriter):
    storage: _Storage
    key: str
    run_id: str

    def write(self, data: bytes, /) -> int:
        self.storage.temp.setdefault((self.run_id, self.key), bytearray()).extend(data)
        return len(data)

    def commit(self) -> None:
        if (data := self.storage.temp.pop((self.run_id, self.key), None)) is None:
            raise SinkError(f"temp data of {self.key} vanished")
        self.storage.done[self.key] = bytes(data)

    def abort(self) -> None:
        self.storage.temp.pop((self.run_id, self.key), None)


@attrs.define
class _OwnRunsOnlySink(Sink):
    """begin_run collects every run's temp data but its own; active_run_ids knows only its own."""

    id: ClassVar[str] = "own-runs-only"
    storage: _Storage
    runs: set[str] = attrs.field(factory=set)
    location: str = "own-runs-only://"

    def open_artifact(self, key: str, *, run_id: str) -> ArtifactWriter:
        return _Writer(self.storage, key, run_id)

    def put_bytes(self, key: str, data: bytes, *, run_id: str) -> None:
        self.storage.done[key] = bytes(data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.storage.done[key]
        except KeyError:
            raise NotFoundError(key) from None

    def open_read(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get_bytes(key))

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in self.storage.done if k.startswith(prefix)))

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.storage.done.pop(key, None)

    def begin_run(self, run_id: str) -> None:
        for stale in [k for k in self.storage.temp if k[0] not in self.runs]:
            del self.storage.temp[stale]
        self.runs.add(run_id)

    def end_run(self, run_id: str) -> None:
        self.runs.discard(run_id)

    def active_run_ids(self) -> set[str]:
        return set(self.runs)


def test_the_suite_fails_a_sink_whose_begin_run_takes_another_instances_live_data() -> None:
    storage = _Storage()
    sink, other = _OwnRunsOnlySink(storage), _OwnRunsOnlySink(storage)
    suite = TestLocalSink()
    suite.large_size = 1000
    sink.begin_run(RUN_ID)
    with pytest.raises(AssertionError):  # the commit stored only the second half
        suite.test_a_writer_opened_before_another_instance_begins_a_run_still_commits(
            sink, other, RUN_ID
        )
    sink.end_run(RUN_ID)
    with pytest.raises(AssertionError, match="missing from set()"):
        suite.test_another_instance_sees_a_run_as_active_until_it_ends(sink, other)
