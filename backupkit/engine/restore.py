"""Restore: every artifact of a backup (an incremental's whole chain, full backup
first) streamed out of its sink, decoded, checked, and handed to its source plugin."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from backupkit.core.manifest import Artifact, Manifest
from backupkit.core.restore import plan_restore
from backupkit.engine.guards import refuse_unencrypted
from backupkit.engine.incremental import damaged_sidecars
from backupkit.engine.operation import new_run_id, run_operation
from backupkit.engine.parts import Parts
from backupkit.engine.pipeline import open_checked
from backupkit.engine.resolve import is_sidecar, named_artifact, restore_target, scan_for
from backupkit.engine.results import Progress, ProgressCallback, RestoreResult
from backupkit.errors import ConfigError, RestoreError, closest
from backupkit.plugin import Operation, Reader, RestoreContext, Sink
from backupkit.streaming import ReadAhead

log = logging.getLogger("backupkit")


@attrs.define
class RestoreRun:
    """One restore: the chain of backups to read, where to, and what was read so far."""

    parts: Parts
    links: list[Manifest]  # the chain, full backup first; the last is the one restored
    owner: Mapping[str, Sink]
    to: Target | Mapping[str, Target] | None
    overwrite: bool = False
    options: Mapping[str, Any] = attrs.field(factory=dict)
    allow_external_symlinks: bool = False
    progress: ProgressCallback | None = None
    total: int = 0
    current: str = ""
    t0: float = attrs.field(factory=time.monotonic)

    def run(self, names: Iterable[str]) -> RestoreResult:
        """Restore the artifacts *names* of the chain's last backup."""
        manifest = self.links[-1]
        chosen = [named_artifact(manifest, n) for n in names]
        targets: dict[str, str] = {}
        checks: dict[str, Mapping[str, Any]] = {}
        for artifact in chosen:
            target = self.target_for(artifact.name, len(chosen))
            found = self.restore_one(artifact, target)
            if found:
                checks[artifact.name] = dict(found)
            targets[artifact.name] = str(target) if target else ""
            log.info("restored %s of backup %s to %s", artifact.name, manifest.id,
                     redacted(targets[artifact.name]))
        return RestoreResult(manifest.id, {k: redacted(v) for k, v in targets.items()}, self.total,
                             time.monotonic() - self.t0, checks)

    def target_for(self, name: str, count: int) -> Target | None:
        """Where artifact *name* goes: its own entry of a mapping, or ``to/<name>`` when
        several artifacts share one directory."""
        if isinstance(self.to, Mapping):
            return self.to.get(name)
        if isinstance(self.to, Path) and count > 1:
            return self.to / name
        return self.to

    def restore_one(self, artifact: Artifact, target: Target | None) -> Mapping[str, Any] | None:
        """Restore one artifact through its source plugin, from every link of the chain."""
        self.current = artifact.name
        manifest = self.links[-1]
        source = self.parts.plugins.source(artifact.source.id).from_params(artifact.source.params)
        ctx = RestoreContext(
            artifact=artifact.name, target=target, overwrite=self.overwrite,
            allow_external_symlinks=self.allow_external_symlinks, options=self.options,
            facts=artifact.extra,
        )
        links = [(m, m.artifact(artifact.name)) for m in self.links]
        if len(links) == 1:
            checked, fh = open_checked(self.parts, self.owner[manifest.id], manifest, artifact,
                                       self.on_read)
            with fh, ReadAhead(checked, name=f"backupkit-read-{artifact.name}") as ahead:
                found = source.restore(ahead, ctx)
                ahead.finish()  # in case the source stopped before end of stream
            return found
        streams = self.chain_streams(links)
        with contextlib.closing(streams):
            found = source.restore_chain(streams, ctx)
            if next(streams, None) is not None:  # also checks the last stream's end
                raise RestoreError(
                    f"source {source.id!r} did not restore every backup of the chain of "
                    f"{manifest.id}; this is a bug in the plugin"
                )
        return found

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
    to: TargetSpec | Mapping[str, TargetSpec] | None,
    set_name: str | None = None,
    artifacts: Iterable[str] | None = None,
    overwrite: bool = False,
    options: Mapping[str, Any] | None = None,
    allow_external_symlinks: bool = False,
    allow_unencrypted: bool = False,
    progress: ProgressCallback | None = None,
) -> RestoreResult:
    """Restore backup *ref* inside the operation hook; see :meth:`backupkit.Engine.restore`."""
    started = parts.clock()
    operation = Operation("restore", new_run_id(started), started, set_name=set_name)
    return run_operation(parts.plugins, operation, lambda: _restore(
        parts, ref, to=to, set_name=set_name, artifacts=artifacts, overwrite=overwrite,
        options=options or {}, allow_external_symlinks=allow_external_symlinks, allow_unencrypted=allow_unencrypted,
        progress=progress,
    ))


def _restore(
    parts: Parts,
    ref: str,
    *,
    to: TargetSpec | Mapping[str, TargetSpec] | None,
    set_name: str | None,
    artifacts: Iterable[str] | None,
    overwrite: bool,
    options: Mapping[str, Any],
    allow_external_symlinks: bool,
    allow_unencrypted: bool,
    progress: ProgressCallback | None,
) -> RestoreResult:
    found, ref = scan_for(parts, ref)
    links = plan_restore(found.catalog, target=restore_target(ref), set_name=set_name).chain
    if not allow_unencrypted:
        refuse_unencrypted(links, found.catalog, found.sealed, config=parts.config,
                           roles=parts.plugins.roles, unauthenticated=found.unauthenticated)
    manifest = links[-1]
    restorable = [a.name for a in manifest.artifacts if not is_sidecar(a)]
    targets = as_targets(to, restorable, manifest.id)
    if artifacts is not None:
        names = list(artifacts)
    elif isinstance(targets, Mapping):
        names = [n for n in restorable if n in targets]
    else:
        names = restorable
    if isinstance(targets, Mapping):
        missing = [n for n in names if n not in targets]
        if missing:
            raise ConfigError(f"no target for artifact {missing[0]!r}; add --to {missing[0]}=TARGET")
    run = RestoreRun(
        parts, list(links), found.owner, targets, overwrite=overwrite, options=options,
        allow_external_symlinks=allow_external_symlinks, progress=progress,
    )
    result = run.run(names)
    for link in links:  # the data restored is whole and checked; say if the rest is not
        for why in damaged_sidecars(found.owner[link.id], link):
            log.warning("backup %s is damaged: %s; what was restored is complete and checked, but an "
                        "incremental cannot build on it (backupkit verify %s shows it)", link.id, why, link.id)
    return result


#: Where an artifact is restored to: a directory, or a URL (``postgresql://...``).
Target = Path | str
TargetSpec = str | os.PathLike[str]


def as_target(value: TargetSpec) -> Target:
    """A URL stays a string; anything else is a path."""
    text = os.fspath(value)
    return text if "://" in text else Path(text)


def as_targets(
    to: TargetSpec | Mapping[str, TargetSpec] | None, names: list[str], backup_id: str
) -> Target | dict[str, Target] | None:
    """*to* with every URL kept and every path made a :class:`Path`; a mapping's keys
    must be artifacts of the backup."""
    if to is None:
        return None
    if not isinstance(to, Mapping):
        return as_target(to)
    for key in to:
        if key not in names:
            hint = closest(key, names)
            raise ConfigError(f"backup {backup_id} has no artifact {key!r}" + (
                f"; did you mean {hint!r}?" if hint else f"; its artifacts: {', '.join(names)}"))
    return {k: as_target(v) for k, v in to.items()}


def redacted(target: str) -> str:
    """*target* without a password (``postgresql://user:***@host/db``)."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", target)
