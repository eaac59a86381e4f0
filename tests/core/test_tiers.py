"""Tiers: first full backup of a month is monthly, of an ISO week weekly, else daily."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backupkit.core.catalog import Catalog
from backupkit.core.manifest import Manifest, backup_id
from backupkit.core.tiers import TIERS, assign_tier
from backupkit.errors import ConfigError

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def full(when: str, *, set_name: str = "app", kind: str = "full", n: int = 0) -> Manifest:
    created = at(when)
    return Manifest(
        id=backup_id(created, f"{n:06x}"), set_name=set_name, created_at=created,
        kind=kind, hostname="h", tool_version="0", artifacts=(),  # type: ignore[arg-type]
    )


def tier_of(catalog: list[Manifest], when: str, *, kind: str = "full", tz: dt.tzinfo = UTC) -> str:
    return assign_tier(Catalog(catalog), set_name="app", kind=kind, created_at=at(when), tz=tz)


def test_first_full_of_a_month_is_monthly_then_first_of_a_week_weekly_else_daily() -> None:
    assert tier_of([], "2024-01-10T02:00Z") == "monthly"
    jan10 = [full("2024-01-10T02:00Z")]  # Wednesday of 2024-W02
    assert tier_of(jan10, "2024-01-11T02:00Z") == "daily"
    assert tier_of(jan10, "2024-01-15T02:00Z") == "weekly"  # Monday of 2024-W03
    assert tier_of(jan10, "2024-02-01T02:00Z") == "monthly"


def test_incrementals_are_always_incremental() -> None:
    assert tier_of([], "2024-01-10T02:00Z", kind="incremental") == "incremental"


def test_a_week_across_a_month_boundary_has_its_first_full_weekly_and_the_first_of_the_month_monthly() -> None:
    catalog = [full("2024-01-10T02:00Z"), full("2024-01-29T02:00Z", n=1)]  # Monday of 2024-W05
    assert tier_of(catalog[:1], "2024-01-29T02:00Z") == "weekly"
    assert tier_of(catalog, "2024-02-01T02:00Z") == "monthly"  # still 2024-W05, but February
    catalog.append(full("2024-02-01T02:00Z", n=2))
    assert tier_of(catalog, "2024-02-02T02:00Z") == "daily"


def test_iso_week_one_that_starts_in_december() -> None:
    catalog = [full("2024-12-02T02:00Z")]
    assert tier_of(catalog, "2024-12-30T02:00Z") == "weekly"  # first of 2025-W01
    catalog.append(full("2024-12-30T02:00Z", n=1))
    assert tier_of(catalog, "2025-01-01T02:00Z") == "monthly"
    catalog.append(full("2025-01-01T02:00Z", n=2))
    assert tier_of(catalog, "2025-01-02T02:00Z") == "daily"  # 2025-W01 already has Dec 30


def test_months_are_counted_in_the_given_time_zone() -> None:
    catalog = [full("2024-01-15T02:00Z")]
    # 23:30 UTC on January 31 is 00:30 on February 1 in Berlin.
    assert tier_of(catalog, "2024-01-31T23:30Z", tz=UTC) == "weekly"
    assert tier_of(catalog, "2024-01-31T23:30Z", tz=BERLIN) == "monthly"


def test_only_earlier_fulls_of_the_same_set_count() -> None:
    catalog = [
        full("2024-01-10T02:00Z", set_name="db"),
        full("2024-01-10T01:00Z", kind="incremental", n=1),
        full("2024-01-20T02:00Z", n=2),  # later than the backup being tiered
    ]
    assert tier_of(catalog, "2024-01-11T02:00Z") == "monthly"


def test_the_answer_is_the_same_once_the_backup_is_in_the_catalog() -> None:
    catalog = [full("2024-01-10T02:00Z"), full("2024-01-11T02:00Z", n=1)]
    assert tier_of(catalog, "2024-01-11T02:00Z") == tier_of(catalog[:1], "2024-01-11T02:00Z") == "daily"
    assert tier_of(catalog, "2024-01-10T02:00Z") == "monthly"


def test_a_pruned_first_full_makes_the_next_one_monthly() -> None:
    assert tier_of([full("2023-12-31T02:00Z")], "2024-01-02T02:00Z") == "monthly"


def test_bad_kind_and_naive_time_are_refused() -> None:
    with pytest.raises(ConfigError, match="backup kind 'diff'"):
        tier_of([], "2024-01-10T02:00Z", kind="diff")
    with pytest.raises(ConfigError, match="no time zone"):
        assign_tier(Catalog(), set_name="app", kind="full", created_at=dt.datetime(2024, 1, 1), tz=UTC)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 400 * 24), min_size=1, max_size=60, unique=True),
    st.sampled_from([UTC, BERLIN, ZoneInfo("America/New_York")]),
)
def test_each_month_gets_one_monthly_and_each_week_starts_weekly_or_monthly(
    hours: list[int], tz: dt.tzinfo
) -> None:
    catalog: list[Manifest] = []
    base = dt.datetime(2024, 1, 1, tzinfo=UTC)
    for n, h in enumerate(sorted(hours)):
        when = base + dt.timedelta(hours=h)
        tier = assign_tier(Catalog(catalog), set_name="app", kind="full", created_at=when, tz=tz)
        assert tier in TIERS
        m = Manifest(
            id=backup_id(when, f"{n:06x}"), set_name="app", created_at=when, kind="full",
            hostname="h", tool_version="0", artifacts=(), tier=tier,
        )
        catalog.append(m)
    local = [(m, m.created_at.astimezone(tz)) for m in catalog]
    months: dict[tuple[int, int], list[str]] = {}
    weeks: dict[tuple[int, int], list[str]] = {}
    for m, t in local:
        months.setdefault((t.year, t.month), []).append(m.tier)
        weeks.setdefault(t.isocalendar()[:2], []).append(m.tier)
    for tiers in months.values():
        assert tiers[0] == "monthly" and tiers.count("monthly") == 1
    for tiers in weeks.values():
        assert tiers[0] in ("weekly", "monthly") and tiers.count("weekly") <= 1
