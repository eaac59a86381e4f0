"""Prometheus metrics: read off the catalog and the failure records in the sink at
scrape time, so that every replica over one sink reports the same numbers."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import backupkit
from backupkit import metrics
from backupkit.core.drill import DrillRecord
from backupkit.engine import drillrecords
from backupkit.engine.prune import ORPHAN_GRACE, find_orphans
from backupkit.errors import ConfigError, SourceError
from backupkit.testing.fakes import SteppingClock

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def config(tmp_path: Path, sink: str | None = None, **metrics_table: Any) -> dict[str, Any]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_text("alpha")
    where = sink or str(tmp_path / "sink")
    return {"plugins": {"metrics": metrics_table},
            "sets": {"app": {"sink": where, "sources": [{"type": "filesystem", "paths": [str(src)]}]},
                     "db": {"sink": where,
                            "sources": [{"type": "filesystem", "paths": [str(tmp_path / "gone")]}]}}}


def samples(body: bytes | str) -> Samples:
    text = body.decode() if isinstance(body, bytes) else body
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def test_metrics_after_backups_are_the_newest_backup_of_each_set_and_kind(tmp_path: Path) -> None:
    clock = SteppingClock(step=dt.timedelta(hours=1))
    engine = backupkit.Engine.from_config(config(tmp_path), env={}, clock=clock)
    engine.backup("app")
    (tmp_path / "src" / "b.txt").write_text("beta" * 1000)
    engine.backup("app", kind="incremental")
    newest_full = engine.backup("app")
    newest_incremental = engine.backup("app", kind="incremental")
    body, content_type = metrics.exposition(engine)
    assert content_type.startswith("text/plain")
    found = samples(body)
    catalog = engine.catalog()
    for kind, manifest in (("full", newest_full), ("incremental", newest_incremental)):
        assert catalog.latest(set_name="app", kind=kind) == manifest
        assert value(found, "backup_last_success_timestamp_seconds", set="app", kind=kind) == pytest.approx(
            manifest.created_at.timestamp())
        assert value(found, "backup_duration_seconds", set="app", kind=kind) == manifest.duration_seconds
        assert value(found, "backup_size_bytes", set="app", kind=kind) == manifest.stored_size
        assert value(found, "backup_failure_total", set="app", kind=kind) == 0
    assert newest_full.stored_size != newest_incremental.stored_size
    tiers = {m.tier for m in catalog}
    for tier in ("daily", "weekly", "monthly", "incremental"):
        held = sum(m.tier == tier for m in catalog)
        assert value(found, "backup_count", set="app", tier=tier) == held
    assert tiers and sum(value(found, "backup_count", set="app", tier=t) for t in tiers) == 4
    # a configured set without backups has counters, but no newest backup to describe
    assert value(found, "backup_failure_total", set="db", kind="full") == 0
    assert not any(name == "backup_size_bytes" and ("set", "db") in labels for name, labels in found)


def test_a_failed_backup_counts_for_its_set_and_kind_and_survives_prune(tmp_path: Path) -> None:
    clock = SteppingClock(step=dt.timedelta(hours=1))
    engine = backupkit.Engine.from_config(config(tmp_path), env={}, clock=clock)
    engine.backup("app")
    for kind in ("full", "incremental", "full"):  # no full of db yet: the incremental runs as one
        with pytest.raises(SourceError):
            engine.backup("db", kind=kind)
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "x").write_text("x")
    engine.backup("db")
    shutil.rmtree(tmp_path / "gone")
    with pytest.raises(SourceError):
        engine.backup("db", kind="incremental")  # a parent is there: it fails as an incremental
    found = samples(metrics.exposition(engine)[0])
    assert value(found, "backup_failure_total", set="db", kind="full") == 3
    assert value(found, "backup_failure_total", set="db", kind="incremental") == 1
    assert value(found, "backup_failure_total", set="app", kind="full") == 0
    records = sorted((tmp_path / "sink" / "metrics" / "failures").rglob("*.json"))
    assert [p.parent.relative_to(tmp_path / "sink").as_posix() for p in records].count(
        "metrics/failures/db/full") == 3
    clock.advance(days=400)  # far past every grace period: still not orphans
    engine.prune(dry_run=False, policy=backupkit.RetentionPolicy(keep_last=1))
    assert sorted((tmp_path / "sink" / "metrics" / "failures").rglob("*.json")) == records
    assert samples(metrics.exposition(engine)[0])[("backup_failure_total", (("kind", "full"), ("set", "db")))] == 3


def test_failure_records_are_never_orphans_wherever_the_layout_puts_backups() -> None:
    key = metrics.failure_key("app", "full", "20240101T020000Z-3f2a1c")
    named_like_a_backup = "metrics/failures/app/full/app_full_20240101T020000Z-3f2a1c.json"
    artifact = "daily/app_full_20240101T020000Z-3f2a1c.files.tar.zst"
    later = dt.datetime(2024, 1, 1, 2, tzinfo=dt.UTC) + ORPHAN_GRACE * 10
    keys = [key, named_like_a_backup, artifact]
    assert find_orphans(keys, [], [], [], now=later, active_runs=set()) == [artifact]


def test_a_failure_record_that_cannot_be_stored_is_a_warning_and_the_error_stands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = backupkit.Engine.from_config(config(tmp_path), env={})
    (tmp_path / "sink").mkdir()
    (tmp_path / "sink" / "metrics").write_text("a file where the directory would go")
    with pytest.raises(SourceError):
        engine.backup("db")
    assert any("could not count the failure" in r.getMessage() for r in caplog.records)


def test_two_replicas_over_one_sink_report_identical_metrics(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)  # backup_age_seconds is read at the reader's clock: one for both
    first = backupkit.Engine.from_config(config(tmp_path), env={}, clock=lambda: now)
    second = backupkit.Engine.from_config(config(tmp_path), env={}, clock=lambda: now)
    first.backup("app")
    with pytest.raises(SourceError):
        second.backup("db")
    second.backup("app", kind="incremental")
    with pytest.raises(SourceError):
        first.backup("db", kind="incremental")
    one, other = metrics.exposition(first)[0], metrics.exposition(second)[0]
    assert one == other
    found = samples(one)  # each replica's failure, counted by both (an incremental with no
    assert value(found, "backup_failure_total", set="db", kind="full") == 2  # parent runs as a full)
    assert ("backup_size_bytes", (("kind", "incremental"), ("set", "app"))) in found


@pytest.mark.integration
def test_two_replicas_over_one_s3_bucket_report_identical_metrics_without_secrets(
    tmp_path: Path, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-access-value-for-metrics"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)  # moto takes any credentials
    s3.create_bucket("metrics")
    cfg = config(tmp_path, "s3://metrics/backups")
    cfg["sets"]["app"]["encrypt"] = True
    env = {"BACKUP_ENCRYPTION_KEY": "passphrase:words nobody may see in metrics"}
    now = dt.datetime.now(dt.UTC)
    first = backupkit.Engine.from_config(cfg, env=env, clock=lambda: now)
    second = backupkit.Engine.from_config(cfg, env=env, clock=lambda: now)
    manifest = first.backup("app")
    with pytest.raises(SourceError):
        second.backup("db")
    body = metrics.exposition(first)[0]
    assert body == metrics.exposition(second)[0]
    found = samples(body)
    assert value(found, "backup_size_bytes", set="app", kind="full") == manifest.stored_size
    assert value(found, "backup_failure_total", set="db", kind="full") == 1
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket="metrics")["Contents"]]
    assert any(k.startswith("backups/metrics/failures/db/full/") for k in keys)
    for leak in (secret, "nobody may see", "testing"):
        assert leak not in body.decode()


def test_rpo_age_and_the_last_drill_per_set_are_read_at_scrape_time(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    cfg["sets"]["app"].update(rpo="6h", rto="1h")
    clock = SteppingClock(now=dt.datetime(2026, 12, 1, 2, tzinfo=dt.UTC), step=dt.timedelta(0))
    engine = backupkit.Engine.from_config(cfg, env={}, clock=clock)
    manifest = engine.backup("app")
    found = samples(metrics.exposition(engine)[0])
    assert value(found, "backup_rpo_seconds", set="app") == 6 * 3600
    assert value(found, "backup_rto_seconds", set="app") == 3600
    assert value(found, "backup_age_seconds", set="app") == 0
    assert not any(name.startswith("backup_last_drill") for name, _ in found)  # no drill yet
    assert ("backup_rpo_seconds", (("set", "db"),)) not in found  # db has no objectives
    sink = engine.parts.sinks_of("app")[0]
    for n, (hours, seconds, ok) in enumerate([(1, 600.0, True), (2, 1234.5, False)]):
        started = clock.now + dt.timedelta(hours=hours)
        drillrecords.store(sink, DrillRecord(f"d{n}", "app", manifest.id, started, seconds, ok))
    clock.advance(seconds=3 * 3600)
    found = samples(metrics.exposition(engine)[0])
    assert value(found, "backup_age_seconds", set="app") == 3 * 3600
    assert value(found, "backup_last_drill_timestamp_seconds", set="app") == (
        clock.now - dt.timedelta(hours=1)).timestamp()
    assert value(found, "backup_last_drill_duration_seconds", set="app") == 1234.5
    assert value(found, "backup_last_drill_success", set="app") == 0


def test_no_created_series_are_exposed(tmp_path: Path) -> None:
    engine = backupkit.Engine.from_config(config(tmp_path), env={})
    with pytest.raises(SourceError):
        engine.backup("db")
    body = metrics.exposition(engine)[0].decode()
    assert "backup_failure_total{" in body
    assert "_created" not in body
    assert all(not name.endswith("_created") for name, _ in samples(body))


def test_the_collector_reads_the_sink_at_collect_time_and_caches_briefly(tmp_path: Path) -> None:
    engine = backupkit.Engine.from_config(config(tmp_path), env={})
    now = [100.0]
    collector = metrics.BackupCollector(engine, cache_seconds=5, clock=lambda: now[0])

    def failures() -> float:
        family = next(f for f in collector.collect() if f.name == "backup_failure")
        return next(s.value for s in family.samples if s.labels == {"set": "db", "kind": "full"})

    assert failures() == 0
    with pytest.raises(SourceError):
        engine.backup("db")
    now[0] += 4.9
    assert failures() == 0  # the cached reading
    now[0] += 0.1
    assert failures() == 1  # read again


def test_the_registry_holds_only_backup_metrics(tmp_path: Path) -> None:
    engine = backupkit.Engine.from_config(config(tmp_path), env={})
    engine.backup("app")
    names = {f.name for f in metrics.registry_for(engine).collect()}
    assert names == {"backup_last_success_timestamp_seconds", "backup_duration_seconds",
                     "backup_size_bytes", "backup_failure", "backup_count", "backup_rpo_seconds",
                     "backup_age_seconds", "backup_rto_seconds", "backup_last_drill_timestamp_seconds",
                     "backup_last_drill_duration_seconds", "backup_last_drill_success"}


def test_the_textfile_parses_and_replaces_the_old_one_atomically(tmp_path: Path) -> None:
    engine = backupkit.Engine.from_config(config(tmp_path), env={})
    out = tmp_path / "textfile"
    out.mkdir()
    path = out / "backupkit.prom"
    engine.backup("app")
    metrics.write_textfile(engine, path)
    old = path.read_text()
    assert value(samples(old), "backup_failure_total", set="db", kind="full") == 0
    held = out / "held-by-a-reader"
    os.link(path, held)  # a reader that opened the old file keeps reading the whole old file
    with pytest.raises(SourceError):
        engine.backup("db")
    metrics.write_textfile(engine, path)
    assert held.read_text() == old
    assert value(samples(path.read_text()), "backup_failure_total", set="db", kind="full") == 1
    assert sorted(p.name for p in out.iterdir()) == ["backupkit.prom", "held-by-a-reader"]


def test_a_failed_reading_leaves_the_previous_textfile_and_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = backupkit.Engine.from_config(config(tmp_path), env={})
    path = tmp_path / "backupkit.prom"
    metrics.write_textfile(engine, path)
    before = path.read_bytes()

    def unreadable(sinks: Any) -> Any:
        raise OSError("the sink went away")

    monkeypatch.setattr(metrics, "failures", unreadable)
    with pytest.raises(OSError, match="went away"):
        metrics.write_textfile(engine, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("backupkit.prom")] == ["backupkit.prom"]


def test_a_textfile_path_must_end_in_prom(tmp_path: Path) -> None:
    engine = backupkit.Engine.from_config(config(tmp_path), env={})
    with pytest.raises(ConfigError, match=r"does not end in \.prom; node_exporter's textfile"):
        metrics.write_textfile(engine, tmp_path / "backupkit.txt")
    assert not (tmp_path / "backupkit.txt").exists()
    with pytest.raises(ConfigError, match=r"\[plugins.metrics\]: textfile .* does not end in \.prom"):
        backupkit.Engine.from_config(config(tmp_path, textfile=str(tmp_path / "m.txt")), env={})
    with pytest.raises(ConfigError, match="unknown key 'port'"):
        backupkit.Engine.from_config(config(tmp_path, port=9100), env={})


def test_without_the_plugin_table_no_failure_is_recorded(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    del cfg["plugins"]
    engine = backupkit.Engine.from_config(cfg, env={})
    with pytest.raises(SourceError):
        engine.backup("db")
    assert not (tmp_path / "sink" / "metrics").exists()
    assert value(samples(metrics.exposition(engine)[0]), "backup_failure_total", set="db", kind="full") == 0
