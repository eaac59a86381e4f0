"""The registration seam: the ``hookimpl`` marker and the :class:`Register` that the
``backupkit_register_*`` hooks fill."""

from __future__ import annotations

from typing import Any

import attrs
import pluggy

from backupkit.errors import PluginError
from backupkit.plugin.sink import Sink
from backupkit.plugin.source import Source
from backupkit.plugin.transform import Transform

PROJECT = "backupkit"
#: Names the plugins to skip, comma-separated (``backupkit plugins`` lists the names).
BLOCK_ENV = "BACKUPKIT_BLOCK_PLUGINS"

#: Marks a plugin's hook implementations: ``@backupkit.plugin.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)


@attrs.define
class Register:
    """Handed to the ``backupkit_register_*`` hooks; collects plugin classes by id."""

    sources: dict[str, type[Source]] = attrs.field(factory=dict)
    transforms: dict[str, type[Transform]] = attrs.field(factory=dict)
    sinks: dict[str, type[Sink]] = attrs.field(factory=dict)
    # Which plugin is registering now, who registered each id, and the names that
    # BACKUPKIT_BLOCK_PLUGINS accepts: set by make_plugin_manager for its messages.
    _plugin: str = attrs.field(default="", init=False, repr=False)
    _owners: dict[tuple[str, str], str] = attrs.field(factory=dict, init=False, repr=False)
    _blockable: set[str] = attrs.field(factory=set, init=False, repr=False)

    def source(self, cls: type[Source]) -> None:
        """Register source plugin class *cls* under its ``id``."""
        self._add(self.sources, cls, Source, "source")

    def transform(self, cls: type[Transform]) -> None:
        """Register transform plugin class *cls* under its ``id``."""
        self._add(self.transforms, cls, Transform, "transform")

    def sink(self, cls: type[Sink]) -> None:
        """Register sink plugin class *cls* under its ``id``."""
        self._add(self.sinks, cls, Sink, "sink")

    def _add(self, table: dict[str, Any], cls: Any, base: type, kind: str) -> None:
        by = f"plugin {self._plugin!r}: " if self._plugin else ""
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(f"{by}{kind} plugin {cls!r} is not a subclass of {base.__name__}")
        plugin_id = getattr(cls, "id", None)
        if not isinstance(plugin_id, str) or not plugin_id:
            raise PluginError(f"{by}{kind} plugin {cls.__qualname__} has no string 'id'")
        if plugin_id in table and table[plugin_id] is not cls:
            raise PluginError(self._conflict(kind, plugin_id, table[plugin_id], cls))
        table[plugin_id] = cls
        self._owners.setdefault((kind, plugin_id), self._plugin)

    def _conflict(self, kind: str, plugin_id: str, first: type, second: type) -> str:
        names = (self._owners.get((kind, plugin_id), ""), self._plugin)
        if not all(names):  # used outside make_plugin_manager: all we know are the classes
            names = (first.__module__, second.__module__)
        if names[0] == names[1]:
            return (
                f"{kind} id {plugin_id!r} is registered twice by plugin {names[0]!r} "
                f"({first.__qualname__} and {second.__qualname__}); a bug in the plugin: "
                f"{how_to_block(names[0], self._blockable)}"
            )
        fix = "block one of them"
        blockable = [name for name in reversed(names) if name in self._blockable]
        if blockable:  # the later one first: a built-in is rarely the one to go
            fix += f": {BLOCK_ENV}={blockable[0]}"
        return (
            f"{kind} id {plugin_id!r} is registered twice, by plugin {names[0]!r} and by "
            f"plugin {names[1]!r}; {fix}"
        )


def how_to_block(name: str, blockable: set[str]) -> str:
    """The advice for a plugin at fault: block it by name, or fix what passed it in."""
    if name in blockable:
        return f"block it with {BLOCK_ENV}={name} or uninstall it"
    return "fix it or leave it out of plugins=[...]"
