"""``backupkit restore /var/backups/app/daily/<name>.tar.zst``: the path of an artifact, as
seed 002's guide types it, finds the backup's manifest beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from backupkit import cli
from backupkit.errors import NotFoundError
from backupkit.testing.fakes import engine_for
from backupkit.testing.s3server import S3Server


@pytest.fixture(autouse=True)
def no_sink_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("BACKUP_DIR", "BACKUP_S3_BUCKET", "AWS_S3_BUCKET_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_restore_from_a_local_artifact_path(
    tmp_path: Path, source_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = engine_for(source_tree, sink=tmp_path / "sink").backup("app")
    engine_for(source_tree, sink=tmp_path / "sink").backup("app")  # a newer one beside it
    artifact = tmp_path / "sink" / made.artifacts[0].key
    assert artifact.is_file()
    out = tmp_path / "out"
    assert cli.main(["restore", str(artifact), "--to", str(out)]) == 0
    assert f"restored backup {made.id}" in capsys.readouterr().out
    names = {p.relative_to(source_tree).as_posix() for p in source_tree.rglob("*") if p.is_file()}
    assert names and {p.relative_to(out / source_tree.name).as_posix()
                      for p in out.rglob("*") if p.is_file()} == names


def test_restore_from_an_s3_artifact_url(s3: S3Server, tmp_path: Path, source_tree: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    s3.create_bucket("bkt")
    made = engine_for(source_tree, sink="s3://bkt/app", env=s3.env()).backup("app")
    out = tmp_path / "out"
    assert cli.main(["restore", f"s3://bkt/app/{made.artifacts[0].key}", "--to", str(out)]) == 0
    assert f"restored backup {made.id}" in capsys.readouterr().out
    assert any(out.rglob("*"))


def test_an_artifact_path_with_no_manifest_beside_it_is_not_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lone = tmp_path / "daily" / "app_full_20240101T000000Z-abcdef.files.tar.zst"
    lone.parent.mkdir()
    lone.write_bytes(b"x")
    assert cli.main(["restore", str(lone), "--to", str(tmp_path / "out")]) == NotFoundError.exit_code
    (line,) = capsys.readouterr().err.splitlines()
    assert str(lone) in line and "manifest" in line and not (tmp_path / "out").exists()
