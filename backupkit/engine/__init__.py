"""The engine: the one package that calls hooks, reads the clock and orders I/O.

:class:`Engine` is the facade a library user holds: it is built from a configuration,
owns the plugins, the clock and the keyring, and has one short method per verb. Each
verb lives in a module of its own and gets the engine's :class:`~backupkit.engine.parts.Parts`
(never the facade): :mod:`~backupkit.engine.backup` (with :mod:`~backupkit.engine.store`
for one source's streams), :mod:`~backupkit.engine.restore`, :mod:`~backupkit.engine.verify`,
:mod:`~backupkit.engine.prune`; beneath them :mod:`~backupkit.engine.pipeline` (one
stream through the chain both ways), :mod:`~backupkit.engine.scan` (reading the catalog),
:mod:`~backupkit.engine.incremental`, :mod:`~backupkit.engine.guards`,
:mod:`~backupkit.engine.runlog` and :mod:`~backupkit.engine.operation` (the hook
plugins wrap around every verb).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from backupkit.config import Config, PluginRef
from backupkit.crypto.keys import Keyring
from backupkit.engine import resolve
from backupkit.engine.parts import Clock, Parts
from backupkit.engine.resolve import is_location
from backupkit.engine.results import (
    ArtifactCheck,
    Progress,
    ProgressCallback,
    PruneResult,
    RestoreResult,
    VerifyResult,
)
from backupkit.engine.scan import scan
from backupkit.errors import DisabledError
from backupkit.plugins import Plugins, make_plugin_manager

# Each verb's module is imported by its method: a command loads the code of its verb only.
if TYPE_CHECKING:
    from backupkit.core.catalog import Catalog
    from backupkit.core.drill import DrillRecord
    from backupkit.core.manifest import Manifest
    from backupkit.core.retention import RetentionPolicy
    from backupkit.core.simulate import SimulationRow
    from backupkit.core.status import StatusReport
    from backupkit.plugin import Sink

__all__ = [
    "ArtifactCheck",
    "Clock",
    "Engine",
    "Progress",
    "ProgressCallback",
    "PruneResult",
    "RestoreResult",
    "VerifyResult",
    "is_location",
]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@attrs.define
class Engine:
    """Runs backups, restores and verifications for a configuration.

    Build one with :meth:`from_config` (a dict, a :class:`Config`, or a TOML path).
    Each engine has its own plugin manager.
    """

    config: Config
    plugins: Plugins = attrs.field(factory=make_plugin_manager)
    clock: Clock = _utcnow
    keyring: Keyring = attrs.field(factory=Keyring)  # encryption keys; shows ids only

    @classmethod
    def from_config(
        cls,
        config: Config | Mapping[str, Any] | str | os.PathLike[str],
        *,
        plugins: Iterable[object] = (),
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        key_file: str | os.PathLike[str] | None = None,
    ) -> Engine:
        """An engine for *config*, with its own plugin manager (built-ins, entry points
        and *plugins*).

        :param env: the environment to read (``BACKUP_*`` variables, keys); by default
            the process's.
        :param key_file: a key file (``--key-file``); keys also come from *env*
            (``BACKUP_ENCRYPTION_KEY``...) and the config's ``key_file``, see
            :mod:`backupkit.crypto.keys`.
        """
        manager = make_plugin_manager(plugins=plugins)
        if isinstance(config, Config):
            cfg = config
        elif isinstance(config, Mapping):
            cfg = Config.from_dict(config, env=env, roles=manager.roles)
        else:
            cfg = Config.from_file(config, env=env, roles=manager.roles)
        key_files = [f for f in (key_file, cfg.key_file) if f]
        engine = cls(cfg, manager, clock or _utcnow, keyring=Keyring.from_env(env, key_files=key_files))
        for built in manager.hook.backupkit_engine_plugins(settings=cfg.plugin_settings,
                                                           sinks_of=engine.parts.sinks_of):
            for plugin in built or ():
                manager.manager.register(plugin)
        return engine

    @property
    def parts(self) -> Parts:
        """What the verbs work with: this engine's configuration, plugins, clock and keys."""
        return Parts(self.config, self.plugins, self.clock, self.keyring)

    def check_enabled(self, *, force: bool = False) -> None:
        """Raise :class:`DisabledError` if backups are turned off (``BACKUP_ENABLED=false``
        when the configuration was read) and *force* is not given."""
        if not force and not self.config.backups_enabled:
            raise DisabledError(
                "backups are disabled (BACKUP_ENABLED=false); unset it, or pass --force "
                "(force=True) to run this one anyway"
            )

    def sink_for(self, ref: PluginRef | str) -> Sink:
        """The sink a configuration entry or a location (path, URL) names."""
        return self.parts.sink_for(ref)

    def backup(
        self,
        set_name: str | None = None,
        *,
        kind: str = "full",
        reason: str = "manual",
        tags: Iterable[str] = (),
        progress: ProgressCallback | None = None,
        force: bool = False,
    ) -> Manifest:
        """Run one backup of a set; return its manifest once everything is stored.

        *kind* is ``full`` or ``incremental`` (which runs as a full backup when there is
        nothing usable to build on, with a warning saying why). With ``BACKUP_ENABLED=false``
        in the environment the configuration was read with, :class:`DisabledError` is
        raised and nothing runs, unless *force*.
        """
        from backupkit.engine import backup  # noqa: PLC0415

        self.check_enabled(force=force)

        return backup.backup(self.parts, set_name, kind=kind, reason=reason, tags=tags,
                             progress=progress)

    def catalog(self) -> Catalog:
        """Every backup in every configured sink; unreadable manifests in ``.problems``."""
        return scan(self.parts.sinks(), self.keyring).catalog

    def status(self) -> StatusReport:
        """Per set: counts, sizes and growth, the newest backup against the RPO, the last
        drill against the RTO, the room left on local sinks, and the set's health
        (``ok``, ``at risk``, ``failing``, with reasons); and catalog problems. See
        :mod:`backupkit.core.status` for the rules."""
        from backupkit.engine import status  # noqa: PLC0415

        return status.status(self.parts)

    def prune(
        self,
        set_name: str | None = None,
        *,
        policy: RetentionPolicy | None = None,
        dry_run: bool = True,
        orphan_grace: dt.timedelta | None = None,
    ) -> list[PruneResult]:
        """Plan retention for each set and, unless *dry_run*, delete what the plan drops.

        The policy is *policy*, else the set's ``retention`` table, else the
        configuration's default (:func:`backupkit.config.default_policy`). Deletion is
        crash-safe (manifest first, then artifacts); artifacts without a manifest
        (orphans of crashed runs and prunes) older than *orphan_grace* (default
        :data:`backupkit.engine.prune.ORPHAN_GRACE`) are collected; on
        a sink that cannot tell which backups are running, those of a run that stored no
        run log yet wait at least :data:`backupkit.engine.prune.UNTRACKED_RUN_GRACE`.
        Returns one result per set.
        """
        from backupkit.engine import prune  # noqa: PLC0415

        grace = prune.ORPHAN_GRACE if orphan_grace is None else orphan_grace
        return prune.prune(self.parts, set_name, policy=policy, dry_run=dry_run,
                           orphan_grace=grace)

    def simulate(
        self,
        policy: RetentionPolicy | None = None,
        *,
        duration: dt.timedelta,
        every: dt.timedelta,
        set_name: str | None = None,
        schedule: Iterable[str] = ("full",),
        sizes: Mapping[str, int] | None = None,
        start: dt.datetime | None = None,
    ) -> list[SimulationRow]:
        """Run a policy forward on a synthetic schedule; no storage is touched.

        Sizes default to the average stored size per kind in the set's catalog when it
        has backups, else :data:`backupkit.core.simulate.DEFAULT_SIZES`.
        """
        from backupkit.engine import prune  # noqa: PLC0415

        return prune.simulate(self.parts, policy, duration=duration, every=every,
                              set_name=set_name, schedule=schedule, sizes=sizes, start=start)

    def resolve(self, ref: str = "latest", *, set_name: str | None = None) -> Manifest:
        """The manifest of backup *ref* (``latest``, an id or unique prefix)."""
        return self.catalog().resolve(ref, set_name=set_name)

    def manifest_at(self, url: str) -> tuple[Manifest, Sink]:
        """Read the manifest stored at *url*; return it and the sink holding its artifacts."""
        return resolve.manifest_at(self.parts, url)

    def presigned_url(
        self, ref: str, artifact: str | None = None, *, expires: int = 3600,
        set_name: str | None = None,
    ) -> str:
        """An expiring GET URL for an artifact of backup *ref* (see
        :func:`backupkit.engine.presign.presigned_url`)."""
        from backupkit.engine import presign  # noqa: PLC0415

        return presign.presigned_url(self.parts, ref, artifact, expires=expires,
                                     set_name=set_name)

    def restore(
        self,
        ref: str = "latest",
        *,
        to: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None,
        set_name: str | None = None,
        artifacts: Iterable[str] | None = None,
        overwrite: bool = False,
        options: Mapping[str, Any] | None = None,
        allow_external_symlinks: bool = False,
        allow_unencrypted: bool = False,
        progress: ProgressCallback | None = None,
    ) -> RestoreResult:
        """Restore backup *ref* (``latest``, an id, a unique prefix, a time) into *to*.

        One artifact restores into *to*; several each into ``to/<artifact name>``, or
        each into its own target given as a mapping (``{"files": "/srv/app", "db":
        "postgresql://..."}``; then only the mapped artifacts unless *artifacts* says).
        *options* are flags for the sources (``clean``, ``create``, ``no_owner``,
        ``no_privileges`` for databases; *overwrite* means ``clean`` to them).
        An incremental backup restores its whole chain, full backup first. Every byte
        is checked against the manifests before anything becomes visible.
        *allow_external_symlinks* lets symlinks leading out of the target (``/etc/localtime``,
        a virtualenv's ``bin/python``) be restored as they are, instead of refusing the backup.
        *allow_unencrypted* restores a backup that is not encrypted although its set is
        configured to encrypt (see :func:`backupkit.engine.guards.refuse_unencrypted`).
        """
        from backupkit.engine import restore  # noqa: PLC0415

        return restore.restore(
            self.parts, ref, to=to, set_name=set_name, artifacts=artifacts, overwrite=overwrite,
            options=options, allow_external_symlinks=allow_external_symlinks,
            allow_unencrypted=allow_unencrypted,
            progress=progress,
        )

    def verify(self, ref: str = "latest", *, set_name: str | None = None) -> VerifyResult:
        """Re-read every stored artifact a restore of backup *ref* would read (an
        incremental's whole chain) and check both checksums."""
        from backupkit.engine import verify  # noqa: PLC0415

        return verify.verify(self.parts, ref, set_name=set_name)

    def drill(self, ref: str = "latest", *, set_name: str | None = None,
              progress: ProgressCallback | None = None) -> DrillRecord:
        """Restore backup *ref* into scratch targets (a temp directory, a throwaway
        database, a temporary ``redis-server``), check it against its manifest and the
        set's ``drill`` checks, remove the scratch targets, and store the drill's record
        in the backup's sink. Returns the record of a drill that passed; one that failed
        raises :class:`~backupkit.errors.DrillFailed` (with the stored ``record``)."""
        from backupkit.engine import drill  # noqa: PLC0415

        return drill.drill(self.parts, ref, set_name=set_name, progress=progress)

    def drills(self, set_name: str | None = None) -> list[DrillRecord]:
        """The drill records in the configured sinks (of *set_name*), oldest first."""
        from backupkit.engine import drillrecords  # noqa: PLC0415

        return drillrecords.records(self.parts.sinks(), set_name)
