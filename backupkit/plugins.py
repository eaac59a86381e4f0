"""Plugin loading: the ``hookimpl`` marker, built-ins, entry points, registries.

Built-in plugins are modules named in :data:`DEFAULT_PLUGINS`, registered by name
exactly like third-party plugins found in the ``backupkit`` entry-point group. Each
:class:`backupkit.Engine` builds its own manager with :func:`make_plugin_manager`;
importing backupkit registers nothing. Set ``BACKUPKIT_DISABLE_PLUGIN_AUTOLOAD=1``
to skip entry points (built-ins still load unless blocked), and
``BACKUPKIT_BLOCK_PLUGINS=name,...`` to skip single plugins by the name
``backupkit plugins`` lists (a built-in's module name or an entry-point name).
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

import attrs
import pluggy

from backupkit import hookspecs
from backupkit.entry_points import entry_points
from backupkit.errors import PluginError, closest
from backupkit.plugin import Sink, Source, Transform
from backupkit.plugin.registry import BLOCK_ENV, PROJECT, Register, how_to_block

ENTRY_POINT_GROUP = "backupkit"
AUTOLOAD_ENV = "BACKUPKIT_DISABLE_PLUGIN_AUTOLOAD"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "backupkit.sources.filesystem",
    "backupkit.sources.postgres",
    "backupkit.sources.redis",
    "backupkit.sources.jsonexport",
    "backupkit.transforms.gzip",
    "backupkit.transforms.zstd",
    "backupkit.transforms.aes",
    "backupkit.sinks.local",
    "backupkit.sinks.s3",
    "backupkit.sinks.fsspec",
    "backupkit.alerts",
    "backupkit.audit",
    "backupkit.metrics",
)

P = TypeVar("P")
T = TypeVar("T")
log = logging.getLogger("backupkit")


def _lookup(table: Mapping[str, type[P]], plugin_id: str, kind: str) -> type[P]:
    try:
        return table[plugin_id]
    except KeyError:
        known = ", ".join(sorted(table)) or "none"
        close = closest(plugin_id, table)
        hint = f"did you mean {close!r}? " if close else ""
        raise PluginError(
            f"unknown {kind} plugin {plugin_id!r}; {hint}known {kind}s: {known} "
            "(is the plugin package installed?)"
        ) from None


@attrs.define
class Plugins:
    """An engine's plugin manager and the plugin classes it registered."""

    manager: pluggy.PluginManager
    registry: Register

    def instance(self, cls: type[T], name: str, make: Callable[[], T] | None = None) -> T:
        """The registered plugin of class *cls* (the first one), else *make()* (or
        ``cls()``) registered now under *name*: for plugins above the engine that every
        caller on one engine must share (the set guard, the audit log)."""
        for plugin in self.manager.get_plugins():
            if isinstance(plugin, cls):
                return plugin
        found = make() if make is not None else cls()
        self.manager.register(found, name=name)
        return found

    def source(self, plugin_id: str) -> type[Source]:
        """The source class registered as *plugin_id* (a one-line error if none is)."""
        return _lookup(self.registry.sources, plugin_id, "source")

    def transform(self, plugin_id: str) -> type[Transform]:
        """The transform class registered as *plugin_id*."""
        return _lookup(self.registry.transforms, plugin_id, "transform")

    def sink(self, plugin_id: str) -> type[Sink]:
        """The sink class registered as *plugin_id*."""
        return _lookup(self.registry.sinks, plugin_id, "sink")

    @property
    def hook(self) -> Any:
        """The manager's hook relay: ``plugins.hook.backupkit_<name>(...)``."""
        return self.manager.hook

    @property
    def roles(self) -> Roles:
        """What the registered transforms do, by stage."""
        return Roles.of(self.registry)

    def notify(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Exception]]:
        """Call every implementation of a notification hook, each on its own: one that
        raises must not keep the others (another team's notifier) from running. Failures
        are logged as warnings naming the plugin, and returned as (plugin, error)."""
        hook = getattr(self.manager.hook, hook_name)
        impls = implementations(self.manager, hook, kwargs)
        if any(wrapper for _, wrapper, _ in impls):
            try:  # wrappers need pluggy's own call
                hook(**kwargs)
            except Exception as exc:
                log.warning("a %s hook failed: %s", hook_name, exc)
                return [("?", exc)]
            return []
        failed = []
        for name, _, call in reversed(impls):  # pluggy's order: the last registered first
            try:
                call()
            except Exception as exc:
                log.warning("the %s hook of plugin %s failed: %s: %s", hook_name, name,
                            type(exc).__name__, exc)
                failed.append((name, exc))
        return failed

    def names(self) -> list[str]:
        """Names of every registered plugin module, built-in and third-party."""
        return sorted(
            name for name, plugin in self.manager.list_name_plugin() if plugin is not None
        )


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, reading a module's hook implementations from its namespace.

    pluggy looks at every name of a plugin with :func:`inspect.getattr_static`, which
    costs about as much as the rest of building the manager; in a module a plain
    function is all a name can hold that pluggy would take, so its marker is read
    directly (the same result). Anything else goes to pluggy's own lookup.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        if isinstance(plugin, types.ModuleType):
            namespace = vars(plugin)
            value = namespace.get(name)
            if isinstance(value, types.FunctionType):
                opts = getattr(value, f"{PROJECT}_impl", None)
                return opts if isinstance(opts, dict) else None  # type: ignore[return-value]
            if name in namespace and not isinstance(
                value, (staticmethod, classmethod, types.MethodType)
            ):
                return None
        return super().parse_hookimpl_opts(plugin, name)


def make_plugin_manager(
    *,
    plugins: Iterable[object] = (),
    block: Iterable[str] = (),
    autoload: bool | None = None,
) -> Plugins:
    """Build a fresh plugin manager with built-ins, entry points and *plugins*.

    :param plugins: extra plugin objects (modules or instances) to register; one that
        is already loaded (a built-in, or an installed entry point) is skipped.
    :param block: plugin names (built-in module names or entry-point names) to skip,
        in addition to those named in ``BACKUPKIT_BLOCK_PLUGINS`` (comma-separated).
    :param autoload: load the ``backupkit`` entry-point group; by default yes unless
        ``BACKUPKIT_DISABLE_PLUGIN_AUTOLOAD`` is set to a true value.
    """
    pm = _PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    from_env = (name.strip() for name in os.environ.get(BLOCK_ENV, "").split(","))
    for name in [*block, *from_env]:
        if name:
            pm.set_blocked(name)
    blockable = set(DEFAULT_PLUGINS)
    for name in DEFAULT_PLUGINS:
        if pm.is_blocked(name):
            continue
        pm.register(importlib.import_module(name), name=name)
    if autoload is None:
        autoload = os.environ.get(AUTOLOAD_ENV, "").strip().lower() in ("", "0", "false", "no")
    if autoload:
        blockable |= _load_entry_points(pm)
    try:
        for plugin in plugins:
            if not pm.is_registered(plugin):  # already loaded as a built-in or entry point
                _register(pm, plugin)
        pm.check_pending()
        _check_operation_wrappers(pm)
    except pluggy.PluginValidationError as exc:
        culprit = _name(pm, exc.plugin)
        raise PluginError(
            f"plugin {culprit!r}: {exc} (see docs/hooks.md for the hook names)"
        ) from None
    registry = Register()
    registry._blockable.update(blockable)
    for hook in (
        pm.hook.backupkit_register_sources,
        pm.hook.backupkit_register_transforms,
        pm.hook.backupkit_register_sinks,
    ):
        _call_each(hook, registry, blockable, pm)
    return Plugins(pm, registry)


def _load_entry_points(pm: pluggy.PluginManager) -> set[str]:
    """Register each plugin of the entry-point group; return their names."""
    loaded = set()
    for ep in entry_points(ENTRY_POINT_GROUP):
        loaded.add(ep.name)
        if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
            continue  # blocked, or the same distribution twice on sys.path
        dist = ep.dist_name or "an unknown distribution"
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must not be a traceback
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise PluginError(
                f"plugin {ep.name!r} (entry point {ep.value!r} of {dist}) failed to load: "
                f"{reason}; block it with {BLOCK_ENV}={ep.name} or uninstall {dist}"
            ) from exc
        if not pm.is_registered(plugin):
            pm.register(plugin, name=ep.name)
    return loaded


def _register(pm: pluggy.PluginManager, plugin: object) -> None:
    try:
        pm.register(plugin)
    except ValueError as exc:  # another plugin object under this name
        name = pm.get_canonical_name(plugin)
        raise PluginError(
            f"plugin {name!r} passed in plugins=[...] clashes with a loaded plugin of that "
            f"name ({str(exc).splitlines()[0]}); rename it or block the other one"
        ) from None


def _name(pm: pluggy.PluginManager, plugin: object) -> str:
    """The plugin's name as ``backupkit plugins`` shows it, or its class for an object."""
    name = pm.get_name(plugin)
    if name is None or name == str(id(plugin)):  # an object passed in plugins=[...]
        return type(plugin).__qualname__
    return name


def implementations(
    pm: pluggy.PluginManager, hook: Any, kwargs: Mapping[str, Any]
) -> list[tuple[str, bool, Callable[[], Any]]]:
    """Each implementation of *hook*, in load order, as (the plugin's name as
    ``BACKUPKIT_BLOCK_PLUGINS`` accepts it, whether it is a wrapper, a call of it with
    *kwargs*): for callers that run implementations one at a time, so that one failing
    is named and does not keep the others from running."""

    def call(impl: Any) -> Callable[[], Any]:
        return lambda: impl.function(*(kwargs[arg] for arg in impl.argnames))

    return [
        (_name(pm, impl.plugin), bool(impl.hookwrapper or impl.wrapper), call(impl))
        for impl in hook.get_hookimpls()
    ]


def _call_each(
    hook: Any, registry: Register, blockable: set[str], pm: pluggy.PluginManager
) -> None:
    """Call a registration hook one implementation at a time, in load order.

    So a conflict or an exception names the plugin at fault, by the name
    ``BACKUPKIT_BLOCK_PLUGINS`` accepts.
    """
    for name, wrapper, call in implementations(pm, hook, {"register": registry}):
        if wrapper:
            raise PluginError(
                f"plugin {name!r}: {hook.name} cannot be a wrapper; drop wrapper=True"
            )
        registry._plugin = name
        try:
            call()
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} failed in {hook.name}: {type(exc).__name__}: {exc}; "
                f"{how_to_block(name, blockable)}"
            ) from exc
        finally:
            registry._plugin = ""


def _check_operation_wrappers(pm: pluggy.PluginManager) -> None:
    """``backupkit_operation`` implementations must wrap the operation, not replace it."""
    for name, wrapper, _ in implementations(pm, pm.hook.backupkit_operation, {}):
        if not wrapper:
            raise PluginError(
                f"plugin {name!r}: backupkit_operation must be a wrapper; declare it with "
                "@hookimpl(wrapper=True) and yield once (see docs/hooks.md)"
            )


@attrs.frozen
class Roles:
    """What the registered transforms do, by stage, so that configuration and engine ask
    for "compression" or "encryption" and never name a plugin."""

    stages: Mapping[str, str]  # transform id -> its stage
    defaults: Mapping[str, str]  # stage -> the id of the transform it defaults to

    @classmethod
    def of(cls, registry: Register) -> Roles:
        """The roles of *registry*'s transforms; a stage with one transform defaults to it."""
        stages = {tid: t.stage for tid, t in registry.transforms.items()}
        defaults: dict[str, str] = {}
        for tid, transform in registry.transforms.items():
            if transform.default:
                defaults.setdefault(transform.stage, tid)
        for stage in set(stages.values()) - set(defaults):
            only = [tid for tid, st in stages.items() if st == stage]
            if len(only) == 1:
                defaults[stage] = only[0]
        return cls(stages, defaults)

    def of_stage(self, stage: str) -> tuple[str, ...]:
        """The ids of the transforms of *stage*, its default first."""
        ids = [tid for tid, st in self.stages.items() if st == stage]
        return tuple(sorted(ids, key=lambda tid: tid != self.defaults.get(stage)))

    def default(self, stage: str) -> str | None:
        """The id of *stage*'s default transform, if it has one."""
        return self.defaults.get(stage)

    def encrypts(self, transforms: Iterable[_HasId]) -> bool:
        """Whether any of *transforms* (references or recorded specs) encrypts."""
        return any(self.stages.get(t.id) == "encrypt" for t in transforms)


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


@functools.cache
def builtin_roles() -> Roles:
    """The roles of the built-in transforms: for a configuration read without an engine."""
    return make_plugin_manager(autoload=False).roles
