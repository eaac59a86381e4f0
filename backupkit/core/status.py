"""Status: per set, how many backups, how big, how old the newest one is, the last
restore drill, the room left on local sinks, and from these the set's health.

Pure: a summary of a catalog, drill records and disk readings at a time given by the
caller (the engine reads them: :mod:`backupkit.engine.status`).

The health of a set is the worst of what applies to it (docs/status.md):

- ``failing``: the set has no backup at all; or its last drill failed.
- ``at risk``: with an ``rpo``, the newest backup is older than the RPO; with an
  ``rto``, the last drill took longer than the RTO, or there is no drill yet, or the
  last one is older than :data:`DRILL_MAX_AGE`; a local sink's filesystem is nearly
  full (:func:`room_wanted`).
- ``ok`` otherwise. Each finding is one reason, in words.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from backupkit.core.catalog import Catalog, CatalogProblem
from backupkit.core.drill import DrillRecord, latest
from backupkit.core.units import format_bytes, format_span

OK, AT_RISK, FAILING = "ok", "at risk", "failing"
#: The health levels, from good to bad.
HEALTH = (OK, AT_RISK, FAILING)
#: With an RTO, a drill older than this no longer vouches for it: a monthly drill
#: (``cron = "0 4 1 * *"``, at most 31 days apart) and four days to notice a missed one.
DRILL_MAX_AGE = dt.timedelta(days=35)
#: Storage growth is the bytes stored by the backups of this window, per day.
GROWTH_WINDOW = dt.timedelta(days=7)
#: A local sink's filesystem with less than this share free is nearly full ...
MIN_FREE_SHARE = 0.10
#: ... and so is one with room for fewer than this many of the set's newest full backup.
FULL_BACKUPS_OF_ROOM = 2


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


def worst(levels: Iterable[str]) -> str:
    """The worst of health *levels* (``ok`` for none)."""
    return max(levels, key=HEALTH.index, default=OK)


@attrs.frozen
class Objectives:
    """A set's recovery point and recovery time objectives (``rpo``, ``rto``), if any."""

    rpo: dt.timedelta | None = None
    rto: dt.timedelta | None = None


@attrs.frozen
class Leftover:
    """Something stored in a sink that belongs to no backup: an upload a backup began and
    never finished (S3 multipart), or an object of a backup run that wrote no manifest
    (it died, or was killed), which prune collects once the orphan grace has passed."""

    sink: str
    kind: str  # "open upload" | "no manifest"
    key: str
    bytes: int | None = None
    collectible: bool = False  # "no manifest": the next prune deletes it

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        return {"sink": self.sink, "kind": self.kind, "key": self.key, "bytes": self.bytes,
                "collectible": self.collectible}


@attrs.frozen
class DiskUsage:
    """The filesystem a local sink stores in: its size, the bytes free, and (once judged)
    the bytes that should be free, :func:`room_wanted`."""

    location: str
    total_bytes: int
    free_bytes: int
    wanted_bytes: int = 0

    @property
    def nearly_full(self) -> bool:
        """Fewer bytes free than wanted."""
        return self.free_bytes < self.wanted_bytes

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        return {"location": self.location, "total_bytes": self.total_bytes, "free_bytes": self.free_bytes,
                "wanted_free_bytes": self.wanted_bytes, "nearly_full": self.nearly_full}


def room_wanted(total_bytes: int, newest_full_bytes: int) -> int:
    """The bytes a sink's filesystem should keep free: :data:`MIN_FREE_SHARE` of it, or
    room for :data:`FULL_BACKUPS_OF_ROOM` of the set's newest full backup, the larger."""
    return max(int(total_bytes * MIN_FREE_SHARE), FULL_BACKUPS_OF_ROOM * newest_full_bytes)


@attrs.frozen
class DrillStatus:
    """A set's last restore drill, as status shows it."""

    drill_id: str
    backup_id: str
    started_at: dt.datetime
    ok: bool
    seconds: float  # the measured restore time (the whole drill)
    age_seconds: float
    failures: tuple[str, ...] = ()

    @classmethod
    def of(cls, record: DrillRecord, now: dt.datetime) -> DrillStatus:
        """The status of drill *record* at *now*."""
        return cls(record.drill_id, record.backup_id, record.started_at, record.ok, record.seconds,
                   (now - record.started_at).total_seconds(), tuple(record.failures()))

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        return {"drill_id": self.drill_id, "backup_id": self.backup_id, "started_at": _iso(self.started_at),
                "ok": self.ok, "seconds": self.seconds, "age_seconds": self.age_seconds,
                "failures": list(self.failures)}


@attrs.frozen
class SetStatus:
    """One set at a moment: its backups, their size and growth, the newest one against
    the RPO, the last drill against the RTO, the disks of its local sinks, its health."""

    name: str
    backups: int
    stored_bytes: int
    latest_id: str | None = None
    latest_at: dt.datetime | None = None
    latest_age_seconds: float | None = None  # negative: the newest is in the future
    objectives: Objectives = Objectives()
    last_drill: DrillStatus | None = None
    added_bytes_per_day: float = 0.0  # stored by the backups of the last GROWTH_WINDOW, per day
    disks: tuple[DiskUsage, ...] = ()
    health: str = OK
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output (times in ISO 8601, spans in seconds)."""
        rpo, rto = self.objectives.rpo, self.objectives.rto
        return {
            "backups": self.backups,
            "stored_bytes": self.stored_bytes,
            "latest_id": self.latest_id,
            "latest_at": _iso(self.latest_at),
            "latest_age_seconds": self.latest_age_seconds,
            "health": self.health,
            "reasons": list(self.reasons),
            "rpo_seconds": rpo.total_seconds() if rpo else None,
            "rto_seconds": rto.total_seconds() if rto else None,
            "last_drill": self.last_drill.to_dict() if self.last_drill else None,
            "storage": {"stored_bytes": self.stored_bytes, "added_bytes_per_day": self.added_bytes_per_day,
                        "disks": [d.to_dict() for d in self.disks]},
        }


@attrs.frozen
class StatusReport:
    """The status of every set in the sinks read, and the manifests that could not be read."""

    sinks: tuple[str, ...]
    sets: tuple[SetStatus, ...]
    problems: tuple[CatalogProblem, ...] = ()
    leftovers: tuple[Leftover, ...] = ()

    @property
    def health(self) -> str:
        """The worst health of the sets reported (``ok`` for none)."""
        return worst(s.health for s in self.sets)

    def for_set(self, name: str | None) -> StatusReport:
        """Only set *name* (``None``: every set); the catalog's problems stay."""
        if name is None:
            return self
        return attrs.evolve(self, sets=tuple(s for s in self.sets if s.name == name))

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output: sets by name."""
        return {
            "sinks": list(self.sinks),
            "health": self.health,
            "sets": {s.name: s.to_dict() for s in self.sets},
            "problems": [attrs.asdict(p) for p in self.problems],
            "leftovers": [x.to_dict() for x in self.leftovers],
        }


def _over(value: float, limit: dt.timedelta) -> tuple[str, str]:
    """*value* seconds and *limit* for a reason that says one exceeds the other; in whole
    seconds too where the two would read alike (``6 h (21601 s)``, ``6 h (21600 s)``)."""
    shown, bound = format_span(value), format_span(limit)
    if shown != bound:
        return shown, bound
    return f"{shown} ({value:.0f} s)", f"{bound} ({limit.total_seconds():.0f} s)"


def judge(status: SetStatus) -> tuple[str, tuple[str, ...]]:
    """The health of *status* and the reasons for it, worst first (see the module)."""
    found: list[tuple[str, str]] = []
    rpo, rto, drill = status.objectives.rpo, status.objectives.rto, status.last_drill
    if status.latest_id is None:
        found.append((FAILING, "no backup yet"))
    elif rpo is not None and status.latest_age_seconds is not None and status.latest_age_seconds > rpo.total_seconds():
        age, limit = _over(status.latest_age_seconds, rpo)
        found.append((AT_RISK, f"the newest backup is {age} old, older than the RPO of {limit}"))
    if drill is not None and not drill.ok:
        what = drill.failures[0] if drill.failures else "see 'backupkit drills'"
        found.append((FAILING, f"the last drill ({drill.drill_id}, of backup {drill.backup_id}) failed: {what}"))
    if rto is not None:
        if drill is None:
            found.append((AT_RISK, f"no restore drill yet: nothing shows a restore within the RTO of "
                                   f"{format_span(rto)}"))
        else:
            if drill.ok and drill.seconds > rto.total_seconds():
                took, limit = _over(drill.seconds, rto)
                found.append((AT_RISK, f"the last drill took {took}, longer than the RTO of {limit}"))
            if drill.age_seconds > DRILL_MAX_AGE.total_seconds():
                found.append((AT_RISK, f"the last drill is {format_span(drill.age_seconds)} old, older than "
                                       f"{format_span(DRILL_MAX_AGE)}: drill again to vouch for the RTO"))
    for disk in status.disks:
        if disk.nearly_full:
            found.append((AT_RISK, f"the filesystem of sink {disk.location} is nearly full: "
                                   f"{format_bytes(disk.free_bytes)} free of {format_bytes(disk.total_bytes)}, "
                                   f"under the {format_bytes(disk.wanted_bytes)} to keep free"))
    found.sort(key=lambda f: -HEALTH.index(f[0]))
    return worst(level for level, _ in found), tuple(reason for _, reason in found)


def growth_per_day(catalog: Catalog, now: dt.datetime) -> float:
    """Bytes stored by the backups made in the :data:`GROWTH_WINDOW` before *now*, per
    day (what pruning deleted meanwhile is not subtracted)."""
    since = now - GROWTH_WINDOW
    added = sum(m.stored_size for m in catalog if since < m.created_at <= now)
    return added / (GROWTH_WINDOW / dt.timedelta(days=1))


def summarize(
    catalog: Catalog, *, set_names: Iterable[str], sinks: Iterable[str], now: dt.datetime,
    objectives: Mapping[str, Objectives] | None = None, drills: Sequence[DrillRecord] = (),
    disks: Mapping[str, Iterable[DiskUsage]] | None = None,
) -> StatusReport:
    """The status of the sets named (configured ones, even with no backups yet) and of
    every other set in *catalog*, at *now*.

    :param objectives: each set's RPO and RTO (none for a set not in it).
    :param drills: drill records, of any sets; each set's newest counts.
    :param disks: per set, the filesystems of its local sinks.
    """
    objectives, disks = objectives or {}, disks or {}
    rows = []
    for name in dict.fromkeys([*set_names, *catalog.sets]):
        backups = catalog.for_set(name)
        latest_backup = backups.manifests[-1] if backups else None
        fulls = backups.by_kind("full").manifests
        newest_full = fulls[-1].stored_size if fulls else 0
        drill = latest(drills, name)
        status = SetStatus(
            name=name,
            backups=len(backups),
            stored_bytes=sum(m.stored_size for m in backups),
            latest_id=latest_backup.id if latest_backup else None,
            latest_at=latest_backup.created_at if latest_backup else None,
            latest_age_seconds=(now - latest_backup.created_at).total_seconds() if latest_backup else None,
            objectives=objectives.get(name, Objectives()),
            last_drill=DrillStatus.of(drill, now) if drill else None,
            added_bytes_per_day=growth_per_day(backups, now),
            disks=tuple(attrs.evolve(d, wanted_bytes=room_wanted(d.total_bytes, newest_full))
                        for d in disks.get(name, ())),
        )
        health, reasons = judge(status)
        rows.append(attrs.evolve(status, health=health, reasons=reasons))
    return StatusReport(tuple(sinks), tuple(rows), tuple(catalog.problems))
