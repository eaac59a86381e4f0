"""Durations: units in any order, calendar months in a time zone, and no guessed readings."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from backupkit.core.durations import (
    Duration,
    format_duration,
    parse_duration,
    parse_interval,
    says_months_as_m,
)
from backupkit.errors import ConfigError

BERLIN = ZoneInfo("Europe/Berlin")
DAY = dt.timedelta(days=1)


def exact(**kwargs: float) -> Duration:
    return Duration.of(dt.timedelta(**kwargs))


@pytest.mark.parametrize(
    ("text", "value", "spelled"),
    [
        ("7d", exact(days=7), "7d"),
        ("24h", exact(days=1), "1d"),
        ("1d12h", exact(hours=36), "1d12h"),
        ("12h 1d", exact(hours=36), "1d12h"),
        ("1d 12 h", exact(hours=36), "1d12h"),
        ("2w", exact(days=14), "14d"),
        ("335h", exact(hours=335), "13d23h"),
        ("90min", exact(minutes=90), "1h30min"),
        (" 45s ", exact(seconds=45), "45s"),
        ("1m", Duration(months=1), "1mo"),
        ("1mo", Duration(months=1), "1mo"),
        ("1y", Duration(months=12), "1y"),
        ("18m", Duration(months=18), "1y6mo"),
        ("2y 3m 1w 2d 4h 5min 6s", Duration(27, dt.timedelta(days=9, hours=4, minutes=5, seconds=6)),
         "2y3mo9d4h5min6s"),
    ],
)
def test_durations_parse_in_any_order_and_format_largest_unit_first(text: str, value: Duration, spelled: str) -> None:
    assert parse_duration(text) == value
    assert format_duration(value) == spelled
    assert parse_duration(spelled) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("d", "is not like '7d', '1y 6m', '1d12h' or '90min'"),
        ("7", "duration '7' has no unit: write '7d' for days, '7h' for hours or '7min' for minutes"),
        ("-1d", "is not like"),
        ("0s", "must be longer than zero"),
        ("1.5h", "is not like"),
        ("1d 2d", "gives d twice"),
        ("1m 1mo", "gives mo twice"),
        ("7 days", "is not like"),
    ],
)
def test_bad_durations_are_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_duration(text)
    assert "\n" not in str(info.value)


def test_months_spelled_m_are_told_apart_from_mo_and_min() -> None:
    assert [says_months_as_m(t) for t in ("1m", "1d 12m", "1mo", "90min", "7d")] == [True, True, False, False, False]


def test_january_31_plus_one_month_is_the_end_of_february() -> None:
    month = Duration(months=1)
    jan31 = dt.datetime(2024, 1, 31, 12, tzinfo=BERLIN)
    assert month.after(jan31, BERLIN) == dt.datetime(2024, 2, 29, 12, tzinfo=BERLIN)  # leap year
    assert month.after(jan31.replace(year=2023), BERLIN) == dt.datetime(2023, 2, 28, 12, tzinfo=BERLIN)
    assert Duration(months=2).after(jan31, BERLIN) == dt.datetime(2024, 3, 31, 12, tzinfo=BERLIN)  # not Mar 29
    mar31, feb29 = dt.datetime(2024, 3, 31, 12, tzinfo=BERLIN), dt.datetime(2024, 2, 29, 12, tzinfo=BERLIN)
    assert month.before(mar31, BERLIN) == feb29
    assert Duration(months=12).before(feb29, BERLIN) == feb29.replace(year=2023, day=28)


def test_a_month_is_counted_on_the_berlin_wall_clock_across_daylight_saving_time() -> None:
    # 2024-04-15 12:00 CEST (10:00 UTC) less one month is 2024-03-15 12:00 CET (11:00 UTC):
    # 31 days less the hour Berlin skipped on March 31.
    anchor = dt.datetime(2024, 4, 15, 10, tzinfo=dt.UTC)
    assert Duration(months=1).before(anchor, BERLIN) == dt.datetime(2024, 3, 15, 11, tzinfo=dt.UTC)
    assert anchor - Duration(months=1).before(anchor, BERLIN) == dt.timedelta(days=31) - dt.timedelta(hours=1)
    # In UTC the same month is 31 days of 24 hours.
    assert Duration(months=1).before(anchor, dt.UTC) == dt.datetime(2024, 3, 15, 10, tzinfo=dt.UTC)
    # Days stay elapsed time: 1d before 12:00 CEST on March 31 is 11:00 CET on the 30th.
    assert exact(days=1).before(dt.datetime(2024, 3, 31, 12, tzinfo=BERLIN), BERLIN) == dt.datetime(
        2024, 3, 30, 11, tzinfo=BERLIN
    )


def test_a_wall_clock_time_skipped_or_repeated_is_read_so_the_window_is_the_longer() -> None:
    month = Duration(months=1)
    # 2025-04-30 02:30 CEST less a month is 2025-03-30 02:30, which Berlin skips: the earlier
    # reading, 00:30 UTC (what 02:30 would be at CEST), ends the longer window.
    skipped = month.before(dt.datetime(2025, 4, 30, 2, 30, tzinfo=BERLIN), BERLIN)
    assert skipped == dt.datetime(2025, 3, 30, 0, 30, tzinfo=dt.UTC)
    # 2025-11-26 02:30 CET less a month is 2025-10-26 02:30, which Berlin has twice: the first.
    repeated = month.before(dt.datetime(2025, 11, 26, 2, 30, tzinfo=BERLIN), BERLIN)
    assert repeated == dt.datetime(2025, 10, 26, 0, 30, tzinfo=dt.UTC)
    assert month.after(dt.datetime(2025, 9, 26, 2, 30, tzinfo=BERLIN), BERLIN) == dt.datetime(
        2025, 10, 26, 1, 30, tzinfo=dt.UTC
    )


@pytest.mark.parametrize(("text", "value"), [("90min", dt.timedelta(minutes=90)), ("2w", dt.timedelta(days=14)),
                                             ("1d 6h", dt.timedelta(hours=30)), ("5min", dt.timedelta(minutes=5))])
def test_intervals_are_exact(text: str, value: dt.timedelta) -> None:
    assert parse_interval(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5m", "interval '5m': 'm' is months, and an interval takes w, d, h, min or s; write '5min' for minutes"),
        ("1y", "interval '1y' has months or years, which are not a fixed length"),
        ("1mo", "interval '1mo' has months or years"),
        ("5", "duration '5' has no unit"),
    ],
)
def test_intervals_refuse_months_naming_min(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_interval(text)
