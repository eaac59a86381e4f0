"""Status reports what a sink holds that belongs to no backup (#20): objects of runs that
wrote no manifest (in their grace period, or collectible by the next prune) and open S3
multipart uploads, each with its size."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import backupkit
from backupkit.testing.fakes import engine_for
from backupkit.testing.s3server import S3Server

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def test_objects_without_a_manifest_are_reported_with_size_and_fate(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a" * 1000)
    engine = engine_for(src, sink=tmp_path / "sink", clock=lambda: NOW - dt.timedelta(days=1))
    engine.backup()
    engine = engine_for(src, sink=tmp_path / "sink", clock=lambda: NOW)
    daily = tmp_path / "sink" / "daily"
    daily.mkdir(exist_ok=True)
    recent = daily / "app_full_20261204T110000Z-aaaaaa.files.tar.zst"  # a run that died an hour ago
    old = daily / "app_full_20261203T200000Z-bbbbbb.files.tar.zst"  # ... sixteen hours ago
    recent.write_bytes(b"r" * 300)
    old.write_bytes(b"o" * 5000)
    (tmp_path / "sink" / "notes.txt").write_text("not ours: never reported")
    report = engine.status()
    found = {x.key: x for x in report.leftovers}
    assert set(found) == {"daily/" + recent.name, "daily/" + old.name}
    assert (found["daily/" + recent.name].bytes, found["daily/" + recent.name].collectible) == (300, False)
    assert (found["daily/" + old.name].bytes, found["daily/" + old.name].collectible) == (5000, True)
    assert report.to_dict()["leftovers"][0]["kind"] == "no manifest"
    from backupkit.cli_status import render

    text = render(report)
    sink = tmp_path / "sink"
    assert f"leftovers in {sink}: 1 object(s) without a manifest, deleted by the next prune, 4.9 KiB" in text
    assert "1 object(s) without a manifest in their grace period" in text
    (result,) = engine.prune(dry_run=False)
    assert result.orphans == ("daily/" + old.name,)
    assert [x.key for x in engine.status().leftovers] == ["daily/" + recent.name]


@pytest.mark.integration
def test_open_s3_uploads_are_reported(s3: S3Server, tmp_path: Path) -> None:
    s3.create_bucket("qb-backups")
    client = s3.client()
    key = "app/daily/app_full_20261204T110000Z-cccccc.files.tar.zst"
    up = client.create_multipart_upload(Bucket="qb-backups", Key=key)
    client.upload_part(Bucket="qb-backups", Key=key, PartNumber=1, UploadId=up["UploadId"], Body=b"x" * (5 << 20))
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    config = {"sets": {"app": {"sources": [{"type": "filesystem", "paths": [str(src)]}], "sink": "s3://qb-backups/app"}}}
    report = backupkit.Engine.from_config(config, env=s3.env()).status()
    assert [(x.kind, x.key, x.bytes) for x in report.leftovers] == [
        ("open upload", "daily/app_full_20261204T110000Z-cccccc.files.tar.zst", 5 << 20)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BACKUP"))}
    (tmp_path / "backupkit.toml").write_text(
        f'[sets.app]\nsink = "s3://qb-backups/app"\nsources = [{{type = "filesystem", paths = ["{src}"]}}]\n')
    done = subprocess.run([sys.executable, "-m", "backupkit", "status", "--json"], cwd=tmp_path,
                          env={**env, **s3.env()}, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 11, 12), done.stderr  # its health: no backup yet
    assert json.loads(done.stdout)["leftovers"][0]["bytes"] == 5 << 20
