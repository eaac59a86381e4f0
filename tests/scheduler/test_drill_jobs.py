"""Scheduled drills: a ``drill`` job calls ``Engine.drill`` for its set; a failed drill
is a failed job (state, log, retry) and raises the alert a failed scheduled backup
raises; the RPO notice at start.

The drill runner is tested on its own (tests/engine); here ``Engine.drill`` is replaced
by one that runs as the ``drill`` operation, as the real verb does, and returns or
raises a record: what is tested is the scheduler's dispatch."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

import backupkit
from backupkit.core.drill import ArtifactDrill, DrillRecord
from backupkit.engine import drillrecords
from backupkit.engine.operation import new_run_id, run_operation
from backupkit.errors import DrillFailed
from backupkit.plugin import Operation
from backupkit.scheduler import Scheduler
from backupkit.testing.fakes import SteppingClock

START = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
SLOT = dt.datetime(2026, 12, 1, 4, tzinfo=dt.UTC)  # cron "0 4 1 * *": seed 002's monthly restore test


def make(tmp_path: Path, clock: SteppingClock, **set_body: Any) -> backupkit.Engine:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "a.txt").write_text("alpha")
    alerts = tmp_path / "alerts.jsonl"
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(_APPEND)} {shlex.quote(str(alerts))}"
    body = {"sources": [{"type": "filesystem", "paths": [str(tmp_path / "src")]}], "sink": str(tmp_path / "sink"),
            "schedule": [{"kind": "drill", "cron": "0 4 1 * *"}], **set_body}
    return backupkit.Engine.from_config({"plugins": {"alerts": {"command": command, "retries": 0}},
                                         "sets": {"app": body}}, env={}, clock=clock)


_APPEND = "import sys; open(sys.argv[1], 'a').write(sys.stdin.read() + '\\n')"


def alerts(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class FakeDrill:
    """``Engine.drill`` as the runner behaves: the ``drill`` operation around a drill that
    stores its record, returns it when it passed and raises DrillFailed when not."""

    def __init__(self, ok: bool) -> None:
        self.ok, self.calls = ok, list[tuple[str, str | None]]()

    def __call__(self, engine: backupkit.Engine, ref: str = "latest", *, set_name: str | None = None,
                 progress: Any = None) -> DrillRecord:
        self.calls.append((ref, set_name))
        started = engine.clock()
        operation = Operation("drill", new_run_id(started), started, set_name=set_name)
        return run_operation(engine.plugins, operation, lambda: self._drill(engine, set_name or "app", started))

    def method(self) -> Any:
        """As a method of Engine (an instance is no descriptor)."""
        return lambda engine, *args, **kwargs: self(engine, *args, **kwargs)

    def _drill(self, engine: backupkit.Engine, set_name: str, started: dt.datetime) -> DrillRecord:
        manifest = engine.resolve("latest", set_name=set_name)
        error = None if self.ok else "files/a.txt: checksum differs from the manifest"
        record = DrillRecord(f"{started:%Y%m%dT%H%M%SZ}-dr{len(self.calls)}", set_name, manifest.id, started, 42.0,
                             self.ok, (ArtifactDrill("files", "filesystem", 40.0, 100, self.ok, error=error),))
        drillrecords.store(engine.parts.sinks_of(set_name)[0], record)
        if not self.ok:
            raise DrillFailed(f"drill of backup {manifest.id} failed: artifact files: {error}", record)
        return record


def test_a_drill_job_drills_its_set_at_its_slot_and_records_the_drill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SteppingClock(now=START)
    engine = make(tmp_path, clock)
    manifest = engine.backup("app")
    fake = FakeDrill(ok=True)
    monkeypatch.setattr(backupkit.Engine, "drill", fake.method())
    sched = Scheduler(engine)
    sched.prime()
    assert sched.run_due(SLOT - dt.timedelta(minutes=1)) == [] and fake.calls == []
    assert len(sched.run_due(SLOT)) == 1
    assert fake.calls == [("latest", "app")]
    job = sched.status()["jobs"][0]
    assert job["kind"] == "drill" and job["last_result"] == "ok" and job["last_backup"] == manifest.id
    (record,) = engine.drills("app")
    assert job["last_drill"] == record.drill_id and job["next_run"] == "2027-01-01T04:00:00Z"
    assert alerts(tmp_path) == []
    assert engine.status().sets[0].last_drill is not None  # status sees the drill the job made


def test_a_failed_drill_fails_the_job_and_raises_the_alert_of_a_failed_scheduled_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SteppingClock(now=START)
    engine = make(tmp_path, clock, schedule=[{"kind": "drill", "cron": "0 4 1 * *"},
                                             {"kind": "full", "cron": "0 5 1 * *"}])
    engine.backup("app")
    monkeypatch.setattr(backupkit.Engine, "drill", FakeDrill(ok=False).method())
    sched = Scheduler(engine, retry_backoff=())
    sched.prime()
    with caplog.at_level(logging.ERROR, logger="backupkit.scheduler"):
        sched.run_due(SLOT)
    drill_job = next(j for j in sched.status()["jobs"] if j["kind"] == "drill")
    (record,) = engine.drills("app")
    assert drill_job["last_result"] == "failed" and drill_job["failures"] == 1
    assert drill_job["last_error"].startswith(f"drill of backup {record.backup_id} failed: artifact files")
    assert drill_job["last_drill"] == record.drill_id and drill_job["last_backup"] == record.backup_id
    assert f"scheduled app/drill@0 4 1 * * for slot {SLOT:%Y-%m-%dT%H:%M:%SZ} failed" in caplog.text
    assert drill_job["next_run"] == "2027-01-01T04:00:00Z"  # no retry left: the next slot

    (tmp_path / "src" / "a.txt").unlink()
    (tmp_path / "src").rmdir()  # the scheduled full backup an hour later fails too
    sched.run_due(SLOT + dt.timedelta(hours=1))
    drilled, backed_up = alerts(tmp_path)
    assert drilled.keys() == backed_up.keys()  # the same alert, for another operation
    assert (drilled["operation"], drilled["set"]) == ("drill", "app")
    assert drilled["text"].startswith("backupkit: drill of set app failed on ")
    assert "checksum differs" in drilled["error"]
    assert (backed_up["operation"], backed_up["set"]) == ("backup", "app")


def test_the_scheduler_warns_once_at_start_when_backups_are_further_apart_than_the_rpo(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SteppingClock(now=START)
    engine = make(tmp_path, clock, rpo="6h", schedule=[{"kind": "full", "cron": "0 2 * * *"},
                                                       {"kind": "drill", "cron": "0 4 1 * *"}])
    sched = Scheduler(engine)
    with caplog.at_level(logging.WARNING, logger="backupkit.scheduler"):
        sched.start()
        sched.stop()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == ["set app: its scheduled backups leave 1 d between 2026-12-01 02:00 UTC and "
                      "2026-12-02 02:00 UTC, longer than its RPO of 6 h; schedule backups more often or raise the rpo"]
    often = make(tmp_path, clock, rpo="6h", schedule="daily-02:00+6h")
    assert Scheduler(often).rpo_notices() == []
    no_rpo = make(tmp_path, clock, schedule=[{"kind": "full", "cron": "0 2 * * 0"}])
    assert Scheduler(no_rpo).rpo_notices() == []
