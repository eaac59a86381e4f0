"""Run a retention policy forward on a synthetic schedule: what will it hold?

:func:`simulate_retention` makes a backup every ``every`` from ``start`` for
``duration``, its kind taken in turn from ``kind_schedule``, gives it a tier with
:func:`~backupkit.core.tiers.assign_tier`, and prunes with
:func:`~backupkit.core.retention.plan_retention` right after each backup (``now`` is the
backup's time). An incremental's parent is the newest backup still held; with none held
it becomes a full backup, as the engine does. One :class:`SimulationRow` per calendar
month (in ``tz``) says what is held at the month's last backup, and the most held at any
point during the month. The schedule steps in absolute time: backups are exactly *every*
apart across daylight saving changes, so a 02:00 backup in winter is at 03:00 in summer.
Pure: no clock, no I/O. ::

    rows = simulate_retention(
        RetentionPolicy(tier_ages=TIER_AGES),
        start=datetime(2024, 1, 1, 2, tzinfo=tz), duration=timedelta(days=400),
        every=timedelta(hours=6), tz=tz,
        kind_schedule=("full", "incremental", "incremental", "incremental"),
    )
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from backupkit.core.catalog import Catalog
from backupkit.core.manifest import KINDS, Artifact, Manifest, PluginSpec, backup_id
from backupkit.core.retention import RetentionPolicy, plan_retention
from backupkit.core.tiers import assign_tier
from backupkit.errors import ConfigError

#: Sizes used when none are given: a 1 GB full backup, a 50 MB incremental.
DEFAULT_SIZES: Mapping[str, int] = {"full": 1_000_000_000, "incremental": 50_000_000}
#: More backups than this is a mistake (a schedule in seconds over years), not a plan.
MAX_BACKUPS = 100_000

_NO_DIGEST = "0" * 64


@attrs.frozen
class SimulationRow:
    """What a policy holds in one calendar month of the simulation."""

    month: str  # 'YYYY-MM' in the simulation's time zone
    backups: int  # held after the month's last backup and prune
    bytes: int  # stored bytes held then
    fulls: int
    incrementals: int
    peak_backups: int  # the most held after any prune during the month
    peak_bytes: int
    made: int  # backups made during the month

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        return attrs.asdict(self)


def simulate_retention(
    policy: RetentionPolicy,
    *,
    start: dt.datetime,
    duration: dt.timedelta,
    every: dt.timedelta,
    tz: dt.tzinfo,
    backup_size: int | Mapping[str, int] = DEFAULT_SIZES,
    kind_schedule: Sequence[str] = ("full",),
    set_name: str = "simulated",
) -> list[SimulationRow]:
    """Monthly rows of what *policy* holds when backing up every *every* for *duration*.

    *backup_size* is the stored size of every backup, or a size per kind;
    *kind_schedule* is cycled: ``("full", "incremental", "incremental", "incremental")``
    with ``every=6h`` is a daily full and three incrementals in between.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ConfigError(f"start {start.isoformat()} has no time zone; add one, e.g. 'Z'")
    if every <= dt.timedelta(0) or duration <= dt.timedelta(0):
        raise ConfigError("simulation duration and interval must both be longer than zero")
    count = -(-duration // every)  # ceil: backups at start, start+every, ... before the end
    if count > MAX_BACKUPS:
        raise ConfigError(
            f"simulation would make {count} backups (limit {MAX_BACKUPS}); "
            "back up less often or simulate a shorter time"
        )
    if not kind_schedule or any(k not in KINDS for k in kind_schedule):
        raise ConfigError(
            f"kind_schedule {tuple(kind_schedule)!r} must be a non-empty sequence of "
            f"{' and '.join(repr(k) for k in KINDS)}"
        )
    sizes = _sizes(backup_size)

    start = start.astimezone(dt.UTC)
    held: list[Manifest] = []
    catalog = Catalog()
    rows: list[SimulationRow] = []
    month: str | None = None
    peak_backups = peak_bytes = made = 0
    for n in range(count):
        when = start + n * every
        local = when.astimezone(tz)
        label = f"{local.year:04d}-{local.month:02d}"
        if label != month:
            if month is not None:
                rows.append(_row(month, held, peak_backups, peak_bytes, made))
            month, peak_backups, peak_bytes, made = label, 0, 0, 0
        kind = kind_schedule[n % len(kind_schedule)]
        parent = held[-1] if held else None
        if parent is None:
            kind = "full"
        tier = assign_tier(catalog, set_name=set_name, kind=kind, created_at=when, tz=tz)
        held.append(_manifest(n, when, kind, tier, parent, set_name, sizes[kind]))
        catalog = Catalog(held)
        plan = plan_retention(catalog, policy, now=when, tz=tz)
        held = list(plan.keep)
        catalog = Catalog(held)
        held_bytes = sum(sizes[m.kind] for m in held)
        made += 1
        peak_backups = max(peak_backups, len(held))
        peak_bytes = max(peak_bytes, held_bytes)
    if month is not None:
        rows.append(_row(month, held, peak_backups, peak_bytes, made))
    return rows


def _sizes(backup_size: int | Mapping[str, int]) -> dict[str, int]:
    if isinstance(backup_size, Mapping):
        sizes = {k: backup_size.get(k, DEFAULT_SIZES[k]) for k in KINDS}
        unknown = set(backup_size) - set(KINDS)
        if unknown:
            raise ConfigError(f"backup_size has unknown kind(s) {sorted(unknown)}; kinds: {KINDS}")
    else:
        sizes = {k: backup_size for k in KINDS}
    for kind, size in sizes.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(f"backup_size for {kind} must be a whole number of bytes >= 0")
    return sizes


def _manifest(
    n: int, when: dt.datetime, kind: str, tier: str, parent: Manifest | None, set_name: str,
    size: int,
) -> Manifest:
    token = f"{n:06x}"
    ident = backup_id(when, token)
    return Manifest(
        id=ident,
        set_name=set_name,
        created_at=when,
        kind=kind,  # type: ignore[arg-type]
        hostname="simulation",
        tool_version="simulation",
        parent_id=parent.id if kind == "incremental" and parent is not None else None,
        reason="simulation",
        tier=tier,
        artifacts=(
            Artifact(
                name="data",
                source=PluginSpec("simulation"),
                transforms=(),
                key=f"{tier}/{ident}",
                raw_size=size,
                stored_size=size,
                raw_sha256=_NO_DIGEST,
                stored_sha256=_NO_DIGEST,
            ),
        ),
    )


def _row(
    month: str, held: list[Manifest], peak_backups: int, peak_bytes: int, made: int
) -> SimulationRow:
    fulls = sum(1 for m in held if m.kind == "full")
    return SimulationRow(
        month=month,
        backups=len(held),
        bytes=sum(m.stored_size for m in held),
        fulls=fulls,
        incrementals=len(held) - fulls,
        peak_backups=peak_backups,
        peak_bytes=peak_bytes,
        made=made,
    )
