"""Retention planning: table-driven vectors for the bucket semantics, then each rule, cap and guard."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar
from zoneinfo import ZoneInfo

import attrs
import pytest

from backupkit.core.catalog import Catalog
from backupkit.core.durations import Duration
from backupkit.core.manifest import Artifact, Manifest, PluginSpec, backup_id
from backupkit.core.retention import (
    BASE_OF_KEPT,
    TIER_AGES,
    RetentionPlan,
    RetentionPolicy,
    plan_retention,
)
from backupkit.errors import ConfigError

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
T = TypeVar("T")


def at(text: str) -> dt.datetime:
    """'2024-01-17T12:00Z' or with an explicit offset."""
    return dt.datetime.fromisoformat(text)


def backup(
    when: dt.datetime | str,
    *,
    set_name: str = "app",
    kind: str = "full",
    parent: Manifest | str | None = None,
    tags: tuple[str, ...] = (),
    tier: str | None = None,
    token: str | None = None,
) -> Manifest:
    created = at(when) if isinstance(when, str) else when
    parent_id = parent.id if isinstance(parent, Manifest) else parent
    seed = f"{set_name} {kind} {created.isoformat()} {parent_id} {tags}"
    ident = backup_id(created, token or hashlib.sha256(seed.encode()).hexdigest()[:6])
    return Manifest(
        id=ident, set_name=set_name, created_at=created, kind=kind,  # type: ignore[arg-type]
        hostname="h", tool_version="0", parent_id=parent_id, tags=tags,
        tier=tier or ("incremental" if kind == "incremental" else "daily"),
        artifacts=(
            Artifact(
                name="data", source=PluginSpec("fake"), transforms=(), key=f"k/{ident}",
                raw_size=10, stored_size=10, raw_sha256="0" * 64, stored_sha256="0" * 64,
            ),
        ),
    )


def series(first: dt.datetime, last: dt.datetime, step: dt.timedelta, **kw: object) -> list[Manifest]:
    out, when = [], first
    while when <= last:
        out.append(backup(when, **kw))  # type: ignore[arg-type]
        when += step
    return out


def ids(manifests: Iterable[Manifest]) -> set[str]:
    return {m.id for m in manifests}


def kept_times(plan: RetentionPlan, tz: dt.tzinfo = UTC) -> list[str]:
    return [m.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") for m in plan.keep]


# -- table-driven vectors -------------------------------------------------------------

def _days(first: str, last: str, hour: int = 12) -> list[Manifest]:
    return series(at(f"{first}T{hour:02d}:00Z"), at(f"{last}T{hour:02d}:00Z"), DAY)


VECTORS = [
    pytest.param(
        # restic's own example: daily 7 + weekly 4 over daily snapshots up to Wed 2024-01-17.
        _days("2023-11-20", "2024-01-17"),
        RetentionPolicy(keep_daily=7, keep_weekly=4),
        "2024-01-17T18:00Z", UTC,
        ["2023-12-31", "2024-01-07", "2024-01-11", "2024-01-12", "2024-01-13", "2024-01-14",
         "2024-01-15", "2024-01-16", "2024-01-17"],
        id="daily7-weekly4-keeps-exactly-9",
    ),
    pytest.param(
        # 2024-12-30 and 31 are in ISO week 2025-W01, so they share a week with 2025-01-05.
        _days("2024-12-10", "2025-01-05"),
        RetentionPolicy(keep_weekly=3),
        "2025-01-05T18:00Z", UTC,
        ["2024-12-22", "2024-12-29", "2025-01-05"],
        id="iso-week-1-starts-in-the-previous-year",
    ),
    pytest.param(
        # yearly counts calendar years, not ISO years: 2024-12-31 is the newest of 2024.
        _days("2024-12-10", "2025-01-05"),
        RetentionPolicy(keep_weekly=3, keep_yearly=2),
        "2025-01-05T18:00Z", UTC,
        ["2024-12-22", "2024-12-29", "2024-12-31", "2025-01-05"],
        id="yearly-is-the-calendar-year-not-the-iso-year",
    ),
    pytest.param(
        # 23:30 UTC on the 30th is 00:30 on the 31st in Berlin: two local days, not one.
        [backup("2024-03-29T12:00Z"), backup("2024-03-30T22:30Z"), backup("2024-03-30T23:30Z")],
        RetentionPolicy(keep_daily=2),
        "2024-03-31T12:00Z", BERLIN,
        ["2024-03-30", "2024-03-30"],
        id="berlin-0030-local-is-the-next-day",
    ),
    pytest.param(
        [backup("2024-03-29T12:00Z"), backup("2024-03-30T22:30Z"), backup("2024-03-30T23:30Z")],
        RetentionPolicy(keep_daily=2),
        "2024-03-31T12:00Z", UTC,
        ["2024-03-29", "2024-03-30"],
        id="same-backups-in-utc-are-one-day",
    ),
    pytest.param(
        # Several backups a day: the day counts once, by its newest.
        [backup(f"2024-01-15T{h}:00Z") for h in ("02", "08", "14", "20")]
        + [backup("2024-01-16T02:00Z"), backup("2024-01-16T09:00Z")],
        RetentionPolicy(keep_daily=2),
        "2024-01-16T12:00Z", UTC,
        ["2024-01-15", "2024-01-16"],
        id="several-backups-in-one-day-count-once-by-the-newest",
    ),
    pytest.param(
        # Backups after `now` are kept and fill no bucket: the two days before now stay.
        _days("2024-01-10", "2024-01-20"),
        RetentionPolicy(keep_daily=2),
        "2024-01-17T18:00Z", UTC,
        ["2024-01-16", "2024-01-17", "2024-01-18", "2024-01-19", "2024-01-20"],
        id="future-backups-are-kept-and-fill-no-bucket",
    ),
    pytest.param(
        # Kinds never share a bucket: week 2024-W01 and month 2024-01 are different buckets,
        # so monthly 2 stops at January and December is deleted.
        [backup("2023-12-15T12:00Z"), backup("2024-01-03T12:00Z"), backup("2024-02-01T12:00Z")],
        RetentionPolicy(keep_weekly=2, keep_monthly=2),
        "2024-02-01T18:00Z", UTC,
        ["2024-01-03", "2024-02-01"],
        id="weekly-and-monthly-buckets-never-collide",
    ),
]


@pytest.mark.parametrize(("backups", "policy", "now", "tz", "expected"), VECTORS)
def test_retention_vectors(
    backups: list[Manifest], policy: RetentionPolicy, now: str, tz: dt.tzinfo, expected: list[str]
) -> None:
    plan = plan_retention(Catalog(backups), policy, now=at(now), tz=tz)
    assert [t[:10] for t in kept_times(plan)] == expected


def test_daily7_weekly4_reasons_name_each_bucket_and_a_backup_fills_both() -> None:
    plan = plan_retention(
        Catalog(_days("2023-11-20", "2024-01-17")),
        RetentionPolicy(keep_daily=7, keep_weekly=4),
        now=at("2024-01-17T18:00Z"), tz=UTC,
    )
    reasons = {d.manifest.created_at.date().isoformat(): d.reasons for d in plan.decisions}
    assert reasons["2024-01-17"] == ("newest full", "daily #1 2024-01-17", "weekly #1 2024-W03")
    assert reasons["2024-01-14"] == ("daily #4 2024-01-14", "weekly #2 2024-W02")
    assert reasons["2024-01-07"] == ("weekly #3 2024-W01",)
    assert reasons["2023-12-31"] == ("weekly #4 2023-W52",)
    assert reasons["2023-12-30"] == ()
    assert len(plan.keep) == 9 and len(plan.delete) == len(plan.decisions) - 9


def test_year_boundary_labels_december_30_as_2025_w01() -> None:
    plan = plan_retention(
        Catalog([backup("2024-12-29T12:00Z"), backup("2024-12-30T12:00Z")]),
        RetentionPolicy(keep_weekly=2, keep_monthly=1),
        now=at("2025-01-01T00:00Z"), tz=UTC,
    )
    assert [d.reasons for d in plan.decisions] == [
        ("weekly #2 2024-W52",),
        ("newest full", "weekly #1 2025-W01", "monthly #1 2024-12"),
    ]


def test_hourly_buckets_skip_the_missing_hour_when_berlin_springs_forward() -> None:
    # Every 30 minutes from 23:00 CET on the 30th to 05:30 CEST on the 31st: 02:00 never happens.
    backups = series(at("2024-03-30T22:00Z"), at("2024-03-31T03:30Z"), dt.timedelta(minutes=30))
    plan = plan_retention(
        Catalog(backups), RetentionPolicy(keep_hourly=5), now=at("2024-03-31T04:00Z"), tz=BERLIN
    )
    assert kept_times(plan, BERLIN) == [
        "2024-03-31 00:30", "2024-03-31 01:30", "2024-03-31 03:30", "2024-03-31 04:30",
        "2024-03-31 05:30",
    ]
    labels = [d.reasons[-1] for d in plan.decisions if d.keep]
    assert labels == [
        "hourly #5 2024-03-31T00:00+01:00", "hourly #4 2024-03-31T01:00+01:00",
        "hourly #3 2024-03-31T03:00+02:00", "hourly #2 2024-03-31T04:00+02:00",
        "hourly #1 2024-03-31T05:00+02:00",
    ]


def test_the_hour_repeated_when_berlin_falls_back_is_two_hourly_buckets() -> None:
    # 01:00 CEST .. 03:30 CET on 2024-10-27; 02:00-03:00 happens twice (CEST, then CET).
    backups = series(at("2024-10-26T23:00Z"), at("2024-10-27T02:30Z"), dt.timedelta(minutes=30))
    plan = plan_retention(
        Catalog(backups), RetentionPolicy(keep_hourly=3), now=at("2024-10-27T03:00Z"), tz=BERLIN
    )
    assert [d.reasons[-1] for d in plan.decisions if d.keep] == [
        "hourly #3 2024-10-27T02:00+02:00",
        "hourly #2 2024-10-27T02:00+01:00",
        "hourly #1 2024-10-27T03:00+01:00",
    ]
    one_day = plan_retention(
        Catalog(backups), RetentionPolicy(keep_daily=2, oldest_rule=False), now=at("2024-10-27T03:00Z"),
        tz=BERLIN,
    )
    assert len(one_day.keep) == 1  # the whole night is one local day


# -- the other rules ------------------------------------------------------------------


def test_keep_last_counts_backups_not_in_the_future() -> None:
    backups = series(at("2024-01-01T00:00Z"), at("2024-01-01T09:00Z"), HOUR)
    plan = plan_retention(Catalog(backups), RetentionPolicy(keep_last=3), now=at("2024-01-01T07:30Z"), tz=UTC)
    assert kept_times(plan) == [
        "2024-01-01 05:00", "2024-01-01 06:00", "2024-01-01 07:00", "2024-01-01 08:00",
        "2024-01-01 09:00",
    ]
    assert plan.decisions[-1].reasons == ("in the future",)
    assert plan.decisions[7].reasons == ("newest full", "last #1")


def test_keep_within_is_strictly_younger_than_the_duration() -> None:
    backups = series(at("2024-01-01T00:00Z"), at("2024-01-10T00:00Z"), DAY)
    plan = plan_retention(
        Catalog(backups), RetentionPolicy(keep_within=dt.timedelta(days=3)),
        now=at("2024-01-10T00:00Z"), tz=UTC,
    )
    assert [t[:10] for t in kept_times(plan)] == ["2024-01-08", "2024-01-09", "2024-01-10"]
    assert plan.decisions[-2].reasons == ("within 3d",)


def test_a_backup_made_exactly_at_now_is_not_in_the_future() -> None:
    backups = series(at("2024-01-01T10:00Z"), at("2024-01-01T12:00Z"), HOUR)
    plan = plan_retention(Catalog(backups), RetentionPolicy(keep_last=1), now=at("2024-01-01T12:00Z"), tz=UTC)
    assert plan.keep == (backups[-1],)
    assert plan.decisions[-1].reasons == ("newest full", "last #1")


def test_ages_equal_to_max_age_or_a_tier_age_are_too_old() -> None:
    # docs/retention.md: "a backup as old as `max_age` or older loses its rules"; a tier
    # keeps a backup only while it is younger than the tier's age.
    now = at("2024-01-10T12:00Z")
    backups = series(at("2024-01-01T12:00Z"), now, DAY)
    capped = plan_retention(
        Catalog(backups), RetentionPolicy(keep_last=10, max_age=dt.timedelta(days=3)), now=now, tz=UTC
    )
    assert [t[:10] for t in kept_times(capped)] == ["2024-01-08", "2024-01-09", "2024-01-10"]
    assert capped.decision(backups[-4].id).capped_by == "max_age 3d"
    assert capped.decision(backups[-3].id).capped_by is None
    tiered = plan_retention(
        Catalog(backups), RetentionPolicy(tier_ages={"daily": dt.timedelta(days=3)}), now=now, tz=UTC
    )
    assert [t[:10] for t in kept_times(tiered)] == ["2024-01-08", "2024-01-09", "2024-01-10"]
    assert tiered.decision(backups[-4].id).reasons == ()


def test_tier_ages_follow_seed_002() -> None:
    now = at("2024-06-30T12:00Z")
    backups = [
        backup(now - dt.timedelta(days=364), tier="monthly"),  # kept: monthly < 365d
        backup(now - dt.timedelta(days=366), tier="monthly"),  # too old
        backup(now - dt.timedelta(days=29), tier="weekly"),
        backup(now - dt.timedelta(days=31), tier="weekly"),
        backup(now - dt.timedelta(days=6), tier="daily"),
        backup(now - dt.timedelta(days=8), tier="daily"),
    ]
    base = backups[4]
    inc_new = backup(now - dt.timedelta(hours=23), kind="incremental", parent=base)
    inc_old = backup(now - dt.timedelta(hours=25), kind="incremental", parent=base)
    newest = backup(now - HOUR, tier="daily")
    plan = plan_retention(
        Catalog([*backups, inc_new, inc_old, newest]), RetentionPolicy(tier_ages=TIER_AGES),
        now=now, tz=UTC,
    )
    kept = {m.id for m in plan.keep}
    assert kept == {backups[0].id, backups[2].id, base.id, inc_new.id, newest.id}
    assert plan.decision(backups[0].id).reasons == ("tier monthly < 365d",)
    assert plan.decision(inc_new.id).reasons == ("tier incremental < 1d",)
    assert plan.decision(base.id).reasons == ("tier daily < 7d", "base of kept incremental")


# -- caps -----------------------------------------------------------------------------


def test_seed_000_thirty_days_and_at_most_fifty() -> None:
    policy = RetentionPolicy.from_dict({"keep_within": "30d", "max_count": 50})
    daily = series(at("2024-01-01T03:00Z"), at("2024-04-09T03:00Z"), DAY)
    plan = plan_retention(Catalog(daily), policy, now=at("2024-04-09T03:00Z"), tz=UTC)
    assert len(plan.keep) == 30 and plan.keep[0].created_at == at("2024-03-11T03:00Z")
    hourly = series(at("2024-01-01T00:00Z"), at("2024-01-10T23:00Z"), HOUR)
    plan = plan_retention(Catalog(hourly), policy, now=at("2024-01-11T00:00Z"), tz=UTC)
    assert plan.keep == tuple(hourly[-50:])
    assert plan.decision(hourly[-51].id).capped_by == "max_count 50"
    assert plan.decision(hourly[-51].id).explanation == "max_count 50 (overrides within 30d)"


def test_max_age_removes_what_rules_keep_but_never_the_newest_full() -> None:
    backups = series(at("2024-01-01T12:00Z"), at("2024-01-05T12:00Z"), DAY)
    late = backup("2024-03-01T12:00Z", kind="incremental", parent=backups[-1])
    plan = plan_retention(
        Catalog([*backups, late]),
        RetentionPolicy(keep_daily=10, max_age=dt.timedelta(days=30)),
        now=at("2024-03-02T00:00Z"), tz=UTC,
    )
    assert plan.keep == (backups[-1], late)
    newest = plan.decision(backups[-1].id)
    assert newest.explanation == (
        "newest full, daily #2 2024-01-05, base of kept incremental (despite max_age 30d)"
    )
    assert plan.decision(backups[0].id).capped_by == "max_age 30d"
    assert not plan.decision(backups[0].id).keep


def test_max_age_never_removes_the_base_of_a_kept_incremental() -> None:
    full = backup("2024-01-01T12:00Z")
    newer_full = backup("2024-01-02T12:00Z")
    inc = backup("2024-02-10T12:00Z", kind="incremental", parent=full)
    plan = plan_retention(
        Catalog([full, newer_full, inc]),
        RetentionPolicy(keep_last=3, max_age=dt.timedelta(days=30)),
        now=at("2024-02-11T00:00Z"), tz=UTC,
    )
    assert plan.keep == (full, newer_full, inc)
    assert plan.decision(full.id).capped_by == "max_age 30d"
    assert plan.decision(full.id).explanation == "last #3, base of kept incremental (despite max_age 30d)"


def test_max_count_drops_a_chains_tail_never_its_base() -> None:
    f1 = backup("2024-01-01T00:00Z")
    i1 = backup("2024-01-01T06:00Z", kind="incremental", parent=f1)
    i2 = backup("2024-01-01T12:00Z", kind="incremental", parent=i1)
    i3 = backup("2024-01-01T18:00Z", kind="incremental", parent=i2)
    f2 = backup("2024-01-02T00:00Z")
    plan = plan_retention(
        Catalog([f1, i1, i2, i3, f2]), RetentionPolicy(keep_last=10, max_count=3),
        now=at("2024-01-02T01:00Z"), tz=UTC,
    )
    # i3 and i2 would need their whole chain (4 and 3 backups) next to f2; i1 fits with f1.
    assert plan.keep == (f1, i1, f2)
    assert [plan.decision(m.id).capped_by for m in (i2, i3)] == ["max_count 3", "max_count 3"]


def test_guards_win_over_max_count() -> None:
    old = [backup(f"2024-01-0{d}T00:00Z", tags=("keep",)) for d in range(1, 5)]
    recent = series(at("2024-01-10T00:00Z"), at("2024-01-10T05:00Z"), HOUR)
    plan = plan_retention(
        Catalog([*old, *recent]), RetentionPolicy(keep_last=10, max_count=3),
        now=at("2024-01-10T06:00Z"), tz=UTC,
    )
    assert plan.keep == (*old, recent[-1])  # 4 pinned + the newest full: over the cap
    assert plan.decision(old[0].id).reasons == ("pinned", "last #10")


# -- guards and chains ----------------------------------------------------------------


def test_pinned_backups_are_never_deleted_and_the_tag_is_configurable() -> None:
    old = backup("2023-01-01T00:00Z", tags=("release",))
    new = backup("2024-01-01T00:00Z")
    at_now = at("2024-01-02T00:00Z")
    default = plan_retention(Catalog([old, new]), RetentionPolicy(keep_last=1), now=at_now, tz=UTC)
    assert default.keep == (new,)
    custom = RetentionPolicy(keep_last=1, pinned_tag="release")
    assert plan_retention(Catalog([old, new]), custom, now=at_now, tz=UTC).keep == (old, new)


def test_a_pinned_incremental_keeps_its_whole_chain() -> None:
    full = backup("2024-01-01T00:00Z")
    inc1 = backup("2024-01-01T06:00Z", kind="incremental", parent=full)
    inc2 = backup("2024-01-01T12:00Z", kind="incremental", parent=inc1, tags=("keep",))
    inc3 = backup("2024-01-01T18:00Z", kind="incremental", parent=inc2)
    newer = backup("2024-02-01T00:00Z")
    plan = plan_retention(
        Catalog([full, inc1, inc2, inc3, newer]), RetentionPolicy(keep_last=1),
        now=at("2024-02-01T01:00Z"), tz=UTC,
    )
    assert plan.keep == (full, inc1, inc2, newer)
    assert plan.decision(inc1.id).reasons == ("base of kept incremental",)


def test_an_incremental_with_a_missing_or_foreign_parent_is_planned_without_failing() -> None:
    full = backup("2024-01-01T00:00Z")
    orphan = backup("2024-01-01T06:00Z", kind="incremental", parent="20231231T000000Z-dead00")
    other_set = backup("2024-01-01T03:00Z", set_name="db")
    foreign = backup("2024-01-01T09:00Z", kind="incremental", parent=other_set)
    plan = plan_retention(
        Catalog([full, orphan, other_set, foreign]), RetentionPolicy(keep_within=DAY),
        now=at("2024-01-01T10:00Z"), tz=UTC,
    )
    assert len(plan.keep) == 4 and not plan.delete


class Hang(AssertionError):
    pass


def finishes(call: Callable[[], T]) -> T:
    """*call()*, run in a thread as a hang guard: 60 s is generous, not a speed check."""
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread below
            outcome.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        raise Hang("never returned in 60 s: a loop of parent_ids hangs it")
    ok, value = outcome[0]
    if not ok:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]


def looping_catalog(size: int, *, pin_first: bool = False) -> tuple[Manifest, list[Manifest], Manifest]:
    """A full, then *size* incrementals whose parents loop (a->b->a, a->b->c->a), then an
    incremental on the loop's newest member."""
    times = [at("2024-01-01T00:00Z") + n * HOUR for n in range(size + 2)]
    loop_ids = [backup_id(times[n + 1], f"{n:06x}") for n in range(size)]
    full = backup(times[0], token="f00000")
    loop = [
        backup(
            times[n + 1], kind="incremental", parent=loop_ids[(n + 1) % size], token=f"{n:06x}",
            tags=("keep",) if pin_first and n == 0 else (),
        )
        for n in range(size)
    ]
    tail = backup(times[-1], kind="incremental", parent=loop[-1], token="e00000")
    return full, loop, tail


@pytest.mark.parametrize("size", [2, 3], ids=["a-b-a", "a-b-c-a"])
@pytest.mark.parametrize(
    ("policy", "pin_first", "deleted"),
    [
        (RetentionPolicy(keep_last=1), False, "none"),
        (RetentionPolicy(keep_last=5, max_count=10), False, "none"),
        (RetentionPolicy(keep_last=5, max_count=2), False, "loop and tail"),
        (RetentionPolicy(keep_last=1, max_count=1), True, "tail"),
    ],
    ids=["keep_last", "max_count-roomy", "max_count-tight", "pinned"],
)
def test_a_loop_of_parents_is_planned_and_ordered_for_deletion_without_hanging(
    size: int, policy: RetentionPolicy, pin_first: bool, deleted: str
) -> None:
    full, loop, tail = looping_catalog(size, pin_first=pin_first)
    catalog = Catalog([full, *loop, tail])
    plan = finishes(lambda: plan_retention(catalog, policy, now=at("2024-01-02T00:00Z"), tz=UTC))
    order = finishes(lambda: plan.deletion_order)
    doomed = {"none": [], "tail": [tail], "loop and tail": [*loop, tail]}[deleted]
    assert plan.delete == tuple(doomed) and plan.keep == tuple(m for m in catalog if m not in doomed)
    assert sorted(m.id for m in order) == sorted(m.id for m in doomed)
    if doomed:
        assert order[0] == tail  # it depends on the loop, nothing depends on it
    else:  # the tail keeps its chain: the whole loop, each member a base of the next
        assert all(BASE_OF_KEPT in plan.decision(m.id).reasons for m in loop)


def test_each_set_is_planned_on_its_own() -> None:
    app = series(at("2024-01-01T00:00Z"), at("2024-01-05T00:00Z"), DAY)
    db = series(at("2024-01-01T12:00Z"), at("2024-01-03T12:00Z"), DAY, set_name="db")
    plan = plan_retention(Catalog([*app, *db]), RetentionPolicy(keep_last=2), now=at("2024-01-06T00:00Z"), tz=UTC)
    assert ids(plan.keep) == ids([*app[-2:], *db[-2:]])
    assert plan.for_set("db").keep == tuple(db[-2:])


def test_deletion_order_deletes_incrementals_before_what_they_depend_on() -> None:
    f1 = backup("2024-01-01T00:00Z")
    i1 = backup("2024-01-01T06:00Z", kind="incremental", parent=f1)
    i2 = backup("2024-01-01T12:00Z", kind="incremental", parent=i1)
    f2 = backup("2024-01-02T00:00Z")
    plan = plan_retention(Catalog([f1, i1, i2, f2]), RetentionPolicy(keep_last=1), now=at("2024-01-03T00:00Z"), tz=UTC)
    assert plan.deletion_order == (i2, i1, f1)


def test_plan_records_are_one_row_per_backup_for_a_dry_run() -> None:
    backups = series(at("2024-01-01T00:00Z"), at("2024-01-03T00:00Z"), DAY)
    plan = plan_retention(Catalog(backups), RetentionPolicy(keep_daily=1), now=at("2024-01-03T01:00Z"), tz=UTC)
    rows = plan.to_records()
    assert [r["action"] for r in rows] == ["delete", "delete", "keep"]
    assert rows[0]["explanation"] == "no rule keeps it"
    assert rows[2]["reasons"] == "newest full, daily #1 2024-01-03"
    assert plan.now == at("2024-01-03T01:00Z") and plan.tz is UTC


def test_an_empty_catalog_plans_nothing_and_iterables_are_accepted() -> None:
    assert plan_retention(Catalog(), RetentionPolicy(keep_last=1), now=at("2024-01-01T00:00Z"), tz=UTC).decisions == ()
    one = backup("2024-01-01T00:00Z")
    assert plan_retention([one], RetentionPolicy(keep_last=1), now=at("2024-01-01T00:00Z"), tz=UTC).keep == (one,)


def test_plan_needs_an_aware_now_and_a_real_time_zone() -> None:
    policy = RetentionPolicy(keep_last=1)
    with pytest.raises(ConfigError, match="no time zone"):
        plan_retention(Catalog(), policy, now=dt.datetime(2024, 1, 1), tz=UTC)
    with pytest.raises(ConfigError, match="not a time zone"):
        plan_retention(Catalog(), policy, now=at("2024-01-01T00:00Z"), tz="Europe/Berlin")  # type: ignore[arg-type]


# -- the policy -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [
        {},
        {"max_age": "30d", "max_count": 50},
        {"keep_daily": 0, "tier_ages": {}, "pinned_tag": "keep"},
    ],
)
def test_a_policy_without_a_keep_rule_is_refused(policy: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="has no keep rule"):
        RetentionPolicy.from_dict(policy)
    with pytest.raises(ConfigError, match="has no keep rule"):
        RetentionPolicy(**policy)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"keep_dialy": 7}, "unknown key 'keep_dialy'; did you mean 'keep_daily'?"),
        ({"keep_daily": -2}, "keep_daily must be a whole number >= 0, or -1 or 'all' for every one, got -2"),
        ({"keep_daily": True}, "keep_daily must be a whole number >= 0, or -1 or 'all' for every one, got True"),
        ({"keep_daily": "7"}, "keep_daily must be a whole number >= 0, or -1 or 'all' for every one, got '7'"),
        ({"keep_within": "7 days"}, "keep_within: duration '7 days' is not like '7d'"),
        ({"keep_within": "0d"}, "must be longer than zero"),
        ({"keep_within": 7}, "keep_within 7 has no unit: write e.g. '7d' for days or '7h' for hours"),
        ({"keep_within": "7"}, "keep_within: duration '7' has no unit: write '7d' for days"),
        ({"keep_within_daily": "1y", "keep_tag": ["prod,"]}, "keep_tag entry 'prod,' has an empty tag"),
        ({"keep_tag": []}, "keep_tag must be tags like 'prod,db' or a list of them"),
        ({"keep_last": 1, "within_anchor": "oldest"}, "within_anchor must be 'newest' or 'now', got 'oldest'"),
        ({"keep_last": 1, "oldest_rule": "no"}, "oldest_rule must be true or false, got 'no'"),
        ({"keep_last": 1, "max_count": 0}, "max_count must be a whole number >= 1, got 0"),
        ({"tier_ages": {"hourly": "1d"}}, "tier_ages has unknown tier 'hourly'"),
        ({"tier_ages": ["daily"]}, "tier_ages must map tiers to durations"),
        ({"keep_last": 1, "pinned_tag": ""}, "pinned_tag must be a non-empty string"),
    ],
)
def test_from_dict_refuses_bad_keys_and_values_in_one_line(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        RetentionPolicy.from_dict(data, origin="backupkit.toml: set 'app': retention")
    text = str(info.value)
    assert message in text and text.startswith("backupkit.toml: set 'app': retention") and "\n" not in text


def test_from_dict_reads_durations_and_round_trips() -> None:
    data = {
        "keep_daily": 7, "keep_weekly": 4, "keep_within": "1d12h",
        "tier_ages": {"daily": "7d", "incremental": "24h"}, "max_age": "30d", "max_count": 50,
        "pinned_tag": "release",
    }
    policy = RetentionPolicy.from_dict(data)
    assert policy.keep_within == Duration.of(dt.timedelta(hours=36))
    assert policy.tier_ages == {"daily": Duration.of(dt.timedelta(days=7)), "incremental": Duration.of(DAY)}
    assert RetentionPolicy.from_dict(policy.to_dict()) == policy
    assert policy.describe() == (
        "keep_daily=7 keep_weekly=4 keep_within=1d12h tier_ages=daily:7d,incremental:1d "
        "max_age=30d max_count=50 pinned_tag=release"
    )


def test_policies_are_frozen_hashable_and_validated_on_evolve() -> None:
    policy = RetentionPolicy(keep_daily=7, tier_ages=TIER_AGES)
    assert hash(policy) == hash(RetentionPolicy(keep_daily=7, tier_ages=dict(TIER_AGES)))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.keep_daily = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.tier_ages["daily"] = DAY  # type: ignore[index]
    with pytest.raises(ConfigError, match="has no keep rule"):
        attrs.evolve(policy, keep_daily=0, tier_ages={})
