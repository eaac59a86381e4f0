"""The in-process scheduler against a real engine (filesystem source, local sink)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import backupkit
from backupkit.plugin import Operation, hookimpl
from backupkit.scheduler import Scheduler
from backupkit.testing.fakes import SteppingClock, engine_for

START = dt.datetime(2026, 3, 28, 22, 0, tzinfo=dt.UTC)


def make(tmp_path: Path, schedule: Any, clock: SteppingClock, *plugins: object) -> backupkit.Engine:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_text("alpha")
    return engine_for(src, sink=tmp_path / "sink", clock=clock, plugins=plugins, schedule=schedule)


class Slow:
    """Makes each backup take *seconds* of the test's clock (or of real time)."""

    def __init__(self, clock: SteppingClock | None = None, advance: dt.timedelta = dt.timedelta(0),
                 real: float = 0.0, fail: int = 0) -> None:
        self.clock, self.advance, self.real, self.fail = clock, advance, real, fail
        self.started = threading.Event()

    @hookimpl(wrapper=True)
    def backupkit_operation(self, operation: Operation) -> Generator[None, object, object]:
        if operation.verb == "backup":
            self.started.set()
            if self.fail:
                self.fail -= 1
                raise RuntimeError("the sink is down")
        result = yield
        if operation.verb == "backup":
            time.sleep(self.real)
            if self.clock is not None:
                self.clock.advance(seconds=self.advance.total_seconds())
        return result


def test_jobs_fire_at_their_slots_across_the_spring_change_in_berlin(tmp_path: Path) -> None:
    clock = SteppingClock(now=START)
    engine = backupkit.Engine.from_config(
        {"timezone": "Europe/Berlin", "sets": {"app": {
            "sources": [{"type": "filesystem", "paths": [str(_src(tmp_path))]}], "sink": str(tmp_path / "sink"),
            "schedule": [{"kind": "full", "cron": "30 2 * * *"}, {"kind": "incremental", "every": "6h"}]}}},
        env={}, clock=clock)
    sched = Scheduler(engine)
    sched.prime()
    fired = []
    for _ in range(16):  # step an hour at a time through the night of 2026-03-29
        clock.advance(hours=1)
        fired += [(s.job.kind, clock.now) for s in sched.run_due()]
    berlin = [(kind, at.astimezone(engine.config.tz).strftime("%d %H:%M")) for kind, at in fired]
    # 02:30 does not exist that night: the full backup runs at 03:00 local (01:00 UTC)
    assert ("full", "29 03:00") in berlin
    assert [k for k, _ in fired].count("full") == 1
    assert [at.hour for k, at in fired if k == "incremental"] == [0, 6, 12]
    assert len(list(engine.catalog())) == 4


def _src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_text("alpha")
    return src


def test_run_at_start_then_each_slot_and_an_overrun_skips_slots(tmp_path: Path) -> None:
    clock = SteppingClock(now=START)
    slow = Slow(clock, advance=dt.timedelta(hours=13))  # each backup "takes" 13 hours
    engine = make(tmp_path, [{"kind": "full", "every": "6h", "run_at_start": True}], clock, slow)
    sched = Scheduler(engine)
    (first,) = sched.run_due()
    assert first.runs == 1 and first.last_result == "ok"
    # START 22:00 + 13 h = 11:00: the 00:00 and 06:00 slots passed while it ran
    state = sched.states[first.job.name]
    assert state.skipped == 2 and state.next_run == dt.datetime(2026, 3, 29, 12, tzinfo=dt.UTC)
    assert sched.run_due() == []  # 11:00: nothing due
    clock.advance(hours=1)
    assert [s.job.kind for s in sched.run_due()] == ["full"]
    assert state.to_dict()["skipped_slots"] == 4 and state.to_dict()["last_backup"] == state.last_backup


def test_a_failed_job_is_retried_with_backoff_within_its_slot(tmp_path: Path) -> None:
    clock = SteppingClock(now=START)
    slow = Slow(fail=2)
    engine = make(tmp_path, [{"kind": "full", "every": "1h"}], clock, slow)
    sched = Scheduler(engine, retry_backoff=(60, 120, 600))
    sched.prime()
    clock.advance(hours=1)  # 23:00, the slot
    (state,) = sched.run_due()
    assert state.last_result == "failed" and "the sink is down" in state.last_error
    assert state.next_run == clock.now + dt.timedelta(seconds=60)
    clock.advance(seconds=60)
    sched.run_due()
    assert state.next_run == clock.now + dt.timedelta(seconds=120) and state.failures == 2
    clock.advance(seconds=120)
    sched.run_due()
    assert state.last_result == "ok" and state.failures == 2 and state.runs == 3
    assert state.next_run == dt.datetime(2026, 3, 29, 0, tzinfo=dt.UTC)
    assert len(list(engine.catalog())) == 1


def test_stop_waits_for_the_running_backup_and_leaves_it_whole(tmp_path: Path) -> None:
    slow = Slow(real=1.0)
    src = _src(tmp_path)
    engine = engine_for(src, sink=tmp_path / "sink", plugins=[slow],
                        schedule=[{"kind": "full", "every": "1h", "run_at_start": True}])
    sched = Scheduler(engine)
    sched.start()
    assert sched.running and sched.status()["running"] is True
    assert slow.started.wait(10)
    sched.stop()
    assert not sched.running
    (manifest,) = list(engine.catalog())  # the backup that was running finished, completely
    assert engine.verify(manifest.id).ok
    assert sched.status()["jobs"][0]["last_result"] == "ok"
    assert sched.status()["running"] is False


def test_one_job_at_a_time_even_when_two_sets_are_due_together(tmp_path: Path) -> None:
    clock = SteppingClock(now=START)
    running, overlaps = [0], [0]

    class Watch:
        @hookimpl(wrapper=True)
        def backupkit_operation(self, operation: Operation) -> Generator[None, object, object]:
            running[0] += 1
            overlaps[0] = max(overlaps[0], running[0])
            try:
                return (yield)
            finally:
                running[0] -= 1

    engine = backupkit.Engine.from_config({"sets": {
        name: {"sources": [{"type": "filesystem", "paths": [str(_src(tmp_path))]}],
               "sink": str(tmp_path / name), "schedule": [{"kind": "full", "cron": "0 23 * * *"}]}
        for name in ("a", "b")}}, env={}, clock=clock, plugins=[Watch()])
    sched = Scheduler(engine)
    sched.prime()
    clock.advance(hours=1)
    threads = [threading.Thread(target=sched.run_due) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] == 1
    assert sorted(s.job.set_name for s in sched.states.values() if s.runs) == ["a", "b"]


def test_two_schedulers_with_claims_run_each_slot_once(tmp_path: Path) -> None:
    from backupkit.claims import for_engine

    clock = SteppingClock(now=START)
    engines = [make(tmp_path, [{"kind": "full", "every": "1h"}], clock) for _ in range(2)]
    scheds = [Scheduler(e, claims=for_engine(e)) for e in engines]
    for s in scheds:
        s.prime()
        s.claims.check("app")  # type: ignore[union-attr]
    for _ in range(5):
        clock.advance(hours=1)
        for s in scheds:
            s.run_due()
    assert len(list(engines[0].catalog())) == 5
    results = [st.last_result for s in scheds for st in s.states.values()]
    assert "another replica" in results or sum(st.runs for s in scheds for st in s.states.values()) == 5
    assert sum(st.runs for s in scheds for st in s.states.values()) == 5


def test_start_checks_the_sink_now_a_missing_bucket_is_a_clear_error(tmp_path: Path, s3: Any) -> None:
    import pytest

    from backupkit.errors import BackupkitError

    engine = backupkit.Engine.from_config({"sets": {"app": {
        "sources": [{"type": "filesystem", "paths": [str(_src(tmp_path))]}], "sink": "s3://no-such-bucket/app",
        "schedule": [{"kind": "full", "cron": "0 2 * * *"}]}}})
    sched = Scheduler(engine)
    with pytest.raises(BackupkitError, match="S3 bucket 'no-such-bucket' does not exist; create it"):
        sched.start()
    assert not sched.running


def test_status_says_where_each_scheduled_runs_log_is_also_for_a_failed_run(tmp_path: Path) -> None:
    clock = SteppingClock(now=START)
    engine = make(tmp_path, [{"kind": "full", "every": "1h"}], clock)
    sched = Scheduler(engine, retry_backoff=())
    sched.prime()
    clock.advance(hours=1)
    (state,) = sched.run_due()
    job = sched.status()["jobs"][0]
    assert job["last_result"] == "ok" and job["last_run_id"] == state.last_backup
    log_file = Path(job["last_log"])
    assert log_file.is_file() and log_file.is_relative_to(tmp_path / "sink")
    assert f"backup {state.last_backup} of set app" in log_file.read_text()
    engine.backup(reason="by hand")  # a host's own backup is not the scheduler's run
    assert sched.status()["jobs"][0]["last_log"] == str(log_file)
    (tmp_path / "src" / "a.txt").unlink()
    (tmp_path / "src").rmdir()
    clock.advance(hours=1)
    sched.run_due()
    job = sched.status()["jobs"][0]
    assert job["last_result"] == "failed" and job["last_run_id"] not in (None, state.last_backup)
    failed_log = Path(job["last_log"])
    assert failed_log.is_file() and "failed" in failed_log.read_text()


def test_with_the_real_clock_the_thread_runs_each_slot_once(tmp_path: Path) -> None:
    """No test clock: the scheduler's thread waits for real slots (every 2 s, counted from
    the epoch) and runs each one once."""
    engine = engine_for(_src(tmp_path), sink=tmp_path / "sink", schedule=[{"kind": "full", "every": "2s"}])
    sched = Scheduler(engine)
    sched.start()
    try:
        for _ in range(600):  # up to a minute on a loaded machine
            if sched.status()["jobs"][0]["runs"] >= 3:
                break
            time.sleep(0.1)
    finally:
        sched.stop()
    backups = sorted(engine.catalog(), key=lambda m: m.created_at)
    assert len(backups) >= 3 and sched.status()["jobs"][0]["last_result"] == "ok"
    slots = [int(m.created_at.timestamp()) // 2 for m in backups]
    assert len(set(slots)) == len(slots)  # never two backups for one slot
