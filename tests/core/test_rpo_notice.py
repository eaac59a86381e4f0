"""The RPO notice: scheduled backups whose consecutive slots leave a gap longer than the
set's RPO, over the next 31 days (pure: the start is given)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from backupkit.core.schedule import Gap, Job, longest_gap, parse_schedule, rpo_notice

HOUR = dt.timedelta(hours=1)
START = dt.datetime(2026, 12, 3, 12, tzinfo=dt.UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def preset() -> tuple[Job, ...]:
    return parse_schedule("app", "daily-02:00+6h", {}, "test")


def test_seed_002s_preset_meets_an_rpo_of_6h_but_not_5h() -> None:
    assert rpo_notice("app", preset(), 6 * HOUR, START) is None  # 02, 08, 14, 20: 6 h apart
    notice = rpo_notice("app", preset(), 5 * HOUR, START)
    assert notice == ("set app: its scheduled backups leave 6 h between 2026-12-03 14:00 UTC and "
                      "2026-12-03 20:00 UTC, longer than its RPO of 5 h; schedule backups more often or raise the rpo")


def test_prune_and_drill_jobs_are_no_backups() -> None:
    jobs = (Job("app", "full", cron="0 2 * * *"), Job("app", "prune", every=HOUR), Job("app", "drill", every=HOUR))
    gap = longest_gap(jobs, START, START + dt.timedelta(days=31))
    assert gap is not None and gap.length == 24 * HOUR
    assert "leave 1 d between" in (rpo_notice("app", jobs, 6 * HOUR, START) or "")
    only_drills = (Job("app", "drill", cron="0 4 1 * *"),)
    assert rpo_notice("app", only_drills, 6 * HOUR, START) == (
        "set app has an RPO of 6 h, but its schedule runs no backup; add a full or incremental job")


def test_the_slots_of_several_jobs_are_merged_and_other_sets_ignored() -> None:
    jobs = (Job("app", "full", cron="0 0 * * *"), Job("app", "incremental", cron="0 12 * * *"),
            Job("db", "full", cron="0 6 * * *"))
    gap = longest_gap([j for j in jobs if j.set_name == "app"], START, START + dt.timedelta(days=31))
    assert gap is not None and gap.length == 12 * HOUR
    assert rpo_notice("app", jobs, 12 * HOUR, START) is None
    assert rpo_notice("other", jobs, HOUR, START) is None  # no job of the set: nothing to say


def test_the_longest_gap_is_found_anywhere_in_the_next_31_days() -> None:
    weekdays = (Job("app", "full", cron="0 2 * * 1-5"),)  # the weekend leaves 72 h
    gap = longest_gap(weekdays, START, START + dt.timedelta(days=31))
    assert gap is not None and gap.length == 72 * HOUR and gap.after.weekday() == 4  # a Friday
    assert rpo_notice("app", weekdays, 24 * HOUR, START) is not None
    assert rpo_notice("app", weekdays, 72 * HOUR, START) is None
    monthly = (Job("app", "full", cron="0 4 1 * *"),)  # at most one slot in 31 days
    assert longest_gap(monthly, START, START + dt.timedelta(days=31)) == Gap(START, START + dt.timedelta(days=31))


def test_the_autumn_hour_in_berlin_makes_one_gap_longer() -> None:
    autumn = dt.datetime(2026, 10, 10, tzinfo=dt.UTC)
    notice = rpo_notice("app", preset(), 6 * HOUR, autumn, BERLIN)
    assert notice is not None and "leave 7 h between 2026-10-25 02:00 CEST and 2026-10-25 08:00 CET" in notice
    assert rpo_notice("app", preset(), 7 * HOUR, autumn, BERLIN) is None


def test_a_drill_job_is_a_kind_of_its_own() -> None:
    (job,) = parse_schedule("app", [{"kind": "drill", "cron": "0 4 1 * *"}], {}, "test")
    assert job.kind == "drill" and job.name == "app/drill@0 4 1 * *"
    assert [s.day for s in job.slots(START, START + dt.timedelta(days=62))] == [1, 1]
