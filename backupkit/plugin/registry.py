"""The registration seam: the ``hookimpl`` marker and the :class:`Register` that the
``backupkit_register_*`` hooks fill."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

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

C = TypeVar("C")


class Table(Mapping[str, type[C]], Generic[C]):
    """Registered plugin classes of one kind, by id.

    A class registered by reference (``"package.module:Class"``) is imported when it is
    first looked up (``table[id]``, ``values()``), not when it is registered: listing the
    ids and ``id in table`` import nothing.
    """

    def __init__(self, base: type, kind: str) -> None:  # base: C (abstract, so not type[C])
        self.base = base
        self.kind = kind
        self._entries: dict[str, type[C] | str] = {}
        self.owners: dict[str, str] = {}  # id -> the plugin that registered it
        self.blockable: set[str] = set()  # the names BACKUPKIT_BLOCK_PLUGINS accepts

    def __getitem__(self, plugin_id: str) -> type[C]:
        entry = self._entries[plugin_id]
        if isinstance(entry, str):
            entry = self._entries[plugin_id] = self._load(plugin_id, entry)
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, plugin_id: object) -> bool:
        return plugin_id in self._entries

    def entry(self, plugin_id: str) -> type[C] | str:
        """What was registered as *plugin_id*: the class, or its reference if not loaded."""
        return self._entries[plugin_id]

    def put(self, plugin_id: str, entry: type[C] | str) -> None:
        """Record *entry* (a class or a ``"module:Class"`` reference) as *plugin_id*."""
        self._entries[plugin_id] = entry

    def _load(self, plugin_id: str, ref: str) -> type[C]:
        owner = self.owners.get(plugin_id, "")
        by = f"plugin {owner!r}: " if owner else ""
        module_name, _, qualname = ref.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except Exception as exc:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise PluginError(
                f"{by}{self.kind} {plugin_id!r} ({ref}) failed to load: {reason}"
                + (f"; {how_to_block(owner, self.blockable)}" if owner else "")
            ) from exc
        _check_class(obj, self.base, self.kind, by)
        if obj.id != plugin_id:
            raise PluginError(
                f"{by}{self.kind} {ref} was registered as {plugin_id!r} but its id is {obj.id!r}"
            )
        return obj  # type: ignore[no-any-return]


def _check_class(cls: Any, base: type, kind: str, by: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(f"{by}{kind} plugin {cls!r} is not a subclass of {base.__name__}")
    plugin_id = getattr(cls, "id", None)
    if not isinstance(plugin_id, str) or not plugin_id:
        raise PluginError(f"{by}{kind} plugin {cls.__qualname__} has no string 'id'")


_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@attrs.define
class Register:
    """Handed to the ``backupkit_register_*`` hooks; collects plugin classes by id.

    Each method takes the class itself, or (for a plugin whose module is costly to
    import) a ``"package.module:Class"`` reference and the class's ``id``: the module
    is then imported only when a configuration uses that id.
    """

    sources: Table[Source] = attrs.field(factory=lambda: Table(Source, "source"))
    transforms: Table[Transform] = attrs.field(factory=lambda: Table(Transform, "transform"))
    sinks: Table[Sink] = attrs.field(factory=lambda: Table(Sink, "sink"))
    # Which plugin is registering now, who registered each id, and the names that
    # BACKUPKIT_BLOCK_PLUGINS accepts: set by make_plugin_manager for its messages.
    _plugin: str = attrs.field(default="", init=False, repr=False)
    _blockable: set[str] = attrs.field(factory=set, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        for table in (self.sources, self.transforms, self.sinks):
            table.blockable = self._blockable

    def source(self, cls: type[Source] | str, *, id: str | None = None) -> None:  # noqa: A002
        """Register source plugin class *cls* (or its ``"module:Class"`` reference and
        *id*) under its ``id``."""
        self._add(self.sources, cls, id)

    def transform(self, cls: type[Transform] | str, *, id: str | None = None) -> None:  # noqa: A002
        """Register transform plugin class *cls* (or its reference and *id*)."""
        self._add(self.transforms, cls, id)

    def sink(self, cls: type[Sink] | str, *, id: str | None = None) -> None:  # noqa: A002
        """Register sink plugin class *cls* (or its reference and *id*)."""
        self._add(self.sinks, cls, id)

    def _add(self, table: Table[Any], cls: Any, ref_id: str | None) -> None:
        kind = table.kind
        by = f"plugin {self._plugin!r}: " if self._plugin else ""
        if isinstance(cls, str):
            if not _REF.match(cls):
                raise PluginError(
                    f"{by}{kind} plugin {cls!r} is neither a class nor a 'module:Class' reference"
                )
            if not isinstance(ref_id, str) or not ref_id:
                raise PluginError(f"{by}{kind} plugin {cls!r} is a reference: give its id= too")
            plugin_id = ref_id
        else:
            _check_class(cls, table.base, kind, by)
            plugin_id = cls.id
            if ref_id is not None and ref_id != plugin_id:
                raise PluginError(
                    f"{by}{kind} plugin {cls.__qualname__} has id {plugin_id!r}, not {ref_id!r}"
                )
        if plugin_id in table and not _same(table.entry(plugin_id), cls):
            raise PluginError(self._conflict(kind, plugin_id, table.entry(plugin_id), cls))
        if plugin_id not in table or not isinstance(cls, str):
            table.put(plugin_id, cls)
        table.owners.setdefault(plugin_id, self._plugin)

    def _conflict(self, kind: str, plugin_id: str, first: type | str, second: type | str) -> str:
        owner = (self.sources, self.transforms, self.sinks)
        table = next(t for t in owner if t.kind == kind)
        names = (table.owners.get(plugin_id, ""), self._plugin)
        if not all(names):  # used outside make_plugin_manager: all we know are the classes
            names = (_module_of(first), _module_of(second))
        if names[0] == names[1]:
            return (
                f"{kind} id {plugin_id!r} is registered twice by plugin {names[0]!r} "
                f"({_qualname_of(first)} and {_qualname_of(second)}); a bug in the plugin: "
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


def _ref_of(entry: type | str) -> str:
    return entry if isinstance(entry, str) else f"{entry.__module__}:{entry.__qualname__}"


def _same(first: type | str, second: type | str) -> bool:
    """Whether two registrations name one class (a class and its reference do)."""
    return first is second or _ref_of(first) == _ref_of(second)


def _module_of(entry: type | str) -> str:
    return _ref_of(entry).partition(":")[0]


def _qualname_of(entry: type | str) -> str:
    return _ref_of(entry).partition(":")[2]


def lazy_exports(module_name: str, names: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports each of *names* from the module it maps to
    on first use: a plugin package that registers its classes by reference keeps
    ``from package import TheClass`` working without importing them with the package.

    ``__getattr__ = lazy_exports(__name__, {"MySource": "mypkg.source"})``
    """

    def __getattr__(name: str) -> object:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    return __getattr__


def how_to_block(name: str, blockable: set[str]) -> str:
    """The advice for a plugin at fault: block it by name, or fix what passed it in."""
    if name in blockable:
        return f"block it with {BLOCK_ENV}={name} or uninstall it"
    return "fix it or leave it out of plugins=[...]"
