"""Status: the catalog, the drill records and the room left on local sinks, read now,
then judged by :func:`backupkit.core.status.summarize` (the rules live there)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

from backupkit.core.status import DiskUsage, Objectives, StatusReport, summarize
from backupkit.engine import drillrecords
from backupkit.engine.parts import Parts
from backupkit.engine.scan import scan
from backupkit.plugin import Sink

log = logging.getLogger("backupkit")


def status(parts: Parts) -> StatusReport:
    """Every configured set (and every other set in the sinks) with its health at the
    engine's clock."""
    sinks = parts.sinks()
    catalog = scan(sinks, parts.keyring).catalog
    sets = parts.config.sets
    readings: dict[str, DiskUsage | None] = {}
    disks = {name: disk_usage(parts.sinks_of(name), readings) for name in dict.fromkeys([*sets, *catalog.sets])}
    return summarize(
        catalog, set_names=sets, sinks=[s.location for s in sinks], now=parts.clock(),
        objectives={name: Objectives(s.rpo, s.rto) for name, s in sets.items()},
        drills=drillrecords.records(sinks), disks=disks,
    )


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
