"""A set's health from its newest backup against the RPO, its last drill against the
RTO and the room on its local sinks (pure: the time is given)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backupkit.core.catalog import Catalog
from backupkit.core.drill import ArtifactDrill, DrillRecord
from backupkit.core.manifest import Artifact, Kind, Manifest, PluginSpec, backup_id
from backupkit.core.status import (
    AT_RISK,
    DRILL_MAX_AGE,
    FAILING,
    OK,
    DiskUsage,
    Objectives,
    SetStatus,
    growth_per_day,
    room_wanted,
    summarize,
)

T0 = dt.datetime(2026, 12, 1, 4, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
SEED_002 = Objectives(rpo=6 * HOUR, rto=HOUR)  # rpo = "6h", rto = "1h"
GiB = 2**30


def backup(at: dt.datetime, n: int = 1, size: int = 100, kind: Kind = "full", set_name: str = "app") -> Manifest:
    art = Artifact(name="files", source=PluginSpec("filesystem", {}), transforms=(), key=f"k{n}",
                   raw_size=size, stored_size=size, raw_sha256="0" * 64, stored_sha256="0" * 64)
    return Manifest(id=backup_id(at, f"{n:06x}"), set_name=set_name, created_at=at, kind=kind,
                    hostname="h", tool_version="0", artifacts=(art,))


def drill(at: dt.datetime, seconds: float, ok: bool = True, n: int = 1, of: str = "b1") -> DrillRecord:
    artifact = ArtifactDrill("db", "postgres", seconds, 10, ok, error=None if ok else "row count of t: 3, not 4")
    return DrillRecord(f"{at:%Y%m%dT%H%M%SZ}-d{n}", "app", of, at, seconds, ok, (artifact,))


def status(now: dt.datetime, backups: Sequence[Manifest], drills: Sequence[DrillRecord] = (),
           objectives: Objectives = SEED_002, disks: Sequence[DiskUsage] = ()) -> SetStatus:
    report = summarize(Catalog(backups), set_names=["app"], sinks=["/s"], now=now,
                       objectives={"app": objectives}, drills=drills, disks={"app": disks})
    (found,) = report.sets
    return found


def test_a_fresh_backup_and_a_quick_recent_drill_are_ok() -> None:
    found = status(T0 + HOUR, [backup(T0)], [drill(T0, 600)])
    assert (found.health, found.reasons) == (OK, ())
    assert found.last_drill is not None and found.last_drill.seconds == 600 and found.last_drill.ok


def test_the_newest_backup_older_than_the_rpo_is_at_risk_and_just_within_is_ok() -> None:
    drills = [drill(T0, 60)]
    assert status(T0 + 6 * HOUR, [backup(T0)], drills).health == OK  # exactly the RPO
    late = status(T0 + 6 * HOUR + dt.timedelta(seconds=1), [backup(T0)], drills)
    assert late.health == AT_RISK
    assert late.reasons == ("the newest backup is 6 h (21601 s) old, older than the RPO of 6 h (21600 s)",)
    newer = status(T0 + 7 * HOUR, [backup(T0), backup(T0 + 2 * HOUR, 2)], drills)
    assert newer.health == OK and newer.latest_age_seconds == 5 * 3600


def test_a_drill_slower_than_the_rto_is_at_risk() -> None:
    found = status(T0 + HOUR, [backup(T0)], [drill(T0, 3600 + 300)])
    assert found.health == AT_RISK
    assert found.reasons == ("the last drill took 1 h 5 min, longer than the RTO of 1 h",)


def test_only_the_last_drill_counts() -> None:
    slow_then_fast = [drill(T0, 7200, n=1), drill(T0 + HOUR, 60, n=2)]
    assert status(T0 + 2 * HOUR, [backup(T0)], slow_then_fast).health == OK
    failed_then_passed = [drill(T0, 60, ok=False, n=1), drill(T0 + HOUR, 60, n=2)]
    assert status(T0 + 2 * HOUR, [backup(T0)], failed_then_passed).health == OK
    passed_then_failed = [drill(T0 + HOUR, 60, n=2), drill(T0, 60, n=1), drill(T0 + 2 * HOUR, 60, ok=False, n=3)]
    assert status(T0 + 3 * HOUR, [backup(T0)], passed_then_failed).health == FAILING


def test_a_failed_last_drill_is_failing_and_names_what_failed() -> None:
    found = status(T0 + HOUR, [backup(T0)], [drill(T0, 60, ok=False)])
    assert found.health == FAILING
    assert found.reasons == (f"the last drill ({drill(T0, 60).drill_id}, of backup b1) failed: "
                             "artifact db: row count of t: 3, not 4",)


def test_a_failed_drill_fails_a_set_without_objectives_too() -> None:
    assert status(T0 + HOUR, [backup(T0)], [drill(T0, 60, ok=False)], Objectives()).health == FAILING


def test_no_backup_at_all_is_failing() -> None:
    found = status(T0, [], [], Objectives())
    assert (found.health, found.reasons) == (FAILING, ("no backup yet",))


def test_with_an_rto_no_drill_or_an_old_one_is_at_risk() -> None:
    none = status(T0 + HOUR, [backup(T0)], [])
    assert none.health == AT_RISK and none.reasons == (
        "no restore drill yet: nothing shows a restore within the RTO of 1 h",)
    old = T0 - DRILL_MAX_AGE
    assert status(T0 + HOUR, [backup(T0)], [drill(old + HOUR, 60)]).health == OK  # 35 days to the hour
    stale = status(T0 + HOUR, [backup(T0)], [drill(old, 60)])
    assert stale.health == AT_RISK
    assert stale.reasons == ("the last drill is 35 d 1 h old, older than 35 d: drill again to vouch for the RTO",)


def test_without_objectives_only_what_applies_is_judged() -> None:
    ancient = status(T0 + 400 * 24 * HOUR, [backup(T0)], [drill(T0, 99_999)], Objectives())
    assert (ancient.health, ancient.reasons) == (OK, ())
    assert ancient.to_dict()["rpo_seconds"] is None and ancient.to_dict()["rto_seconds"] is None
    rpo_only = status(T0 + 7 * HOUR, [backup(T0)], [], Objectives(rpo=6 * HOUR))
    assert rpo_only.health == AT_RISK and len(rpo_only.reasons) == 1  # no drill needed without an RTO


def test_reasons_come_worst_first_and_all_are_given() -> None:
    disk = DiskUsage("/var/backups", 100 * GiB, 1 * GiB)
    found = status(T0 + 8 * HOUR, [backup(T0)], [drill(T0, 60, ok=False)], disks=[disk])
    assert found.health == FAILING
    assert [r.split()[1] for r in found.reasons] == ["last", "newest", "filesystem"]


def test_a_nearly_full_local_disk_is_at_risk() -> None:
    drills = [drill(T0, 60)]
    roomy = DiskUsage("/var/backups", 100 * GiB, 50 * GiB)
    assert status(T0 + HOUR, [backup(T0, size=GiB)], drills, disks=[roomy]).health == OK
    tight = DiskUsage("/var/backups", 100 * GiB, 9 * GiB)  # under 10 % free
    found = status(T0 + HOUR, [backup(T0, size=GiB)], drills, disks=[tight])
    assert found.health == AT_RISK
    assert found.reasons == ("the filesystem of sink /var/backups is nearly full: 9.0 GiB free of 100.0 GiB, "
                             "under the 10.0 GiB to keep free",)
    assert found.disks[0].to_dict()["nearly_full"] is True
    big_full = DiskUsage("/var/backups", 100 * GiB, 30 * GiB)  # 30 % free, but not two 20 GiB fulls
    assert status(T0 + HOUR, [backup(T0, size=20 * GiB)], drills, disks=[big_full]).health == AT_RISK


def test_room_wanted_is_a_tenth_or_two_newest_full_backups() -> None:
    assert room_wanted(1000, 10) == 100
    assert room_wanted(1000, 80) == 160
    incremental = [backup(T0, 1, size=GiB), backup(T0 + HOUR, 2, size=50 * GiB, kind="incremental")]
    disk = DiskUsage("/b", 100 * GiB, 15 * GiB)
    found = status(T0 + 2 * HOUR, incremental, [drill(T0, 60)], disks=[disk])
    assert found.disks[0].wanted_bytes == 10 * GiB and found.health == OK  # incrementals do not count


@given(st.lists(st.tuples(st.integers(-20 * 24, 2 * 24), st.integers(0, 10**9)), max_size=20))
def test_growth_is_the_bytes_of_the_last_seven_days_per_day(rows: list[tuple[int, int]]) -> None:
    backups = [backup(T0 + dt.timedelta(hours=h), i, size) for i, (h, size) in enumerate(rows)]
    expected = sum(size for h, size in rows if -7 * 24 < h <= 0) / 7
    assert growth_per_day(Catalog(backups), T0) == pytest.approx(expected)


def test_the_report_is_as_bad_as_its_worst_set() -> None:
    catalog = Catalog([backup(T0, 1), backup(T0, 2, set_name="db")])
    report = summarize(catalog, set_names=["app", "db", "new"], sinks=["/s"], now=T0 + 7 * HOUR,
                       objectives={"app": Objectives(rpo=6 * HOUR)})
    assert [s.health for s in report.sets] == [AT_RISK, OK, FAILING]
    assert report.health == FAILING and report.for_set("db").health == OK
    assert report.to_dict()["health"] == FAILING
    assert summarize(Catalog(), set_names=[], sinks=[], now=T0).health == OK
