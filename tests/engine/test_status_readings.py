"""Engine.status gathers what the pure rules judge: the catalog, the drill records in the
sinks and the room on local sinks' filesystems, at the engine's clock."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

import backupkit
from backupkit.core.drill import DrillRecord
from backupkit.engine import drillrecords
from backupkit.engine import status as engine_status
from backupkit.testing.fakes import MemoryStore, SteppingClock, engine_for

T0 = dt.datetime(2026, 12, 1, 2, tzinfo=dt.UTC)


def source(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "a.txt").write_text("alpha" * 1000)
    return tmp_path / "src"


def test_status_follows_the_clock_past_the_rpo_and_a_slow_drill_past_the_rto(tmp_path: Path) -> None:
    clock = SteppingClock(now=T0)
    engine = engine_for(source(tmp_path), sink=tmp_path / "sink", clock=clock, rpo="6h", rto="1h")
    manifest = engine.backup()
    sink = engine.parts.sinks_of("app")[0]
    drillrecords.store(sink, DrillRecord("d1", "app", manifest.id, T0 + dt.timedelta(hours=1), 1800.0, True))
    clock.advance(hours=6)
    (app,) = engine.status().sets
    assert (app.health, app.reasons) == ("ok", ())
    clock.advance(seconds=1)
    (app,) = engine.status().sets
    assert app.health == "at risk"
    assert app.reasons == ("the newest backup is 6 h (21601 s) old, older than the RPO of 6 h (21600 s)",)
    engine.backup()
    drillrecords.store(sink, DrillRecord("d2", "app", manifest.id, clock.now, 3601.0, True))
    (app,) = engine.status().sets
    assert app.reasons == ("the last drill took 1 h (3601 s), longer than the RTO of 1 h (3600 s)",)
    assert app.last_drill is not None and app.last_drill.drill_id == "d2"


def test_a_nearly_full_local_disk_makes_the_set_at_risk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = engine_for(source(tmp_path), sink=tmp_path / "sink")
    engine.backup()
    seen: list[Path] = []

    def tight(path: Any) -> Any:
        seen.append(Path(path))
        return shutil._ntuple_diskusage(1000 * 2**20, 995 * 2**20, 5 * 2**20)  # type: ignore[attr-defined]

    monkeypatch.setattr(engine_status.shutil, "disk_usage", tight)
    report = engine.status()
    (app,) = report.sets
    assert seen == [tmp_path / "sink"]  # once, though sinks and sets may repeat
    assert app.health == "at risk" and report.health == "at risk"
    assert app.reasons == (f"the filesystem of sink {tmp_path / 'sink'} is nearly full: 5.0 MiB free of "
                           "1000.0 MiB, under the 100.0 MiB to keep free",)


def test_a_sink_not_made_yet_is_measured_on_its_parent_and_remote_sinks_on_none(tmp_path: Path) -> None:
    engine = engine_for(source(tmp_path), sink=tmp_path / "not" / "yet")
    (app,) = engine.status().sets
    (disk,) = app.disks
    assert disk.location == str(tmp_path / "not" / "yet")
    assert disk.total_bytes == shutil.disk_usage(tmp_path).total and not disk.nearly_full
    memory = engine_for(source(tmp_path), sink=MemoryStore())
    memory.backup()
    (app,) = memory.status().sets
    assert app.disks == () and app.health == "ok"


def test_a_disk_that_cannot_be_read_is_a_warning_and_no_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_for(source(tmp_path), sink=tmp_path / "sink")
    engine.backup()

    def unreadable(path: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(engine_status.shutil, "disk_usage", unreadable)
    with caplog.at_level(logging.WARNING, logger="backupkit"):
        (app,) = engine.status().sets
    assert app.disks == () and app.health == "ok"
    assert f"cannot tell the room left in sink {tmp_path / 'sink'}: Permission denied" in caplog.text


def test_a_sink_only_status_reports_every_set_it_holds(tmp_path: Path) -> None:
    engine_for(source(tmp_path), sink=tmp_path / "sink", set_name="web").backup()
    reader = backupkit.Engine.from_config(backupkit.Config.for_sink(str(tmp_path / "sink"), env={}))
    (web,) = reader.status().sets
    assert web.name == "web" and web.health == "ok" and len(web.disks) == 1
