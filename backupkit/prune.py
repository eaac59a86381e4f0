"""Carrying out a retention plan on a sink, in an order a crash cannot hurt.

The plan itself is pure (:func:`backupkit.core.retention.plan_retention`). Here it
meets storage: for each doomed backup, incrementals before the backups they depend
on, the **manifest is deleted first** and its artifacts after, so a crash part way
never leaves a manifest pointing at missing data; artifacts whose manifest is gone
are orphans that the next prune collects.

An orphan is a stored object in a tier directory that no manifest names, whose name
carries a backup id (``..._20240101T020000Z-3f2a1c.``) older than the grace period,
that belongs to no running backup, and that does not share its name stem with a
manifest the catalog could not read (those artifacts may still be needed).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping

import attrs

from backupkit.core.manifest import MANIFEST_SUFFIX, Manifest
from backupkit.core.retention import RetentionPlan
from backupkit.sinks.base import Sink

#: Objects of a backup younger than this are never collected as orphans.
ORPHAN_GRACE = dt.timedelta(hours=6)
_RUN_ID = re.compile(r"_(\d{8}T\d{6}Z)-([0-9a-f]{6,32})\.")


@attrs.frozen
class PruneResult:
    """What a prune decided and (unless a dry run) did."""

    plan: RetentionPlan
    dry_run: bool
    deleted: tuple[str, ...] = ()  # backup ids
    deleted_keys: tuple[str, ...] = ()
    orphans: tuple[str, ...] = ()  # keys collected (or, in a dry run, that would be)

    @property
    def freed_bytes(self) -> int:
        return sum(m.stored_size for m in self.plan.delete)


def carry_out(
    sink: Sink,
    plan: RetentionPlan,
    manifest_keys: Mapping[str, str],
    *,
    dry_run: bool,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Delete the plan's backups from *sink*; return (backup ids, keys) deleted."""
    ids: list[str] = []
    keys: list[str] = []
    if dry_run:
        return (), ()
    doomed = [m for m in plan.deletion_order if m.id in manifest_keys]
    for manifest in doomed:  # manifests first, one by one, children before parents
        sink.delete([manifest_keys[manifest.id]])
        ids.append(manifest.id)
        keys.append(manifest_keys[manifest.id])
    artifact_keys = [a.key for m in doomed for a in m.artifacts]
    sink.delete(artifact_keys)  # a sink may batch these (S3: 1000 a request)
    keys.extend(artifact_keys)
    return tuple(ids), tuple(keys)


def find_orphans(
    keys: Iterable[str],
    manifests: Iterable[Manifest],
    manifest_keys: Iterable[str],
    unreadable: Iterable[str],
    *,
    now: dt.datetime,
    active_runs: Iterable[str] = (),
    grace: dt.timedelta = ORPHAN_GRACE,
) -> list[str]:
    """Stored keys that belong to no backup (see the module docstring for the rules)."""
    named = {a.key for m in manifests for a in m.artifacts} | set(manifest_keys)
    protected_stems = tuple(k[: -len(MANIFEST_SUFFIX)] + "." for k in unreadable)
    running = set(active_runs)
    orphans = []
    for key in keys:
        if key in named or key.endswith((MANIFEST_SUFFIX, ".log")) or key.startswith("logs/"):
            continue
        if protected_stems and key.startswith(protected_stems):
            continue
        match = _RUN_ID.search(key.rsplit("/", 1)[-1])
        if match is None:
            continue  # not ours: never delete what we cannot date
        run_id = f"{match.group(1)}-{match.group(2)}"
        made = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        if run_id in running or now - made < grace:
            continue
        orphans.append(key)
    return orphans
