"""Simulation: a policy run forward on a synthetic schedule, one row per month."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backupkit.core.retention import TIER_AGES, RetentionPolicy
from backupkit.core.simulate import SimulationRow, simulate_retention
from backupkit.errors import ConfigError

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
DAY = dt.timedelta(days=1)
SIX_HOURS = dt.timedelta(hours=6)
SEED_002_SCHEDULE = ("full", "incremental", "incremental", "incremental")
GB, MB = 1_000_000_000, 1_000_000


def run(policy: RetentionPolicy, **kw: object) -> list[SimulationRow]:
    args: dict[str, object] = {
        "start": dt.datetime(2024, 1, 1, 2, tzinfo=UTC), "duration": dt.timedelta(days=400),
        "every": SIX_HOURS, "tz": UTC, "backup_size": {"full": GB, "incremental": 50 * MB},
        "kind_schedule": SEED_002_SCHEDULE,
    }
    args.update(kw)
    return simulate_retention(policy, **args)  # type: ignore[arg-type]


def test_400_days_every_6h_gives_one_row_per_month() -> None:
    rows = run(RetentionPolicy(keep_last=5))
    assert [r.month for r in rows][:2] == ["2024-01", "2024-02"]
    assert len(rows) == 14 and rows[-1].month == "2025-02"
    assert sum(r.made for r in rows) == 1600
    assert rows[0].made == 31 * 4


def test_keep_last_holds_a_constant_count_and_size() -> None:
    rows = run(RetentionPolicy(keep_last=5), every=DAY, kind_schedule=("full",))
    assert {(r.backups, r.bytes, r.fulls, r.incrementals) for r in rows} == {(5, 5 * GB, 5, 0)}


def test_seed_000_holds_thirty_daily_backups_or_fifty_at_most() -> None:
    policy = RetentionPolicy.from_dict({"keep_within": "30d", "max_count": 50})
    daily = run(policy, every=DAY, kind_schedule=("full",))
    assert [r.backups for r in daily[1:]] == [30] * (len(daily) - 1)
    six_hourly = run(policy, kind_schedule=("full",))
    assert {r.backups for r in six_hourly} == {50} and {r.peak_backups for r in six_hourly} == {50}


def test_seed_002_tiers_reach_a_steady_state_of_a_year_of_monthlies() -> None:
    rows = run(RetentionPolicy(tier_ages=TIER_AGES))
    last = rows[-2]  # 2025-01: a full year of monthly backups behind it
    assert last.month == "2025-01"
    # 12 monthly + about 4 weekly + the last 7 days' dailies + today's incrementals.
    assert 20 <= last.fulls <= 26 and last.incrementals <= 3
    assert last.bytes == last.fulls * GB + last.incrementals * 50 * MB
    assert rows[0].backups < rows[6].backups < last.backups  # grows as monthlies pile up


def test_daily_buckets_keep_each_days_last_restore_point_with_its_chain() -> None:
    rows = run(RetentionPolicy(keep_daily=7))
    # The newest backup of each day is the 20:00 incremental: it needs that day's full
    # and the incrementals before it, so 7 days hold 7 fulls and 21 incrementals.
    assert {(r.fulls, r.incrementals) for r in rows[1:]} == {(7, 21)}


def test_an_incremental_with_nothing_to_build_on_becomes_full() -> None:
    rows = run(RetentionPolicy(keep_last=1), duration=dt.timedelta(days=3), kind_schedule=("incremental",))
    # The first backup becomes full; the chain of incrementals then keeps it forever.
    assert rows[0].fulls == 1 and rows[0].incrementals == 11


def test_months_are_local_to_the_time_zone() -> None:
    start = dt.datetime(2024, 1, 31, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    rows = simulate_retention(
        RetentionPolicy(keep_last=3), start=start, duration=dt.timedelta(hours=2),
        every=dt.timedelta(hours=1), tz=BERLIN,
    )
    assert [(r.month, r.made) for r in rows] == [("2024-01", 1), ("2024-02", 1)]


def test_the_schedule_is_steps_of_absolute_time_across_dst() -> None:
    start = dt.datetime(2024, 3, 30, 12, tzinfo=BERLIN)
    rows = simulate_retention(
        RetentionPolicy(keep_within=dt.timedelta(days=10)), start=start,
        duration=dt.timedelta(days=2), every=dt.timedelta(hours=1), tz=BERLIN,
    )
    # 48 hourly backups from 12:00 on the 30th end at 12:00 on April 1 by the clock,
    # not 11:00: March 31 has 23 hours, so March gets 35 backups, not 36.
    assert [(r.month, r.made) for r in rows] == [("2024-03", 35), ("2024-04", 13)]
    assert rows[-1].backups == 48


def test_simulation_is_pure_and_repeatable() -> None:
    policy = RetentionPolicy(keep_daily=7, keep_weekly=4, max_count=30)
    assert run(policy, tz=BERLIN) == run(policy, tz=BERLIN)


def test_a_large_policy_over_400_days_at_6h_runs() -> None:
    rows = run(RetentionPolicy(keep_within=dt.timedelta(days=365)))
    assert rows[-1].backups == 365 * 4
    assert rows[0].to_dict()["backups"] == 31 * 4


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"start": dt.datetime(2024, 1, 1)}, "has no time zone"),
        ({"every": dt.timedelta(0)}, "longer than zero"),
        ({"duration": -DAY}, "longer than zero"),
        ({"every": dt.timedelta(seconds=1)}, "would make 34560000 backups"),
        ({"kind_schedule": ()}, "kind_schedule"),
        ({"kind_schedule": ("full", "diff")}, "kind_schedule"),
        ({"backup_size": {"full": 1, "diff": 2}}, "unknown kind"),
        ({"backup_size": -1}, "whole number of bytes"),
    ],
)
def test_bad_arguments_are_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run(RetentionPolicy(keep_last=1), **kw)


POLICIES = [
    RetentionPolicy(keep_last=3),
    RetentionPolicy(keep_daily=3, keep_weekly=2),
    RetentionPolicy(tier_ages=TIER_AGES),
    RetentionPolicy(keep_within=dt.timedelta(days=2), max_count=5),
]


@settings(max_examples=20, deadline=None)
@given(
    st.sampled_from(POLICIES),
    st.builds(  # near a month's end, so that local months and UTC months differ
        dt.datetime, st.integers(2024, 2025), st.integers(1, 12), st.integers(20, 28),
        st.integers(0, 23), st.integers(0, 59), tzinfo=st.just(UTC),
    ),
    st.integers(4 * 24 * 60, 30 * 24 * 60),  # duration, minutes
    st.integers(90, 12 * 60),  # every, minutes
    st.lists(st.sampled_from(["full", "incremental"]), min_size=1, max_size=4),
    st.integers(0, 10**9), st.integers(0, 10**9),
    st.sampled_from([BERLIN, ZoneInfo("America/New_York"), ZoneInfo("Pacific/Chatham")]),
)
def test_simulation_rows_add_up(  # type: ignore[no-untyped-def]
    policy, start, duration, every, schedule, full_size, inc_size, tz
) -> None:
    duration, every = dt.timedelta(minutes=duration), dt.timedelta(minutes=every)
    rows = simulate_retention(
        policy, start=start, duration=duration, every=every, tz=tz, kind_schedule=schedule,
        backup_size={"full": full_size, "incremental": inc_size},
    )
    made: dict[str, int] = {}  # backups at start, start + every, ... before start + duration
    when = start
    while when < start + duration:
        month = when.astimezone(tz).strftime("%Y-%m")
        made[month] = made.get(month, 0) + 1
        when += every
    assert [(r.month, r.made) for r in rows] == list(made.items())  # each month once, in order
    for r in rows:
        assert r.fulls + r.incrementals == r.backups
        assert r.bytes == r.fulls * full_size + r.incrementals * inc_size
        assert 1 <= r.fulls and r.backups <= r.peak_backups and r.bytes <= r.peak_bytes
