"""``backupkit_sink_for_url``: a plugin claims a URL scheme for its sink, and one handler wins."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from plugin_helpers import _autoload_on, files_config  # noqa: F401

import backupkit
from backupkit.errors import ConfigError
from backupkit.testing.fakes import MemoryPlugin, MemorySink, MemoryStore


# -- backupkit_sink_for_url: one handler wins ------------------------------------------------
@attrs.frozen
class GreedyMemoryPlugin:
    """Claims every location first, for its one store; with firstresult, nobody else is asked."""

    store: MemoryStore = attrs.field(factory=MemoryStore)

    @backupkit.hookimpl(tryfirst=True)
    def backupkit_sink_for_url(self, url: str) -> tuple[str, dict[str, object]] | None:
        return (MemorySink.id, {"store_name": self.store.name})


def test_a_plugin_claims_a_url_scheme_and_its_sink_is_used(tmp_path: Path) -> None:
    store = MemoryStore()
    assert store.url.startswith("mem://")
    engine = backupkit.Engine.from_config(
        files_config(tmp_path, store.url), plugins=[MemoryPlugin()]
    )
    manifest = engine.backup()

    assert any(k.endswith(".manifest.json") for k in store.objects)
    assert manifest.artifact("files").key in store.objects
    assert not (tmp_path / "mem:").exists()  # the local sink did not take it as a path
    assert engine.catalog().latest().id == manifest.id
    engine.restore(to=tmp_path / "restored")
    assert (tmp_path / "restored" / "data" / "hello.txt").read_text() == "hello\n"


def test_sink_for_url_stops_at_the_first_answer(tmp_path: Path) -> None:
    greedy = GreedyMemoryPlugin()
    plugins = [MemoryPlugin(), greedy]
    engine = backupkit.Engine.from_config(
        files_config(tmp_path, str(tmp_path / "sink")), plugins=plugins
    )
    engine.backup()
    assert any(k.endswith(".manifest.json") for k in greedy.store.objects)
    assert not (tmp_path / "sink").exists()


def test_a_location_no_plugin_claims_is_a_config_error(tmp_path: Path) -> None:
    engine = backupkit.Engine.from_config(files_config(tmp_path, "mem://bucket"))
    with pytest.raises(ConfigError, match="no sink plugin handles 'mem://bucket'"):
        engine.backup()
