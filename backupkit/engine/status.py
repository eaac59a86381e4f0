"""Status: the catalog, the drill records and the room left on local sinks, read now,
then judged by :func:`backupkit.core.status.summarize` (the rules live there)."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

import attrs

from backupkit.core.status import DiskUsage, Leftover, Objectives, StatusReport, summarize
from backupkit.engine import drillrecords
from backupkit.engine.layout import Layout
from backupkit.engine.parts import Parts
from backupkit.engine.prune import find_orphans
from backupkit.engine.scan import CatalogScan, scan
from backupkit.errors import BackupkitError
from backupkit.plugin import Sink

log = logging.getLogger("backupkit")


def status(parts: Parts) -> StatusReport:
    """Every configured set (and every other set in the sinks) with its health at the
    engine's clock."""
    sinks = parts.sinks()
    found = scan(sinks, parts.keyring)
    catalog = found.catalog
    sets = parts.config.sets
    readings: dict[str, DiskUsage | None] = {}
    disks = {name: disk_usage(parts.sinks_of(name), readings) for name in dict.fromkeys([*sets, *catalog.sets])}
    now = parts.clock()
    report = summarize(
        catalog, set_names=sets, sinks=[s.location for s in sinks], now=now,
        objectives={name: Objectives(s.rpo, s.rto) for name, s in sets.items()},
        drills=drillrecords.records(sinks), disks=disks,
    )
    return attrs.evolve(report, leftovers=tuple(x for sink in sinks for x in leftovers(sink, found, now)))


def leftovers(sink: Sink, found: CatalogScan, now: dt.datetime) -> list[Leftover]:
    """What *sink* holds that belongs to no backup: its open uploads, and the objects of
    runs that ended without a manifest (collectible or still in their grace period)."""
    mine = [m for m in found.catalog if found.owner.get(m.id) is sink]
    common = {"manifests": mine, "manifest_keys": [found.keys[m.id] for m in mine],
              "unreadable": found.unreadable, "now": now, "active_runs": sink.active_run_ids(),
              "layout": Layout.of(sink), "foreign": found.foreign}
    try:
        keys = list(sink.list_keys())
    except BackupkitError as exc:
        log.warning("cannot list %s for objects without a manifest: %s", sink.location, exc)
        return []
    unnamed = find_orphans(keys, grace=dt.timedelta(0), **common)  # type: ignore[arg-type]
    collectible = set(find_orphans(keys, **common))  # type: ignore[arg-type]
    found_here = [Leftover(sink.location, "open upload", key, size) for key, _, size in sink.open_uploads()]
    found_here += [Leftover(sink.location, "no manifest", key, _size(sink, key), key in collectible)
                   for key in unnamed]
    return found_here


def _size(sink: Sink, key: str) -> int | None:
    try:
        return sink.size_of(key)
    except (OSError, BackupkitError):  # gone since it was listed
        return None


def disk_usage(sinks: Iterable[Sink], readings: dict[str, DiskUsage | None] | None = None) -> list[DiskUsage]:
    """The filesystems of the local *sinks* (remote ones have none to read), each read
    once per *readings*; one that cannot be read is a warning."""
    readings = {} if readings is None else readings
    found = []
    for sink in sinks:
        directory = sink.local_directory()
        if directory is None:
            continue
        if directory not in readings:
            readings[directory] = _read(sink.location, Path(directory))
        usage = readings[directory]
        if usage is not None:
            found.append(usage)
    return found


def _read(location: str, directory: Path) -> DiskUsage | None:
    existing = directory
    while not existing.exists() and existing != existing.parent:  # a sink not made yet: its parent's disk
        existing = existing.parent
    try:
        usage = shutil.disk_usage(existing)
    except OSError as exc:
        log.warning("cannot tell the room left in sink %s: %s", location, exc.strerror or exc)
        return None
    return DiskUsage(location, usage.total, usage.free)
