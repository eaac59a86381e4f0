"""Prune: the plan is printed, nothing goes without --yes, deletion is crash-safe, orphans are collected."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from pathlib import Path
from typing import Any

import pytest

import backupkit
from backupkit.core.retention import RetentionPolicy
from backupkit.engine.layout import Layout
from backupkit.engine.prune import ORPHAN_GRACE, UNTRACKED_RUN_GRACE, find_orphans
from backupkit.errors import ConfigError, SinkError
from backupkit.sinks.local import LocalSink
from backupkit.sinks.s3 import S3Sink
from backupkit.testing.fakes import SteppingClock, engine_for

UTC = dt.UTC


def make_engine(tmp_path: Path, clock: SteppingClock, **set_extra: Any) -> backupkit.Engine:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "f.txt").write_text("data\n")
    return engine_for(src, sink=tmp_path / "sink", clock=clock, **set_extra)


def daily_backups(engine: backupkit.Engine, clock: SteppingClock, days: int) -> list[backupkit.Manifest]:
    made = []
    for _ in range(days):
        made.append(engine.backup("app"))
        clock.advance(days=1)
    return made


def stored_files(sink: Path) -> set[str]:
    return {str(p.relative_to(sink)) for p in sink.rglob("*") if p.is_file() and "logs" not in p.parts
            and "temp" not in p.parts}


def test_dry_run_deletes_nothing_and_yes_deletes_exactly_the_plan(tmp_path: Path) -> None:
    clock = SteppingClock(dt.datetime(2024, 1, 1, 2, 0, tzinfo=UTC))
    engine = make_engine(tmp_path, clock)
    made = daily_backups(engine, clock, 10)
    before = stored_files(tmp_path / "sink")
    policy = RetentionPolicy(keep_last=3)
    (result,) = engine.prune(policy=policy)
    assert result.dry_run and result.deleted == ()
    assert [m.id for m in result.plan.delete] == [m.id for m in made[:7]]
    assert stored_files(tmp_path / "sink") == before

    (result,) = engine.prune(policy=policy, dry_run=False)
    assert set(result.deleted) == {m.id for m in made[:7]}
    assert [m.id for m in engine.catalog()] == [m.id for m in made[7:]]
    left = stored_files(tmp_path / "sink")
    for m in made[:7]:
        assert not any(m.id in f for f in left)
    for m in made[7:]:
        assert engine.verify(m.id).ok


def test_configured_retention_table_is_used(tmp_path: Path) -> None:
    clock = SteppingClock(dt.datetime(2024, 1, 1, 2, 0, tzinfo=UTC))
    engine = make_engine(tmp_path, clock, retention={"keep_daily": 2})
    daily_backups(engine, clock, 5)
    (result,) = engine.prune(dry_run=False)
    assert result.plan.policy == RetentionPolicy(keep_daily=2)
    assert len(engine.catalog()) == 2


def test_default_policy_keeps_seed_tiers(tmp_path: Path) -> None:
    clock = SteppingClock(dt.datetime(2024, 1, 1, 2, 0, tzinfo=UTC))
    engine = make_engine(tmp_path, clock)
    daily_backups(engine, clock, 40)
    engine.prune(dry_run=False)
    kept = list(engine.catalog())
    tiers = [m.tier for m in kept]
    # daily backups of the last 7 days, weekly ones of the last 30, the monthly ones
    assert all(clock.now - m.created_at < dt.timedelta(days=7) for m in kept if m.tier == "daily")
    assert all(clock.now - m.created_at < dt.timedelta(days=30) for m in kept if m.tier == "weekly")
    assert tiers.count("monthly") == 2  # 2024-01-01 and 2024-02-01


class FailingDeletes(LocalSink):
    """A local sink whose delete dies after N calls, like a process killed mid-prune."""

    id = "failing-local"
    calls_left = 1

    def delete(self, keys):  # type: ignore[no-untyped-def]
        if FailingDeletes.calls_left == 0:
            raise SinkError("simulated crash during prune")
        FailingDeletes.calls_left -= 1
        super().delete(keys)


def test_a_crash_mid_prune_leaves_no_manifest_pointing_at_missing_data(tmp_path: Path) -> None:
    clock = SteppingClock(dt.datetime(2024, 1, 1, 2, 0, tzinfo=UTC))
    engine = make_engine(tmp_path, clock)
    daily_backups(engine, clock, 6)
    class Plugin:
        @backupkit.hookimpl
        def backupkit_register_sinks(self, register: backupkit.plugin.Register) -> None:
            register.sink(FailingDeletes)

    crashing = engine_for(tmp_path / "src", sink={"type": "failing-local", "root": str(tmp_path / "sink")},
                          clock=clock, plugins=[Plugin()])
    with pytest.raises(SinkError, match="simulated crash"):
        crashing.prune(policy=RetentionPolicy(keep_last=2), dry_run=False)
    engine = make_engine(tmp_path, clock)
    remaining = list(engine.catalog())
    assert len(remaining) == 5  # one manifest went, then the "process" died
    for m in remaining:
        assert engine.verify(m.id).ok, m.id  # every manifest still has all its data
    # The dead prune left the artifacts of the deleted manifest: the next prune collects them.
    clock.advance(days=1)
    (result,) = engine.prune(policy=RetentionPolicy(keep_last=2), dry_run=False)
    assert len(result.orphans) >= 2  # the orphaned archive and its index
    assert len(engine.catalog()) == 2
    names = stored_files(tmp_path / "sink")
    assert len([n for n in names if n.endswith(".manifest.json")]) == 2
    assert len(names) == 2 * 3  # manifest, archive and index for each


def test_orphans_respect_grace_running_backups_unknown_files_and_unreadable_manifests(tmp_path: Path) -> None:
    clock = SteppingClock(dt.datetime(2024, 1, 10, 2, 0, tzinfo=UTC))
    engine = make_engine(tmp_path, clock)
    kept = engine.backup("app")
    sink = tmp_path / "sink"
    daily = sink / "daily"
    daily.mkdir(exist_ok=True)
    old_orphan = daily / "app_full_20240101T000000Z-aaaaaa.files.tar.zst"
    fresh_orphan = daily / "app_full_20240110T010000Z-bbbbbb.files.tar.zst"
    running = daily / "app_full_20240101T000000Z-cccccc.files.tar.zst"
    foreign = daily / "notes.txt"
    damaged_manifest = daily / "app_full_20240101T000000Z-dddddd.manifest.json"
    damaged_artifact = daily / "app_full_20240101T000000Z-dddddd.files.tar.zst"
    for f in (old_orphan, fresh_orphan, running, foreign, damaged_artifact):
        f.write_bytes(b"x")
    damaged_manifest.write_text("{not json")
    lock_dir = sink / "temp" / "20240101T000000Z-cccccc"
    lock_dir.mkdir(parents=True)
    fd = os.open(lock_dir / ".lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a backup still running in another process
    try:
        (dry,) = engine.prune(policy=RetentionPolicy(keep_last=5))
        assert dry.orphans == (str(old_orphan.relative_to(sink)),) and old_orphan.exists()
        (result,) = engine.prune(policy=RetentionPolicy(keep_last=5), dry_run=False)
    finally:
        os.close(fd)
    assert result.orphans == (str(old_orphan.relative_to(sink)),)
    assert not old_orphan.exists()
    for f in (fresh_orphan, running, foreign, damaged_manifest, damaged_artifact):
        assert f.exists(), f
    assert engine.verify(kept.id).ok


def test_cli_prune_prints_the_plan_and_needs_yes(tmp_path: Path, cli: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    sink = tmp_path / "sink"
    for _ in range(3):
        assert cli("backup", "--source", str(src), "--sink", str(sink)).returncode == 0
    dry = cli("prune", "--sink", str(sink), "--keep-last", "1")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was deleted" in dry.stdout
    assert dry.stdout.count(" delete  ") == 2 and "newest full, last #1" in dry.stdout
    assert len(json.loads(cli("list", "--sink", str(sink), "--json").stdout)["backups"]) == 3
    done = cli("prune", "--sink", str(sink), "--keep-last", "1", "--yes", "--json")
    data = json.loads(done.stdout)
    assert data["dry_run"] is False and len(data["sets"][0]["deleted"]) == 2
    assert len(json.loads(cli("list", "--sink", str(sink), "--json").stdout)["backups"]) == 1
    bad = cli("prune", "--sink", str(sink), "--keep-last", "-2")
    cli.error_line(bad, "keep_last")


def test_cli_prune_takes_restics_flag_names_and_explains_1m(tmp_path: Path, cli: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    sink = tmp_path / "sink"
    assert cli("backup", "--source", str(src), "--sink", str(sink), "--tag", "prod", "--tag", "db").returncode == 0
    for _ in range(2):
        assert cli("backup", "--source", str(src), "--sink", str(sink)).returncode == 0
    dry = cli("prune", "--sink", str(sink), "--keep-within", "1m", "--keep-tag", "prod,db", "--keep-tag", "x",
              "--keep-yearly", "all", "--keep-within-daily", "2y", "--no-oldest-rule", "--within-anchor", "now")
    assert dry.returncode == 0, dry.stderr
    assert dry.stderr.splitlines() == [
        "backupkit: warning: prune options: keep_within '1m' is 1mo ('m' is months, as in restic and borg; "
        "earlier backupkit builds read it as minutes): write '1mo' to say months without this warning, "
        "or 'min' for minutes"
    ]
    assert ("policy: keep_yearly=all keep_within=1mo keep_within_daily=2y keep_tag=prod,db keep_tag=x "
            "oldest_rule=false within_anchor=now") in dry.stdout
    assert "within 1mo, within 2y daily" in dry.stdout and "tag prod,db" in dry.stdout
    cli.error_line(cli("prune", "--sink", str(sink), "--keep-within", "7"), "keep_within", "has no unit", "7d")
    cli.error_line(cli("prune", "--sink", str(sink), "--keep-daily", "seven"), "--keep-daily", "'all'")
    cli.error_line(cli("prune", "--sink", str(sink), "--simulate", "1y", "--every", "90m"), "--every", "90min")


def test_cli_simulation_reports_each_month(tmp_path: Path, cli: Any) -> None:
    result = cli("prune", "--sink", str(tmp_path / "sink"), "--simulate", "400d", "--every", "6h",
                 "--tiered", "--schedule", "full,incremental,incremental,incremental", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["simulation"]
    assert 14 <= len(rows) <= 15
    last = rows[-1]
    assert last["fulls"] >= 12 + 4  # a year of monthly backups plus weekly ones
    assert last["incrementals"] <= 4  # incrementals live 24 hours
    assert all(r["bytes"] > 0 for r in rows)


def test_api_simulation_uses_catalog_sizes(tmp_path: Path) -> None:
    clock = SteppingClock(dt.datetime(2024, 1, 1, 2, 0, tzinfo=UTC))
    engine = make_engine(tmp_path, clock)
    made = daily_backups(engine, clock, 2)
    rows = engine.simulate(RetentionPolicy(keep_last=3), duration=dt.timedelta(days=60),
                           every=dt.timedelta(days=1))
    avg = sum(m.stored_size for m in made) // 2
    assert rows[-1].backups == 3 and rows[-1].bytes == 3 * avg
    with pytest.raises(ConfigError):
        engine.simulate(RetentionPolicy(keep_last=3), duration=dt.timedelta(days=1), every=dt.timedelta(0))


def test_prune_of_a_sink_holding_another_sink_leaves_the_inner_sink_alone(tmp_path: Path) -> None:
    clock = SteppingClock(dt.datetime(2024, 1, 1, 2, 0, tzinfo=UTC))
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("data\n")
    outer, inner = tmp_path / "bk", tmp_path / "bk" / "laptop"

    server = engine_for(src, sink=outer, set_name="server", clock=clock)
    laptop = engine_for(src, sink=inner, set_name="laptop", clock=clock)
    for _ in range(3):
        server.backup()
        laptop.backup()
        clock.advance(days=1)
    inner_files = {p: p.read_bytes() for p in inner.rglob("*") if p.is_file()}
    assert {m.set_name for m in server.catalog()} == {"server"}  # not the inner sink's backups

    clock.advance(days=30)  # past every orphan grace
    outer_only = backupkit.Engine(backupkit.Config.for_sink(str(outer)), clock=clock)
    (result,) = outer_only.prune(policy=RetentionPolicy(keep_last=1), dry_run=False)
    assert len(result.deleted) == 2 and result.orphans == ()
    assert {p: p.read_bytes() for p in inner.rglob("*") if p.is_file()} == inner_files
    assert len(laptop.catalog()) == 3
    laptop.restore("latest", to=tmp_path / "out")
    (restored,) = (tmp_path / "out").rglob("f.txt")
    assert restored.read_text() == "data\n"


def test_layout_fits_only_keys_where_the_sink_stores_backups() -> None:
    tiered = Layout.of(S3Sink(bucket="bkt"))  # <hostname>/<tier>/<file>
    assert tiered.fits("web/daily/app_full_20240101T000000Z-3f2a1c.files.tar.zst")
    assert not tiered.fits("laptops/web/daily/app_full_20240101T000000Z-3f2a1c.files.tar.zst")
    assert not tiered.fits("web/notes/app_full_20240101T000000Z-3f2a1c.files.tar.zst")
    assert not tiered.fits("laptop/daily/x.manifest.json", hostname="web")  # a local layout inside
    local = Layout.of(LocalSink(Path("/srv/bk")))  # <tier>/<file>
    assert local.fits("monthly/x.tar.zst") and not local.fits("laptop/monthly/x.tar.zst")
    assert Layout.of(S3Sink(bucket="bkt", layout="flat")).fits("backups/x.manifest.json")


def test_orphans_of_a_nested_sink_are_never_collected() -> None:
    now = dt.datetime(2024, 3, 1, tzinfo=UTC)
    nested = "laptop/daily/app_full_20240101T000000Z-3f2a1c.files.tar.zst"  # fits <host>/<tier>/
    own = "web/daily/app_full_20240101T000000Z-aaaaaa.files.tar.zst"
    orphans = find_orphans(
        [nested, own], [], [], [], now=now, layout=Layout.of(S3Sink(bucket="bkt")),
        foreign=["laptop/daily/app_full_20240102T000000Z-bbbbbb.manifest.json"],
    )
    assert orphans == [own]


def test_orphans_of_a_run_that_may_still_be_going_wait_a_week_on_sinks_without_locks() -> None:
    started = dt.datetime(2024, 1, 1, 2, 0, tzinfo=UTC)
    artifact = "web/daily/db_full_20240101T020000Z-3f2a1c.files.tar.zst"
    run_log = "logs/web/db_full_20240101T020000Z-3f2a1c.log"
    later = started + ORPHAN_GRACE + dt.timedelta(hours=1)

    def orphans(keys: list[str], now: dt.datetime, active: set[str] | None = None) -> list[str]:
        return find_orphans(keys, [], [], [], now=now, active_runs=active)

    assert orphans([artifact], later) == []  # no lock to ask, no run log: it may be running
    assert orphans([artifact, run_log], later) == [artifact]  # its run has ended
    assert orphans([artifact], started + UNTRACKED_RUN_GRACE) == [artifact]
    assert orphans([artifact], later, active=set()) == [artifact]  # the sink says it is not running
    assert orphans([artifact], later, active={"20240101T020000Z-3f2a1c"}) == []


def test_cli_prune_and_status_json_name_their_sets_and_simulate_wants_one(tmp_path: Path, cli: Any) -> None:
    sources = {}
    for name in ("app", "db"):
        sources[name] = tmp_path / name
        sources[name].mkdir()
        (sources[name] / "f").write_text(name)
    config = tmp_path / "two.toml"
    config.write_text("".join(
        f'[sets.{n}]\nsources = [{{ type = "filesystem", paths = ["{p}"] }}]\nsink = "{tmp_path / "sink"}"\n'
        for n, p in sources.items()
    ))
    for name in sources:
        assert cli("backup", "--config", config, "--set", name).returncode == 0

    pruned = json.loads(cli("prune", "--config", config, "--keep-last", "5", "--json").stdout)
    assert [s["set"] for s in pruned["sets"]] == ["app", "db"]
    assert all(s["sink"] == str(tmp_path / "sink") for s in pruned["sets"])
    status = json.loads(cli("status", "--config", config, "--set", "db", "--json").stdout)
    assert list(status["sets"]) == ["db"]
    simulated = cli("prune", "--config", config, "--simulate", "30d")
    cli.error_line(simulated, "name the one to simulate with --set")
