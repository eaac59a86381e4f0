"""Every hook backupkit calls. Plugins implement them with ``@backupkit.hookimpl``.

Hooks are called only by :mod:`backupkit.engine` (and the registration hooks by
:mod:`backupkit.plugins` when an engine builds its plugin manager). The types they
take live in the plugin seam, :mod:`backupkit.plugin`. Each engine has
its own plugin manager; nothing is registered globally.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from backupkit.core.manifest import Manifest
    from backupkit.plugin import Operation, Register, RunInfo

_hookspec = pluggy.HookspecMarker("backupkit")


@_hookspec
def backupkit_register_sources(register: Register) -> None:
    """Register source plugin classes.

    Called once, when an engine builds its plugin manager.

    :param register: call ``register.source(cls)`` for each :class:`backupkit.Source`
        subclass; ``cls.id`` is its stable id (``filesystem``, ``postgres``...). Or
        ``register.source("package.module:Class", id=...)``: the module is imported when
        a configuration first uses the id (for plugins whose modules are costly to import).
    """


@_hookspec
def backupkit_register_transforms(register: Register) -> None:
    """Register transform plugin classes (compression, encryption).

    Called once, when an engine builds its plugin manager.

    :param register: call ``register.transform(cls)`` for each
        :class:`backupkit.Transform` subclass, keyed by ``cls.id`` (``gzip``, ``zstd``).
    """


@_hookspec
def backupkit_register_sinks(register: Register) -> None:
    """Register sink plugin classes (where backups are stored).

    Called once, when an engine builds its plugin manager.

    :param register: call ``register.sink(cls)`` for each :class:`backupkit.Sink`
        subclass, keyed by ``cls.id`` (``local``, ``s3``).
    """


@_hookspec(firstresult=True)
def backupkit_sink_for_url(url: str) -> tuple[str, dict[str, object]] | None:
    """Say which sink owns a location given on the command line or in config.

    Called when a sink is given as a bare string (``/var/backups``, ``s3://b/p``).
    The first plugin to answer wins.

    :param url: the location as the user wrote it.
    :return: ``(sink_id, params)`` to build the sink with, or ``None`` if this
        plugin does not handle the location.
    """


@_hookspec
def backupkit_before_run(run: RunInfo) -> None:
    """Called before a backup run reads any source.

    :param run: what is about to run: set name, kind, reason, run id, sink.
        Raising an exception aborts the run before anything is written.
    """


@_hookspec
def backupkit_after_run(run: RunInfo, manifest: Manifest) -> None:
    """Called after a backup run has published its manifest.

    :param run: the run that finished.
    :param manifest: the manifest just written; every artifact it names is stored.
    """


@_hookspec
def backupkit_on_failure(run: RunInfo, error: BaseException) -> None:
    """Called when a backup run fails or is interrupted, after cleanup.

    Nothing of the run is visible in the catalog by then.

    :param run: the run that failed.
    :param error: the exception that ended it (a :class:`backupkit.errors.BackupkitError`
        for expected failures, ``KeyboardInterrupt`` for Ctrl-C).
    """


@_hookspec(firstresult=True)
def backupkit_operation(operation: Operation) -> object:
    """Wrap every backup, prune, verify and restore: for timing, metrics, locks, alerts.

    Called once around each operation, after its arguments are checked and before it
    touches any source or sink. Implementations must be wrappers, ``@hookimpl(wrapper=True)``, that ``yield`` exactly
    once; the operation runs at the ``yield``, which returns its result (a
    :class:`~backupkit.core.manifest.Manifest`, a list of prune results, a verify or
    restore result) or raises its error. Return the result (or raise) after it; use
    ``try``/``finally`` so that what is started before the ``yield`` is always ended::

        @hookimpl(wrapper=True)
        def backupkit_operation(operation):
            started = time.monotonic()
            try:
                return (yield)
            finally:
                print(operation.verb, time.monotonic() - started)

    Raising before the ``yield`` (a lock that is taken) stops the operation before it
    begins. A plain (non-wrapper) implementation is refused when the plugin loads.

    :param operation: the verb, set, sink and run id of what is about to run.
    :return: the operation's result, unchanged unless the wrapper means to replace it.
    """


@_hookspec
def backupkit_engine_plugins(
    settings: Mapping[str, Any], sinks_of: Callable[[str | None, str | None], list[Any]]
) -> list[object] | None:
    """Plugins of one engine, built from the configuration's ``[plugins.<name>]`` tables.

    Called once when an engine is made from a configuration (after the registration
    hooks). *settings* maps each ``[plugins.<name>]`` table's name to its contents;
    return the objects to register with this engine only (an alert notifier with its
    webhook, a lock with its lease time), or ``None``. Raise
    :class:`backupkit.errors.ConfigError` for a bad setting of yours.

    :param settings: ``{name: table}`` of the configuration's ``[plugins.<name>]`` tables.
    :param sinks_of: ``sinks_of(set_name, location)``: the sinks an operation touches (its
        location's, else its set's, else every configured one), for plugins that store
        something beside the backups (an audit log, a lease). Take only the arguments
        you need.
    :return: plugin objects to register with this engine, or ``None``.
    """
