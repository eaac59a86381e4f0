"""Tiers: which shelf a new backup goes on (the daily / weekly / monthly layout).

A full backup is ``monthly`` if it is the first full backup of its set in its calendar
month, ``weekly`` if it is the first of its ISO week, else ``daily``; an incremental is
``incremental``. Months and weeks are counted in the time zone passed in, never the
machine's. The tier is recorded in the manifest when the backup is made and the sink
stores the backup under it; retention reads the recorded tier (``tier_ages``).

"First" means no earlier full backup of the same set *still in the catalog* falls in the
same month (or week): if the first full of a month was pruned, the next one made that
month is ``monthly``.
"""

from __future__ import annotations

import datetime as dt

from backupkit.core.catalog import Catalog
from backupkit.core.manifest import KINDS
from backupkit.errors import ConfigError

TIERS = ("daily", "weekly", "monthly", "incremental")

# Two dates in one calendar month or one ISO week are less than 32 days apart.
_LOOKBACK = dt.timedelta(days=32)


def assign_tier(
    catalog: Catalog, *, set_name: str, kind: str, created_at: dt.datetime, tz: dt.tzinfo
) -> str:
    """The tier of a backup of *set_name* of *kind* made at *created_at*.

    Only full backups of the same set created strictly before *created_at* are compared,
    so the answer is the same whether or not the new backup is already in *catalog*.
    """
    if kind not in KINDS:
        raise ConfigError(f"backup kind {kind!r} is not one of: {', '.join(KINDS)}")
    if created_at.tzinfo is None or created_at.utcoffset() is None:
        raise ConfigError(f"time {created_at.isoformat()} has no time zone; add one, e.g. 'Z'")
    if kind == "incremental":
        return "incremental"
    local = created_at.astimezone(tz)
    month = (local.year, local.month)
    week = local.isocalendar()[:2]
    first_of_month = first_of_week = True
    for other in reversed(catalog.manifests):  # newest first; stop a month back
        if other.created_at >= created_at:
            continue
        if other.created_at < created_at - _LOOKBACK:
            break
        if other.set_name != set_name or other.kind != "full":
            continue
        other_local = other.created_at.astimezone(tz)
        if (other_local.year, other_local.month) == month:
            first_of_month = False
        if other_local.isocalendar()[:2] == week:
            first_of_week = False
    if first_of_month:
        return "monthly"
    if first_of_week:
        return "weekly"
    return "daily"
