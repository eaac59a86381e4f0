"""Run logs follow retention: a pruned backup's log goes with it, a failed run's log is
kept for ``failed_logs`` (30 days by default), a running backup's log is never touched."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import attrs
import pytest

import backupkit
from backupkit.core.manifest import backup_id
from backupkit.core.retention import RetentionPolicy
from backupkit.engine.prune import find_logs
from backupkit.testing.fakes import SteppingClock, engine_for
from backupkit.testing.s3server import S3Server

UTC = dt.UTC
START = dt.datetime(2024, 1, 1, 0, 0, tzinfo=UTC)


def back_up(engine: backupkit.Engine, clock: SteppingClock, count: int) -> list[backupkit.Manifest]:
    """*count* real backups, six hours apart."""
    return [engine.backup("app") for _ in range(count) if clock.advance(hours=6)]


def cloned(engine: backupkit.Engine, clock: SteppingClock, count: int) -> list[backupkit.Manifest]:
    """*count* backups six hours apart, with their logs: one real backup, copied under new
    ids (running 320 backups would read the catalog 320 times)."""
    first = engine.backup("app")
    sink = engine.sink_for(engine.config.sets["app"].sink)
    manifest_key = next(k for k in sink.list_manifest_keys())
    log_key = next(k for k in sink.list_keys("logs/"))
    made = [first]
    for i in range(1, count):
        created = first.created_at + dt.timedelta(hours=6 * i)
        new_id = backup_id(created, f"{i:06x}")
        artifacts = []
        for a in first.artifacts:
            key = a.key.replace(first.id, new_id)
            sink.put_standalone(key, sink.get_bytes(a.key))
            artifacts.append(attrs.evolve(a, key=key))
        m = attrs.evolve(first, id=new_id, created_at=created, artifacts=tuple(artifacts))
        sink.put_standalone(manifest_key.replace(first.id, new_id), m.to_json())
        sink.put_standalone(log_key.replace(first.id, new_id), b"ok\n")
        made.append(m)
    clock.now = made[-1].created_at + dt.timedelta(hours=6)
    return made


def failed_log(set_name: str, started: dt.datetime) -> str:
    return f"{set_name}_full_{backup_id(started, 'f00d01')}.log"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    path.mkdir()
    (path / "f.txt").write_text("data\n")
    return path


def test_prune_320_to_50_leaves_50_logs_and_the_recent_failed_ones(tmp_path: Path, src: Path) -> None:
    clock = SteppingClock(START)
    sink = tmp_path / "sink"
    engine = engine_for(src, sink=sink, clock=clock)
    made = cloned(engine, clock, 320)
    logs = sink / "logs"
    assert len(list(logs.iterdir())) == 320
    now = clock.now
    old_failed = failed_log("app", now - dt.timedelta(days=31))
    new_failed = failed_log("app", now - dt.timedelta(days=2))
    other_set = failed_log("other", now - dt.timedelta(days=60))  # prune --set app leaves it
    for name in (old_failed, new_failed, other_set):
        (logs / name).write_text("failed\n")

    (dry,) = engine.prune("app", policy=RetentionPolicy(keep_last=50))
    assert len(dry.logs) == 271 and f"logs/{old_failed}" in dry.logs
    assert len(list(logs.iterdir())) == 323  # a dry run deletes nothing

    (result,) = engine.prune("app", policy=RetentionPolicy(keep_last=50), dry_run=False)
    kept = {m.id for m in made[-50:]}
    left = sorted(p.name for p in logs.iterdir())
    assert len(left) == 52 and {new_failed, other_set} <= set(left)
    assert {n.split("_")[-1][: -len(".log")] for n in left if "f00d01" not in n} == kept
    assert len(result.logs) == 271


def test_failed_logs_is_configurable_in_the_retention_table(tmp_path: Path, src: Path) -> None:
    clock = SteppingClock(START)
    sink = tmp_path / "sink"
    engine = engine_for(src, sink=sink, clock=clock, retention={"keep_last": 1, "failed_logs": "3d"})
    back_up(engine, clock, 1)
    (sink / "logs" / failed_log("app", clock.now - dt.timedelta(days=4))).write_text("x\n")
    (sink / "logs" / failed_log("app", clock.now - dt.timedelta(days=1))).write_text("x\n")
    (result,) = engine.prune("app", dry_run=False)
    assert result.logs == (f"logs/{failed_log('app', clock.now - dt.timedelta(days=4))}",)
    assert result.plan.policy.to_dict() == {"keep_last": 1, "failed_logs": "3d"}


def test_logs_of_running_and_unreadable_runs_and_other_files_stay() -> None:
    old = START - dt.timedelta(days=90)
    running = backup_id(old, "aaaaaa")
    unreadable = backup_id(old, "bbbbbb")
    gone = backup_id(old, "cccccc")
    keys = [f"logs/app_full_{running}.log", f"logs/host/app_incremental_{unreadable}.log",
            f"logs/host/app_full_{gone}.log", "logs/notes.txt", "logs/README.log",
            f"daily/app_full_{gone}.log"]
    found = find_logs(keys, [], [unreadable], cutoff=START, set_name="app", active_runs={running})
    assert found == [f"logs/host/app_full_{gone}.log"]


def test_cli_prune_dry_run_says_how_many_logs_it_would_delete(
    tmp_path: Path, src: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from backupkit import cli

    clock = SteppingClock(START)
    engine = engine_for(src, sink=tmp_path / "sink", clock=clock)
    back_up(engine, clock, 3)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["prune", "--dry-run", "--sink", str(tmp_path / "sink"), "--keep-last", "1"]) == 0
    out = capsys.readouterr().out
    assert "would delete 2 backup(s)" in out and "2 run log(s)" in out
    assert len([line for line in out.splitlines() if line.startswith("would delete run log logs/app_full_")]) == 2
    assert len(list((tmp_path / "sink" / "logs").iterdir())) == 3


def test_a_pruned_s3_backup_takes_its_log_with_it(s3: S3Server, src: Path) -> None:
    s3.create_bucket("bkt")
    clock = SteppingClock(START)
    engine = engine_for(src, sink="s3://bkt/app", clock=clock, env=s3.env())
    made = cloned(engine, clock, 60)  # fewer than on disk: each object is a request
    client = s3.client()

    def logs() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket="bkt", Prefix="app/logs/")
        return [o["Key"] for page in pages for o in page.get("Contents", ())]

    assert len(logs()) == 60
    failed = f"app/logs/host/{failed_log('app', clock.now - dt.timedelta(days=40))}"
    client.put_object(Bucket="bkt", Key=failed, Body=b"failed\n")
    (result,) = engine.prune("app", policy=RetentionPolicy(keep_last=10), dry_run=False)
    left = logs()
    assert len(left) == 10 and failed not in left and len(result.logs) == 51
    assert {k.rsplit("_", 1)[-1][: -len(".log")] for k in left} == {m.id for m in made[-10:]}
