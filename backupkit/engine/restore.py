"""Restore: every artifact of a backup (an incremental's whole chain, full backup
first) streamed out of its sink, decoded, checked, and handed to its source plugin."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path

import attrs

from backupkit.core.manifest import Artifact, Manifest
from backupkit.core.restore import plan_restore
from backupkit.engine.guards import refuse_unencrypted
from backupkit.engine.operation import new_run_id, run_operation
from backupkit.engine.parts import Parts
from backupkit.engine.pipeline import open_checked
from backupkit.engine.resolve import is_sidecar, restore_target, scan_for
from backupkit.engine.results import Progress, ProgressCallback, RestoreResult
from backupkit.errors import RestoreError
from backupkit.plugin import Operation, Reader, RestoreContext, Sink
from backupkit.streaming import ReadAhead

log = logging.getLogger("backupkit")


@attrs.define
class RestoreRun:
    """One restore: the chain of backups to read, where to, and what was read so far."""

    parts: Parts
    links: list[Manifest]  # the chain, full backup first; the last is the one restored
    owner: Mapping[str, Sink]
    to: Path | None
    overwrite: bool = False
    allow_external_symlinks: bool = False
    progress: ProgressCallback | None = None
    total: int = 0
    current: str = ""
    t0: float = attrs.field(factory=time.monotonic)

    def run(self, names: Iterable[str]) -> RestoreResult:
        """Restore the artifacts *names* of the chain's last backup."""
        manifest = self.links[-1]
        chosen = [manifest.artifact(n) for n in names]
        targets: dict[str, str] = {}
        for artifact in chosen:
            target = self.to
            if target is not None and len(chosen) > 1:
                target = target / artifact.name
            self.restore_one(artifact, target)
            targets[artifact.name] = str(target) if target else ""
            log.info("restored %s of backup %s to %s", artifact.name, manifest.id, target)
        return RestoreResult(manifest.id, targets, self.total, time.monotonic() - self.t0)

    def restore_one(self, artifact: Artifact, target: Path | None) -> None:
        """Restore one artifact through its source plugin, from every link of the chain."""
        self.current = artifact.name
        manifest = self.links[-1]
        source = self.parts.plugins.source(artifact.source.id).from_params(artifact.source.params)
        ctx = RestoreContext(
            artifact=artifact.name, target=target, overwrite=self.overwrite,
            allow_external_symlinks=self.allow_external_symlinks,
        )
        links = [(m, m.artifact(artifact.name)) for m in self.links]
        if len(links) == 1:
            checked, fh = open_checked(self.parts, self.owner[manifest.id], manifest, artifact,
                                       self.on_read)
            with fh, ReadAhead(checked, name=f"backupkit-read-{artifact.name}") as ahead:
                source.restore(ahead, ctx)
                ahead.finish()  # in case the source stopped before end of stream
            return
        streams = self.chain_streams(links)
        with contextlib.closing(streams):
            source.restore_chain(streams, ctx)
            if next(streams, None) is not None:  # also checks the last stream's end
                raise RestoreError(
                    f"source {source.id!r} did not restore every backup of the chain of "
                    f"{manifest.id}; this is a bug in the plugin"
                )

    def chain_streams(
        self, links: list[tuple[Manifest, Artifact]]
    ) -> Generator[Reader, None, None]:
        """Each link's stream in turn; each is checked to its end when the next is taken."""
        for manifest, artifact in links:
            checked, fh = open_checked(self.parts, self.owner[manifest.id], manifest, artifact,
                                       self.on_read)
            with fh, ReadAhead(checked, name=f"backupkit-read-{artifact.name}") as ahead:
                yield ahead
                ahead.finish()

    def on_read(self, n: int) -> None:
        """Count *n* more bytes read, and report progress."""
        self.total += n
        if self.progress is not None:
            self.progress(Progress(self.current, self.total, 0, "", time.monotonic() - self.t0))


def restore(
    parts: Parts,
    ref: str,
    *,
    to: str | os.PathLike[str] | None,
    set_name: str | None = None,
    artifacts: Iterable[str] | None = None,
    overwrite: bool = False,
    allow_external_symlinks: bool = False,
    allow_unencrypted: bool = False,
    progress: ProgressCallback | None = None,
) -> RestoreResult:
    """Restore backup *ref* inside the operation hook; see :meth:`backupkit.Engine.restore`."""
    started = parts.clock()
    operation = Operation("restore", new_run_id(started), started, set_name=set_name)
    return run_operation(parts.plugins, operation, lambda: _restore(
        parts, ref, to=to, set_name=set_name, artifacts=artifacts, overwrite=overwrite,
        allow_external_symlinks=allow_external_symlinks, allow_unencrypted=allow_unencrypted,
        progress=progress,
    ))


def _restore(
    parts: Parts,
    ref: str,
    *,
    to: str | os.PathLike[str] | None,
    set_name: str | None,
    artifacts: Iterable[str] | None,
    overwrite: bool,
    allow_external_symlinks: bool,
    allow_unencrypted: bool,
    progress: ProgressCallback | None,
) -> RestoreResult:
    found, ref = scan_for(parts, ref)
    links = plan_restore(found.catalog, target=restore_target(ref), set_name=set_name).chain
    if not allow_unencrypted:
        refuse_unencrypted(links, found.catalog, found.sealed, config=parts.config,
                           roles=parts.plugins.roles)
    manifest = links[-1]
    if artifacts is None:
        names = [a.name for a in manifest.artifacts if not is_sidecar(a)]
    else:
        names = list(artifacts)
    run = RestoreRun(
        parts, list(links), found.owner, None if to is None else Path(to), overwrite=overwrite,
        allow_external_symlinks=allow_external_symlinks, progress=progress,
    )
    return run.run(names)
