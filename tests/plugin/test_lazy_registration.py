"""Registering a plugin class by reference: its module is imported when a configuration
first uses its id, and a reference that does not hold is a one-line PluginError then."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import backupkit
from backupkit.errors import PluginError
from backupkit.plugin import Register
from backupkit.plugins import make_plugin_manager

MODULE = "bk_lazy_source_mod"
CODE = """
from typing import ClassVar
import attrs
import backupkit.plugin

@attrs.frozen
class LazySource(backupkit.plugin.Source):
    id: ClassVar[str] = "lazy"

    def backup(self, out, ctx):
        out.write(b"lazy")

    def restore(self, stream, ctx):
        stream.read()

NOT_A_SOURCE = 42
"""


class _ByReference:
    def __init__(self, ref: str, plugin_id: str | None) -> None:
        self.ref, self.plugin_id = ref, plugin_id

    @backupkit.hookimpl
    def backupkit_register_sources(self, register: Register) -> None:
        register.source(self.ref, id=self.plugin_id)


@pytest.fixture
def module_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(CODE))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(MODULE, None)
    yield
    sys.modules.pop(MODULE, None)


@pytest.mark.usefixtures("module_on_path")
def test_a_class_registered_by_reference_is_imported_when_first_looked_up() -> None:
    plugins = make_plugin_manager(plugins=[_ByReference(f"{MODULE}:LazySource", "lazy")],
                                  autoload=False)
    assert "lazy" in plugins.registry.sources
    assert "lazy" in sorted(plugins.registry.sources)
    assert MODULE not in sys.modules  # listed, not imported

    cls = plugins.source("lazy")
    assert cls.__name__ == "LazySource" and cls.__module__ == MODULE
    assert plugins.source("lazy") is cls


@pytest.mark.usefixtures("module_on_path")
@pytest.mark.parametrize(("ref", "plugin_id", "says"), [
    (f"{MODULE}:LazySource", "other", "registered as 'other' but its id is 'lazy'"),
    (f"{MODULE}:NOT_A_SOURCE", "lazy", "is not a subclass of Source"),
    (f"{MODULE}:Missing", "lazy", "failed to load: AttributeError"),
    ("bk_no_such_module_xyz:Source", "lazy", "failed to load: ModuleNotFoundError"),
])
def test_a_reference_that_does_not_hold_fails_on_first_use_naming_the_plugin(
    ref: str, plugin_id: str, says: str
) -> None:
    plugins = make_plugin_manager(plugins=[_ByReference(ref, plugin_id)], autoload=False)
    with pytest.raises(PluginError, match=says) as excinfo:
        plugins.source(plugin_id)
    assert str(excinfo.value).startswith("plugin '_ByReference': source ")
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize(("ref", "plugin_id", "says"), [
    ("bk_lazy_source_mod:LazySource", None, "give its id= too"),
    ("not a reference", "lazy", "neither a class nor a 'module:Class' reference"),
])
def test_a_malformed_reference_is_refused_when_registered(
    ref: str, plugin_id: str | None, says: str
) -> None:
    with pytest.raises(PluginError, match=says):
        make_plugin_manager(plugins=[_ByReference(ref, plugin_id)], autoload=False)


@pytest.mark.usefixtures("module_on_path")
def test_a_reference_and_its_class_are_one_registration_another_id_owner_clashes() -> None:
    register = Register()
    register.source(f"{MODULE}:LazySource", id="lazy")
    cls = register.sources["lazy"]
    register.source(cls)  # the same class again: no conflict
    register.source(f"{MODULE}:LazySource", id="lazy")
    with pytest.raises(PluginError, match="registered twice"):
        register.source("backupkit.sources.redis.source:RedisSource", id="lazy")


def test_builtin_sources_resolve_to_their_classes() -> None:
    plugins = make_plugin_manager(autoload=False)
    for plugin_id in ("filesystem", "postgres", "redis", "json"):
        assert plugins.source(plugin_id).id == plugin_id
    assert plugins.sink("s3").id == "s3"
