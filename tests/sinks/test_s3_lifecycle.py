"""``backupkit s3 lifecycle`` and ``s3 uploads`` against a real S3 endpoint on loopback
(moto's server): the rule that aborts the multipart uploads a killed backup leaves, written
with every other rule of the bucket kept; open uploads listed with their size (#20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backupkit.testing.s3server import S3Server

pytestmark = pytest.mark.integration


def _run(s3: S3Server, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BACKUP"))}
    env.update(s3.env())
    return subprocess.run([sys.executable, "-m", "backupkit", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_lifecycle_rule_is_shown_then_applied_keeping_other_rules(s3: S3Server, tmp_path: Path) -> None:
    s3.create_bucket("qb-backups")
    client = s3.client()
    keep = {"ID": "expire-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
    client.put_bucket_lifecycle_configuration(Bucket="qb-backups", LifecycleConfiguration={"Rules": [keep]})
    sink = "s3://qb-backups/prod-server"
    shown = _run(s3, tmp_path, "s3", "lifecycle", "--sink", sink)
    assert shown.returncode == 0, shown.stderr
    assert "lacks this rule" in shown.stdout and '"DaysAfterInitiation": 1' in shown.stdout
    assert client.get_bucket_lifecycle_configuration(Bucket="qb-backups")["Rules"] == [keep]  # nothing written
    applied = _run(s3, tmp_path, "s3", "lifecycle", "--sink", sink, "--days", "2", "--apply", "--json")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["applied"] is True
    rules = {r["ID"]: r for r in client.get_bucket_lifecycle_configuration(Bucket="qb-backups")["Rules"]}
    assert rules["expire-logs"]["Expiration"] == {"Days": 30}
    ours = rules["backupkit-abort-incomplete-uploads-prod-server"]
    assert ours["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    assert ours["Filter"] == {"Prefix": "prod-server/"} and ours["Status"] == "Enabled"
    again = _run(s3, tmp_path, "s3", "lifecycle", "--sink", sink, "--days", "2", "--apply")
    assert again.returncode == 0 and "has the rule already" in again.stdout
    assert len(client.get_bucket_lifecycle_configuration(Bucket="qb-backups")["Rules"]) == 2


def test_open_uploads_are_listed_with_their_size(s3: S3Server, tmp_path: Path) -> None:
    s3.create_bucket("qb-backups")
    client = s3.client()
    upload = client.create_multipart_upload(Bucket="qb-backups", Key="prod-server/daily/x.files.tar.zst")
    client.upload_part(Bucket="qb-backups", Key="prod-server/daily/x.files.tar.zst", PartNumber=1,
                       UploadId=upload["UploadId"], Body=b"p" * (5 * 1024 * 1024))
    client.create_multipart_upload(Bucket="qb-backups", Key="elsewhere/y")
    listed = _run(s3, tmp_path, "s3", "uploads", "--sink", "s3://qb-backups/prod-server", "--json")
    assert listed.returncode == 0, listed.stderr
    (found,) = json.loads(listed.stdout)
    assert found["key"] == "prod-server/daily/x.files.tar.zst" and found["bytes"] == 5 * 1024 * 1024


def test_a_local_sink_is_refused_in_one_line(s3: S3Server, tmp_path: Path) -> None:
    (tmp_path / "sink").mkdir()
    result = _run(s3, tmp_path, "s3", "lifecycle", "--sink", str(tmp_path / "sink"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "needs an S3 sink" in result.stderr and str(tmp_path / "sink") in result.stderr


