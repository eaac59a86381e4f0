"""Every built-in sink passes the conformance suite plugin authors use."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from backupkit.sinks.base import Sink
from backupkit.sinks.fsspec import FsspecSink
from backupkit.sinks.local import LocalSink
from backupkit.sinks.s3 import S3Sink
from backupkit.testing.s3server import S3Server, s3, s3_server  # noqa: F401
from backupkit.testing.sink_suite import SinkConformance

MiB = 1 << 20


class TestLocalSink(SinkConformance):
    @pytest.fixture
    def sink(self, tmp_path: Path) -> Sink:
        return LocalSink(tmp_path / "backups")


@pytest.mark.integration
class TestS3Sink(SinkConformance):
    @pytest.fixture
    def sink(self, s3: S3Server) -> Sink:  # noqa: F811
        s3.create_bucket("conformance")
        return S3Sink(bucket="conformance", prefix="suite", part_size=5 * MiB)


class TestFsspecMemorySink(SinkConformance):
    @pytest.fixture
    def sink(self) -> Iterator[Sink]:
        url = f"memory://conformance-{uuid.uuid4().hex}"
        yield FsspecSink(url)
        memory = fsspec.filesystem("memory")
        if memory.exists(url):
            memory.rm(url, recursive=True)


class TestFsspecFileSink(SinkConformance):
    @pytest.fixture
    def sink(self, tmp_path: Path) -> Sink:
        return FsspecSink(f"file://{tmp_path}/backups")


@pytest.mark.integration
class TestFsspecS3Sink(SinkConformance):
    """s3fs through the generic sink: publishes by transaction (multipart commit/discard)."""

    @pytest.fixture
    def sink(self, s3: S3Server) -> Sink:  # noqa: F811
        s3.create_bucket("conformance")
        return FsspecSink("s3://conformance/fs", storage_options={"skip_instance_cache": True})
