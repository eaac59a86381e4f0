"""A backup run, for one set.

1. ``backupkit_before_run``; the sink's ``begin_run`` (collects stale temp data).
2. For each source: read it in a thread into a bounded :class:`ChunkPipe`; in this
   thread push the chunks through the transform chain (compress, then encrypt)
   into a sink writer; both ends are hashed. Commit the artifact.
3. Write the manifest, last. Only now does the backup exist for the catalog.
4. ``backupkit_after_run``; the run's log goes to ``logs/``.

If anything fails or is interrupted, the manifest is deleted if its write had begun
(it may have become visible before the write failed), then the artifacts already
committed; the one being written is aborted, the temp directory removed, and
``backupkit_on_failure`` is called: the catalog is exactly as before.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable
from typing import Any

import attrs

from backupkit._version import __version__
from backupkit.config import SetConfig
from backupkit.core.manifest import MANIFEST_SUFFIX, Artifact, Manifest
from backupkit.core.tiers import assign_tier
from backupkit.crypto.authenticated import authenticate_manifest
from backupkit.crypto.sealed import seal_manifest
from backupkit.engine.incremental import check_parent_still_there, parent_for
from backupkit.engine.operation import new_run_id, run_operation
from backupkit.engine.parts import Parts
from backupkit.engine.pipeline import sink_error
from backupkit.engine.results import ProgressCallback
from backupkit.engine.runlog import RunLog
from backupkit.engine.scan import scan
from backupkit.engine.store import SourceStore
from backupkit.errors import BackupkitError, ConfigError, NotFoundError, PluginError
from backupkit.plugin import Operation, RunInfo, Sink, Source, Transform

log = logging.getLogger("backupkit")

def backup(
    parts: Parts,
    set_name: str | None,
    *,
    kind: str = "full",
    reason: str = "manual",
    tags: Iterable[str] = (),
    progress: ProgressCallback | None = None,
) -> Manifest:
    """Run one backup of a set inside the operation hook; see :meth:`backupkit.Engine.backup`."""
    set_cfg = parts.config.get_set(set_name)
    if kind not in ("full", "incremental"):
        raise ConfigError(f"backup kind {kind!r} is unknown; use 'full' or 'incremental'")
    where = f"set {set_cfg.name!r}"
    run = BackupRun(
        parts, set_cfg, parts.sources(set_cfg), parts.transforms(set_cfg.transforms, where),
        parts.sink_for(set_cfg.sink), kind=kind, reason=reason, tags=tuple(tags),
        progress=progress,
    )
    operation = Operation("backup", run.run_id, run.started, set_name=set_cfg.name,
                          sink=run.sink.location, kind=kind)
    return run_operation(parts.plugins, operation, run.run)


def expanded(sources: list[tuple[str, Source]]) -> list[tuple[str, Source]]:
    """Each source's artifacts (:meth:`Source.expand`: a server's databases), in order;
    two artifacts of one name are refused."""
    out: list[tuple[str, Source]] = []
    for name, source in sources:
        out.extend(source.expand(name))
    names = [n for n, _ in out]
    for n in names:
        if names.count(n) > 1:
            raise ConfigError(f"two artifacts of this backup are named {n!r}; rename one of the sources")
    return out


@attrs.define
class BackupRun:
    """One backup of one set: what it reads and where it stores, and what it has stored
    so far (so that a failure removes exactly that)."""

    parts: Parts
    set_cfg: SetConfig
    sources: list[tuple[str, Source]]
    chain: list[Transform]
    sink: Sink
    kind: str
    reason: str
    tags: tuple[str, ...] = ()
    progress: ProgressCallback | None = None
    started: Any = attrs.field(init=False)
    run_id: str = attrs.field(init=False)
    committed: list[str] = attrs.field(factory=list, init=False)  # keys stored so far
    published: tuple[str, bytes] | None = attrs.field(default=None, init=False)  # the manifest
    t0: float = attrs.field(factory=time.monotonic, init=False)

    def __attrs_post_init__(self) -> None:
        self.started = self.parts.clock()
        self.run_id = new_run_id(self.started)

    def run(self) -> Manifest:
        """Store every source and the manifest; on any failure, leave nothing behind."""
        parent, parent_key = None, ""
        if self.kind == "incremental":
            found = parent_for(self.set_cfg.name, self.sink, self.sources, self.parts.keyring)
            if found is None:
                self.kind = "full"
            else:
                parent, parent_key = found
        run = RunInfo(
            run_id=self.run_id,
            set_name=self.set_cfg.name,
            kind=self.kind,
            reason=self.reason,
            started_at=self.started,
            sink=self.sink.location,
            hostname=self.set_cfg.hostname or socket.gethostname(),
        )
        stem = f"{self.set_cfg.name}_{self.kind}_{run.run_id}"
        run = attrs.evolve(run, log_key=self.sink.log_key(stem + ".log", run=run))
        tier = "incremental"
        if self.kind == "full":  # monthly / weekly / daily, counted in the configured time zone
            tier = assign_tier(
                scan([self.sink], self.parts.keyring).catalog, set_name=self.set_cfg.name,
                kind=self.kind, created_at=self.started, tz=self.parts.config.tz,
            )
        run_log = RunLog(run.run_id)
        run_log.attach()
        began = False
        try:
            self.parts.plugins.hook.backupkit_before_run(run=run)
            self.sink.begin_run(run.run_id)
            began = True
            log.info("backup %s of set %s to %s started", run.run_id, self.set_cfg.name,
                     self.sink.location)
            artifacts: list[Artifact] = []
            for name, source in expanded(self.sources):
                store = SourceStore(self.parts, self.sink, self.chain, self.committed,
                                    self.progress, self.t0, run, name, source, tier, stem, parent)
                artifacts.extend(store.run())
            manifest = self.manifest(run, tier, parent, artifacts)
            manifest_key = self.sink.key_for(tier, stem + MANIFEST_SUFFIX, run=run)
            if parent is not None:
                check_parent_still_there(self.sink, parent, parent_key)
            self.publish(manifest, manifest_key)
        except BaseException as exc:
            log.error("backup %s failed: %s", run.run_id, exc)
            self.remove_failed_run()
            self.finish(run, run_log, began)
            self.parts.plugins.notify("backupkit_on_failure", run=run, error=exc)  # never raises
            raise
        log.info(
            "backup %s stored %d bytes (%d raw) in %.1fs",
            run.run_id, manifest.stored_size, manifest.raw_size, manifest.duration_seconds,
        )
        self.finish(run, run_log, began)
        failed = self.parts.plugins.notify("backupkit_after_run", run=run, manifest=manifest)
        if failed:
            plugin, error = failed[0]
            raise PluginError(
                f"backup {manifest.id} was stored, but the backupkit_after_run hook of plugin "
                f"{plugin} failed: {type(error).__name__}: {error}"
            ) from error
        return manifest

    def manifest(
        self, run: RunInfo, tier: str, parent: Manifest | None, artifacts: list[Artifact]
    ) -> Manifest:
        """The run's manifest, once every artifact is stored."""
        return Manifest(
            id=run.run_id,
            set_name=self.set_cfg.name,
            created_at=self.started,
            kind=self.kind,  # type: ignore[arg-type]
            parent_id=parent.id if parent else None,
            hostname=run.hostname,
            reason=self.reason,
            tags=tuple(dict.fromkeys([*self.set_cfg.tags, *self.tags])),
            tier=tier,
            tool_version=__version__,
            duration_seconds=round(time.monotonic() - self.t0, 3),
            artifacts=tuple(artifacts),
        )

    def publish(self, manifest: Manifest, key: str) -> None:
        """Write the manifest (sealed when the set says so, else authenticated when the set
        encrypts): the backup now exists."""
        try:
            body = manifest.to_json()
            where = f"set {self.set_cfg.name!r}"
            if self.set_cfg.encrypt_manifest:  # only the format and key id stay in the clear
                body = seal_manifest(body, self.parts.keyring.writing_key(what=where))
            elif self.parts.keyring.writer is not None and self.parts.plugins.roles.encrypts(self.set_cfg.transforms):
                body = authenticate_manifest(body, self.parts.keyring.writer)
            self.published = (key, body)
            self.sink.put_bytes(key, body, run_id=self.run_id)
        except OSError as exc:
            raise sink_error(exc, self.sink, key) from None

    def finish(self, run: RunInfo, run_log: RunLog, began: bool) -> None:
        """Stop capturing the log, store it, and end the run in the sink."""
        run_log.detach()
        if not began:
            return
        try:
            run_log.store(self.sink, run, self.parts.keyring,
                          seal=self.set_cfg.encrypt_manifest)
        finally:
            self.sink.end_run(run.run_id)

    def remove_failed_run(self) -> None:
        """Undo a failed run: its manifest first, if its write began, then its artifacts.

        A manifest write can fail after the manifest became visible (a lost reply, a
        directory fsync error, a signal after the rename); deleting the artifacts while it
        stays would leave a catalogued backup without data. A manifest key carrying the
        run id is this run's; one without it (a layout without run ids) is deleted only if
        it holds this run's bytes. If the manifest cannot be removed, the artifacts it may
        name stay too (prune collects them once the manifest is gone).
        """
        if self.published is not None:
            key, body = self.published
            try:
                if self.run_id in key or _holds(self.sink, key, body):
                    self.sink.delete([key])
            except (BackupkitError, OSError) as cleanup_error:
                log.error("could not remove the manifest %s: %s; its artifacts are kept",
                          key, cleanup_error)
                return
        if self.committed:
            try:
                self.sink.delete(self.committed)
            except (BackupkitError, OSError) as cleanup_error:
                log.error("could not remove %s: %s", self.committed, cleanup_error)


def _holds(sink: Sink, key: str, body: bytes) -> bool:
    """Whether *key* in *sink* holds exactly *body* (False if it does not exist)."""
    try:
        return sink.get_bytes(key) == body
    except NotFoundError:
        return False
