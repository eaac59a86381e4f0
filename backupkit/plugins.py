"""Plugin loading: the ``hookimpl`` marker, built-ins, entry points, registries.

Built-in plugins are modules named in :data:`DEFAULT_PLUGINS`, registered by name
exactly like third-party plugins found in the ``backupkit`` entry-point group. Each
:class:`backupkit.Engine` builds its own manager with :func:`make_plugin_manager`;
importing backupkit registers nothing. Set ``BACKUPKIT_DISABLE_PLUGIN_AUTOLOAD=1``
to skip entry points (built-ins still load unless blocked).
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Iterable
from typing import Any, TypeVar

import attrs
import pluggy

from backupkit import hookspecs
from backupkit.errors import PluginError
from backupkit.sinks.base import Sink
from backupkit.sources.base import Source
from backupkit.transforms.base import Transform

PROJECT = "backupkit"
ENTRY_POINT_GROUP = "backupkit"
AUTOLOAD_ENV = "BACKUPKIT_DISABLE_PLUGIN_AUTOLOAD"

hookimpl = pluggy.HookimplMarker(PROJECT)

DEFAULT_PLUGINS: tuple[str, ...] = (
    "backupkit.sources.filesystem",
    "backupkit.transforms.gzip",
    "backupkit.transforms.zstd",
    "backupkit.transforms.aes",
    "backupkit.sinks.local",
    "backupkit.sinks.s3",
    "backupkit.sinks.fsspec",
)

P = TypeVar("P")


@attrs.define
class Register:
    """Handed to the ``backupkit_register_*`` hooks; collects plugin classes by id."""

    sources: dict[str, type[Source]] = attrs.field(factory=dict)
    transforms: dict[str, type[Transform]] = attrs.field(factory=dict)
    sinks: dict[str, type[Sink]] = attrs.field(factory=dict)

    def source(self, cls: type[Source]) -> None:
        self._add(self.sources, cls, Source, "source")

    def transform(self, cls: type[Transform]) -> None:
        self._add(self.transforms, cls, Transform, "transform")

    def sink(self, cls: type[Sink]) -> None:
        self._add(self.sinks, cls, Sink, "sink")

    @staticmethod
    def _add(table: dict[str, Any], cls: Any, base: type, kind: str) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"{kind} plugin {cls!r} is not a subclass of {base.__name__}")
        plugin_id = getattr(cls, "id", None)
        if not isinstance(plugin_id, str) or not plugin_id:
            raise PluginError(f"{kind} plugin {cls.__qualname__} has no string 'id'")
        if plugin_id in table and table[plugin_id] is not cls:
            raise PluginError(
                f"{kind} id {plugin_id!r} is registered twice ({table[plugin_id].__module__} "
                f"and {cls.__module__}); block one of them"
            )
        table[plugin_id] = cls


def _lookup(table: dict[str, type[P]], plugin_id: str, kind: str) -> type[P]:
    try:
        return table[plugin_id]
    except KeyError:
        known = ", ".join(sorted(table)) or "none"
        close = difflib.get_close_matches(plugin_id, table, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise PluginError(
            f"unknown {kind} plugin {plugin_id!r}; {hint}known {kind}s: {known} "
            "(is the plugin package installed?)"
        ) from None


@attrs.define
class Plugins:
    """An engine's plugin manager and the plugin classes it registered."""

    manager: pluggy.PluginManager
    registry: Register

    def source(self, plugin_id: str) -> type[Source]:
        return _lookup(self.registry.sources, plugin_id, "source")

    def transform(self, plugin_id: str) -> type[Transform]:
        return _lookup(self.registry.transforms, plugin_id, "transform")

    def sink(self, plugin_id: str) -> type[Sink]:
        return _lookup(self.registry.sinks, plugin_id, "sink")

    @property
    def hook(self) -> Any:
        return self.manager.hook

    def names(self) -> list[str]:
        """Names of every registered plugin module, built-in and third-party."""
        return sorted(
            name for name, plugin in self.manager.list_name_plugin() if plugin is not None
        )


def make_plugin_manager(
    *,
    plugins: Iterable[object] = (),
    block: Iterable[str] = (),
    autoload: bool | None = None,
) -> Plugins:
    """Build a fresh plugin manager with built-ins, entry points and *plugins*.

    :param plugins: extra plugin objects (modules or instances) to register.
    :param block: plugin names (built-in module names or entry-point names) to skip.
    :param autoload: load the ``backupkit`` entry-point group; by default yes unless
        ``BACKUPKIT_DISABLE_PLUGIN_AUTOLOAD`` is set.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in block:
        pm.set_blocked(name)
    for name in DEFAULT_PLUGINS:
        if pm.is_blocked(name):
            continue
        pm.register(importlib.import_module(name), name=name)
    if autoload is None:
        autoload = os.environ.get(AUTOLOAD_ENV, "").strip().lower() in ("", "0", "false", "no")
    if autoload:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken third-party plugin must not be a traceback
            raise PluginError(
                f"a backupkit plugin failed to load: {exc}; uninstall it or set "
                f"{AUTOLOAD_ENV}=1"
            ) from exc
    try:
        for plugin in plugins:
            pm.register(plugin)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        culprit = pm.get_name(exc.plugin)  # an entry-point name, module name, or id()
        which = f"plugin {culprit!r}: " if culprit and not culprit.isdigit() else ""
        raise PluginError(f"{which}{exc} (see docs/hooks.md for the hook names)") from None
    registry = Register()
    pm.hook.backupkit_register_sources(register=registry)
    pm.hook.backupkit_register_transforms(register=registry)
    pm.hook.backupkit_register_sinks(register=registry)
    return Plugins(pm, registry)
