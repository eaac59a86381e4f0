"""Status: per set, how many backups, how big, and how old the newest one is.

Pure: a summary of a catalog at a time given by the caller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import attrs

from backupkit.core.catalog import Catalog, CatalogProblem


@attrs.frozen
class SetStatus:
    """One set's backups at a moment: their number and size, and the newest one."""

    name: str
    backups: int
    stored_bytes: int
    latest_id: str | None = None
    latest_at: dt.datetime | None = None
    latest_age_seconds: float | None = None  # negative: the newest is in the future

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output (times in ISO 8601)."""
        return {
            "backups": self.backups,
            "stored_bytes": self.stored_bytes,
            "latest_id": self.latest_id,
            "latest_at": self.latest_at.isoformat() if self.latest_at else None,
            "latest_age_seconds": self.latest_age_seconds,
        }


@attrs.frozen
class StatusReport:
    """The status of every set in the sinks read, and the manifests that could not be read."""

    sinks: tuple[str, ...]
    sets: tuple[SetStatus, ...]
    problems: tuple[CatalogProblem, ...] = ()

    def for_set(self, name: str | None) -> StatusReport:
        """Only set *name* (``None``: every set); the catalog's problems stay."""
        if name is None:
            return self
        return attrs.evolve(self, sets=tuple(s for s in self.sets if s.name == name))

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output: sets by name."""
        return {
            "sinks": list(self.sinks),
            "sets": {s.name: s.to_dict() for s in self.sets},
            "problems": [attrs.asdict(p) for p in self.problems],
        }


def summarize(
    catalog: Catalog, *, set_names: Iterable[str], sinks: Iterable[str], now: dt.datetime
) -> StatusReport:
    """The status of the sets named (configured ones, even with no backups yet) and of
    every other set in *catalog*, at *now*."""
    rows = []
    for name in dict.fromkeys([*set_names, *catalog.sets]):
        backups = catalog.for_set(name)
        latest = backups.manifests[-1] if backups else None
        rows.append(SetStatus(
            name=name,
            backups=len(backups),
            stored_bytes=sum(m.stored_size for m in backups),
            latest_id=latest.id if latest else None,
            latest_at=latest.created_at if latest else None,
            latest_age_seconds=(now - latest.created_at).total_seconds() if latest else None,
        ))
    return StatusReport(tuple(sinks), tuple(rows), tuple(catalog.problems))
