"""``backupkit_sink_for_url``: a plugin claims a URL scheme for its sink, and one handler wins."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar

import attrs
import pytest
from plugin_helpers import _autoload_on, files_config  # noqa: F401

import backupkit
from backupkit.errors import ConfigError, NotFoundError
from backupkit.plugin import Register

# -- backupkit_sink_for_url: one handler wins ------------------------------------------------
MEMORY: dict[str, dict[str, bytes]] = {}


class _MemoryWriter(backupkit.plugin.ArtifactWriter):
    def __init__(self, store: dict[str, bytes], key: str) -> None:
        self.store, self.key, self.buf = store, key, bytearray()

    def write(self, data: bytes, /) -> int:
        self.buf += data
        return len(data)

    def commit(self) -> None:
        self.store[self.key] = bytes(self.buf)

    def abort(self) -> None:
        self.buf.clear()


@attrs.frozen
class MemorySink(backupkit.plugin.Sink):
    """A sink in a dict, owned by ``mem://BUCKET`` URLs."""

    id: ClassVar[str] = "memory-test"

    bucket: str

    @property
    def location(self) -> str:
        return f"mem://{self.bucket}"

    @property
    def store(self) -> dict[str, bytes]:
        return MEMORY.setdefault(self.bucket, {})

    def open_artifact(self, key: str, *, run_id: str) -> backupkit.plugin.ArtifactWriter:
        return _MemoryWriter(self.store, key)

    def put_bytes(self, key: str, data: bytes, *, run_id: str) -> None:
        self.store[key] = bytes(data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.store[key]
        except KeyError:
            raise NotFoundError(f"{key} is not in {self.location}") from None

    def open_read(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get_bytes(key))

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in self.store if k.startswith(prefix)))

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.store.pop(key, None)


class MemoryPlugin:
    @backupkit.hookimpl
    def backupkit_register_sinks(self, register: Register) -> None:
        register.sink(MemorySink)

    @backupkit.hookimpl
    def backupkit_sink_for_url(self, url: str) -> tuple[str, dict[str, object]] | None:
        if url.startswith("mem://"):
            return ("memory-test", {"bucket": url[len("mem://") :]})
        return None


class GreedyMemoryPlugin:
    """Claims every location first; with firstresult, nobody else is asked."""

    @backupkit.hookimpl(tryfirst=True)
    def backupkit_sink_for_url(self, url: str) -> tuple[str, dict[str, object]] | None:
        return ("memory-test", {"bucket": "greedy"})


@pytest.fixture
def memory() -> Iterator[dict[str, dict[str, bytes]]]:
    MEMORY.clear()
    yield MEMORY
    MEMORY.clear()


def test_a_plugin_claims_a_url_scheme_and_its_sink_is_used(
    tmp_path: Path, memory: dict[str, dict[str, bytes]]
) -> None:
    engine = backupkit.Engine.from_config(
        files_config(tmp_path, "mem://bucket"), plugins=[MemoryPlugin()]
    )
    manifest = engine.backup()

    assert any(k.endswith(".manifest.json") for k in memory["bucket"])
    assert manifest.artifact("files").key in memory["bucket"]
    assert not (tmp_path / "mem:").exists()  # the local sink did not take it as a path
    assert engine.catalog().latest().id == manifest.id
    engine.restore(to=tmp_path / "restored")
    assert (tmp_path / "restored" / "data" / "hello.txt").read_text() == "hello\n"


def test_sink_for_url_stops_at_the_first_answer(
    tmp_path: Path, memory: dict[str, dict[str, bytes]]
) -> None:
    plugins = [MemoryPlugin(), GreedyMemoryPlugin()]
    engine = backupkit.Engine.from_config(
        files_config(tmp_path, str(tmp_path / "sink")), plugins=plugins
    )
    engine.backup()
    assert list(memory) == ["greedy"]
    assert not (tmp_path / "sink").exists()


def test_a_location_no_plugin_claims_is_a_config_error(tmp_path: Path) -> None:
    engine = backupkit.Engine.from_config(files_config(tmp_path, "mem://bucket"))
    with pytest.raises(ConfigError, match="no sink plugin handles 'mem://bucket'"):
        engine.backup()
