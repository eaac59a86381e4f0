"""Drill records in the sinks: written by :mod:`backupkit.engine.drill`, read by
``backupkit drills``, the status (RTO, last drill) and the metrics.

A record is a small JSON object at ``drills/<set>/<drill id>.json``
(:func:`backupkit.core.drill.record_key`), outside every backup's keys, so neither
retention nor the orphan collector ever reads or removes it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from backupkit.core.drill import PREFIX, DrillRecord
from backupkit.errors import BackupkitError
from backupkit.plugin import Sink

log = logging.getLogger("backupkit")


def store(sink: Sink, record: DrillRecord) -> None:
    """Write *record* into *sink* (a drill id is never written twice)."""
    sink.put_standalone(record.key, json.dumps(record.to_dict(), indent=2).encode() + b"\n")


def records(sinks: Iterable[Sink], set_name: str | None = None) -> list[DrillRecord]:
    """Every readable drill record in *sinks* (of *set_name*), oldest first; one that
    cannot be read is logged and skipped, and a record in two sinks counts once."""
    found: dict[str, DrillRecord] = {}
    prefix = PREFIX if set_name is None else f"{PREFIX}{set_name}/"
    for sink in sinks:
        for key in sorted(sink.list_keys(prefix)):
            if not key.endswith(".json"):
                continue
            try:
                record = DrillRecord.from_dict(json.loads(sink.get_bytes(key)))
            except (ValueError, OSError, BackupkitError) as exc:
                log.warning("unreadable drill record %s in %s: %s", key, sink.location, exc)
                continue
            found.setdefault(record.drill_id, record)
    return sorted(found.values(), key=lambda r: (r.started_at, r.drill_id))
