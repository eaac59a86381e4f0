"""Worked vectors for restic's and borg's rules, each against hand-computed expectations:
the oldest rule, unlimited counts, keep_secondly/minutely, keep_within anchored at the
newest backup, calendar months (Jan 31, DST in Berlin), keep_within_*, keep_tag, and the
guard for durations written when 'm' meant minutes."""

from __future__ import annotations

import datetime as dt
import warnings

import pytest
from test_retention import BERLIN, DAY, UTC, at, backup, series

from backupkit.core.catalog import Catalog
from backupkit.core.durations import Duration
from backupkit.core.manifest import Manifest
from backupkit.core.retention import RetentionPlan, RetentionPolicy, plan_retention
from backupkit.errors import ConfigError, DurationUnitWarning


def days(first: str, last: str, hour: str = "12:00") -> list[Manifest]:
    return series(at(f"{first}T{hour}Z"), at(f"{last}T{hour}Z"), DAY)


def plan(backups: list[Manifest], policy: RetentionPolicy, now: str, tz: dt.tzinfo = UTC) -> RetentionPlan:
    return plan_retention(Catalog(backups), policy, now=at(now), tz=tz)


def kept(p: RetentionPlan, fmt: str = "%Y-%m-%d") -> list[str]:
    return [m.created_at.astimezone(p.tz).strftime(fmt) for m in p.keep]


def reasons(p: RetentionPlan) -> dict[str, tuple[str, ...]]:
    return {m.created_at.astimezone(p.tz).strftime("%Y-%m-%d %H:%M:%S"): p.decision(m.id).reasons for m in p.keep}


# -- the oldest rule ---------------------------------------------------------------------

YOUNG = days("2024-01-01", "2024-03-10")  # 70 daily backups, the first on New Year's Day


def test_yearly_10_on_a_young_repository_keeps_the_very_first_backup() -> None:
    p = plan(YOUNG, RetentionPolicy(keep_yearly=10), "2024-03-10T18:00Z")
    assert kept(p) == ["2024-01-01", "2024-03-10"]
    assert p.decision(YOUNG[0].id).reasons == ("oldest yearly 2024",)
    assert p.decision(YOUNG[0].id).explanation == "oldest yearly 2024"  # what the dry run prints
    assert p.decision(YOUNG[-1].id).reasons == ("newest full", "yearly #1 2024")


def test_the_oldest_rule_is_off_for_borg_like_counting() -> None:
    p = plan(YOUNG, RetentionPolicy(keep_yearly=10, oldest_rule=False), "2024-03-10T18:00Z")
    assert kept(p) == ["2024-03-10"]


@pytest.mark.parametrize(
    ("monthly", "expected"),
    [
        (2, ["2024-02-29", "2024-03-10"]),  # both months used: no oldest
        (3, ["2024-01-31", "2024-02-29", "2024-03-10"]),  # three months exist: used up, no oldest
        (4, ["2024-01-01", "2024-01-31", "2024-02-29", "2024-03-10"]),  # one to spare: the oldest
    ],
)
def test_the_oldest_is_kept_only_while_a_rule_has_buckets_to_spare(monthly: int, expected: list[str]) -> None:
    assert kept(plan(YOUNG, RetentionPolicy(keep_monthly=monthly), "2024-03-10T18:00Z")) == expected


def test_an_oldest_backup_that_opens_a_bucket_is_kept_by_the_bucket_not_as_oldest() -> None:
    backups = [backup("2023-12-31T12:00Z"), *days("2024-01-01", "2024-01-03")]
    p = plan(backups, RetentionPolicy(keep_yearly=5), "2024-01-03T18:00Z")
    assert kept(p) == ["2023-12-31", "2024-01-03"]
    assert p.decision(backups[0].id).reasons == ("yearly #2 2023",)


# -- unlimited counts, borg's secondly and minutely -----------------------------------------

TWICE_A_DAY = [backup(f"2024-01-{d:02d}T{h}Z") for d in (1, 2, 3) for h in ("06:00", "18:00")]


@pytest.mark.parametrize("all_", [-1, "all"])
def test_minus_one_or_all_keeps_every_bucket_and_restics_oldest(all_: int | str) -> None:
    p = plan(TWICE_A_DAY, RetentionPolicy.from_dict({"keep_daily": all_}), "2024-01-03T20:00Z")
    assert kept(p, "%d %H") == ["01 06", "01 18", "02 18", "03 18"]
    assert p.decision(TWICE_A_DAY[0].id).reasons == ("oldest daily 2024-01-01",)
    assert plan(TWICE_A_DAY, RetentionPolicy(keep_last="all"), "2024-01-03T20:00Z").delete == ()  # type: ignore[arg-type]
    assert RetentionPolicy(keep_daily=-1).describe() == "keep_daily=all"


SECONDS = [backup(f"2024-01-15T12:{t}Z") for t in ("00:10", "00:40", "01:20", "01:50")]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RetentionPolicy(keep_minutely=1, oldest_rule=False), ["12:01:50"]),
        (RetentionPolicy(keep_minutely=2), ["12:00:40", "12:01:50"]),
        (RetentionPolicy(keep_minutely=3), ["12:00:10", "12:00:40", "12:01:50"]),  # 2 minutes, 1 spare
        (RetentionPolicy(keep_secondly=3), ["12:00:40", "12:01:20", "12:01:50"]),
    ],
)
def test_borgs_secondly_and_minutely_buckets(policy: RetentionPolicy, expected: list[str]) -> None:
    assert kept(plan(SECONDS, policy, "2024-01-15T12:05Z"), "%H:%M:%S") == expected


def test_minutely_and_secondly_reasons_carry_the_offset() -> None:
    p = plan(SECONDS, RetentionPolicy(keep_minutely=1, keep_secondly=1), "2024-01-15T12:05Z", BERLIN)
    assert p.decision(SECONDS[-1].id).reasons == (
        "newest full", "secondly #1 2024-01-15T13:01:50+01:00", "minutely #1 2024-01-15T13:01+01:00",
    )


# -- keep_within: anchored at the newest backup, calendar months ----------------------------

STOPPED = days("2024-01-01", "2024-01-10")  # backups stopped on January 10; now is March 1


def test_keep_within_ends_at_the_newest_backup_so_a_stopped_schedule_keeps_its_last_days() -> None:
    p = plan(STOPPED, RetentionPolicy(keep_within="3d"), "2024-03-01T12:00Z")
    assert kept(p) == ["2024-01-08", "2024-01-09", "2024-01-10"]  # after Jan 7 12:00, strictly
    assert p.decision(STOPPED[-3].id).reasons == ("within 3d",)


def test_keep_within_can_end_at_now_as_borg_does() -> None:
    p = plan(STOPPED, RetentionPolicy(keep_within="3d", within_anchor="now"), "2024-03-01T12:00Z")
    assert kept(p) == ["2024-01-10"]  # only the newest-full guard is left
    assert p.decision(STOPPED[-1].id).reasons == ("newest full",)


def test_one_month_before_march_31_is_february_29() -> None:
    backups = days("2024-02-25", "2024-03-31")
    p = plan(backups, RetentionPolicy.from_dict({"keep_within": "1mo"}), "2024-03-31T18:00Z")
    assert kept(p)[0] == "2024-03-01" and len(p.keep) == 31  # Feb 29 12:00 is the cutoff, not kept
    # restic's Go AddDate would make it "February 31" = March 2 and keep two days fewer.


def test_one_month_from_january_31_ends_at_the_end_of_february() -> None:
    backups = days("2024-01-25", "2024-02-29")
    p = plan(backups, RetentionPolicy(keep_within=Duration(months=1)), "2024-02-29T18:00Z")
    assert kept(p)[0] == "2024-01-30"  # the cutoff is January 29 12:00 (29 + 1 month = 29)
    year = plan(days("2023-02-25", "2024-02-29"), RetentionPolicy(keep_within="1y"), "2024-02-29T18:00Z")
    assert kept(year)[0] == "2023-03-01"  # one year before February 29 is February 28


def test_a_month_in_berlin_is_a_month_on_the_berlin_wall_clock_across_dst() -> None:
    # Newest 2024-04-15 10:00 UTC = 12:00 CEST; a month back is March 15 12:00 CET = 11:00 UTC,
    # 31 days less the hour Berlin skipped on March 31. In UTC it is March 15 10:00 UTC.
    backups = [backup(f"2024-03-{d}T11:00Z") for d in (14, 15, 16)] + [backup("2024-04-15T10:00Z")]
    in_berlin = plan(backups, RetentionPolicy(keep_within="1mo"), "2024-04-15T12:00Z", BERLIN)
    assert kept(in_berlin) == ["2024-03-16", "2024-04-15"]  # March 15 12:00 CET is the cutoff itself
    in_utc = plan(backups, RetentionPolicy(keep_within="1mo"), "2024-04-15T12:00Z", UTC)
    assert kept(in_utc) == ["2024-03-15", "2024-03-16", "2024-04-15"]


# -- keep_within_hourly ... yearly ------------------------------------------------------------

TWO_WEEKS = [backup(f"2024-01-{d:02d}T{h}Z") for d in range(1, 15) for h in ("06:00", "18:00")]


def test_keep_within_daily_keeps_the_newest_of_each_day_inside_the_window() -> None:
    p = plan(TWO_WEEKS, RetentionPolicy(keep_within_daily="1w"), "2024-01-14T20:00Z")
    # The window is after Jan 7 18:00: the newest of each of Jan 8 ... 14; the set's
    # oldest (Jan 1) is outside it, so the oldest rule does not apply.
    assert kept(p, "%m-%d %H") == [f"01-{d:02d} 18" for d in range(8, 15)]
    assert p.decision(TWO_WEEKS[-1].id).reasons == ("newest full", "within 7d daily 2024-01-14")


def test_keep_within_monthly_on_a_young_repository_names_the_window_and_keeps_the_oldest() -> None:
    backups = [backup(f"2024-{m:02d}-{d:02d}T12:00Z") for m in range(1, 7) for d in (1, 15)]
    p = plan(backups, RetentionPolicy(keep_within_monthly="2y"), "2024-06-20T12:00Z")
    assert kept(p) == ["2024-01-01", *(f"2024-{m:02d}-15" for m in range(1, 7))]
    assert p.decision(backups[0].id).reasons == ("oldest within 2y monthly 2024-01",)
    assert p.decision(backups[1].id).reasons == ("within 2y monthly 2024-01",)
    borg = plan(backups, RetentionPolicy(keep_within_monthly="2y", oldest_rule=False), "2024-06-20T12:00Z")
    assert len(borg.keep) == 6


# -- keep_tag ---------------------------------------------------------------------------------

def test_keep_tag_keeps_backups_with_every_tag_of_any_list() -> None:
    tagged = [backup(f"2024-01-0{n}T12:00Z", tags=tags) for n, tags in enumerate(
        [("prod", "db"), ("prod",), ("db",), ("release", "x"), ()], start=1)]
    policy = RetentionPolicy.from_dict({"keep_tag": ["prod,db", ["release"]]})
    assert policy.keep_tag == (("prod", "db"), ("release",))
    p = plan(tagged, policy, "2024-01-06T12:00Z")
    assert kept(p) == ["2024-01-01", "2024-01-04", "2024-01-05"]
    assert [p.decision(m.id).reasons for m in p.keep] == [("tag prod,db",), ("tag release",), ("newest full",)]
    assert policy.describe() == "keep_tag=prod,db keep_tag=release"
    assert RetentionPolicy(keep_tag="prod,db") == RetentionPolicy(keep_tag=[["prod", "db"]])  # type: ignore[arg-type]


# -- the constructor reads what from_dict reads -----------------------------------------------

def test_the_constructor_accepts_durations_as_text_like_from_dict() -> None:
    assert RetentionPolicy(keep_within="7d") == RetentionPolicy.from_dict({"keep_within": "7d"})  # type: ignore[arg-type]
    assert RetentionPolicy(keep_within=dt.timedelta(days=7)).keep_within == Duration.of(dt.timedelta(days=7))  # type: ignore[arg-type]
    policy = RetentionPolicy(keep_within="13d23h", max_age="1y 6mo", keep_within_daily="2y")  # type: ignore[arg-type]
    assert policy.describe() == "keep_within=13d23h keep_within_daily=2y max_age=1y6mo"
    with pytest.raises(ConfigError, match="has no unit"):
        RetentionPolicy(keep_within=7)  # type: ignore[arg-type]


# -- the old-1m guard -------------------------------------------------------------------------

def test_1m_is_a_month_as_in_restic_and_borg_and_says_so_once() -> None:
    with pytest.warns(DurationUnitWarning) as caught:
        policy = RetentionPolicy.from_dict({"keep_within": "1m"}, origin="backupkit.toml: set 'app': retention")
    assert policy.keep_within == Duration(months=1)
    (warning,) = caught
    text = str(warning.message)
    assert text == (
        "backupkit.toml: set 'app': retention: keep_within '1m' is 1mo ('m' is months, as in restic and "
        "borg; earlier backupkit builds read it as minutes): write '1mo' to say months without this "
        "warning, or 'min' for minutes"
    )
    with warnings.catch_warnings():  # the unambiguous spellings say nothing (warnings are errors here)
        assert RetentionPolicy.from_dict({"keep_within": "1mo"}).keep_within == Duration(months=1)
        assert RetentionPolicy.from_dict({"keep_within": "1min"}).keep_within == Duration.of(dt.timedelta(minutes=1))
        again = RetentionPolicy.from_dict(policy.to_dict())  # what backupkit writes is never ambiguous
    assert again == policy and policy.to_dict() == {"keep_within": "1mo"}


def test_reading_an_old_1m_as_a_month_never_deletes_more_than_the_minute_it_meant() -> None:
    backups = series(at("2024-01-01T00:00Z"), at("2024-03-01T00:00Z"), dt.timedelta(hours=6))
    for old, new in (("1min", "1m"), ("30min", "30m"), ("90min", "1d 90m")):
        for key in ("keep_within", "keep_within_hourly"):
            with pytest.warns(DurationUnitWarning):
                as_month = RetentionPolicy.from_dict({key: new})
            as_minute = RetentionPolicy.from_dict({key: old})
            month_kept = {m.id for m in plan(backups, as_month, "2024-03-01T01:00Z").keep}
            minute_kept = {m.id for m in plan(backups, as_minute, "2024-03-01T01:00Z").keep}
            assert minute_kept <= month_kept and len(minute_kept) < len(month_kept)
    with pytest.warns(DurationUnitWarning):
        cap = RetentionPolicy.from_dict({"keep_last": 100, "max_age": "30m"})  # a cap reaches back further
    assert len(plan(backups, cap, "2024-03-01T01:00Z").keep) == 100


@pytest.mark.parametrize("raw", [7, "7", 1.5])
def test_a_bare_number_is_refused_naming_the_units(raw: object) -> None:
    with pytest.raises(ConfigError, match="has no unit") as info:
        RetentionPolicy.from_dict({"keep_within": raw})
    assert "'7d' for days" in str(info.value) or "'1.5d' for days" in str(info.value)
