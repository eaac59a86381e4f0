"""What used to succeed quietly with nothing to show is an error naming what to fix:
one line, no traceback, a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from backupkit import cli
from backupkit.errors import ConfigError, NotFoundError
from backupkit.sinks.s3 import backupkit_sink_for_url
from backupkit.testing.fakes import engine_for
from backupkit.testing.s3server import S3Server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    err = capsys.readouterr().err.splitlines()
    assert len(err) <= 1, err
    return code, err[0] if err else ""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("BACKUP_DIR", "BACKUP_S3_BUCKET", "AWS_S3_BUCKET_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("command", ["list", "status"])
def test_backup_dir_that_does_not_exist_is_not_found(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "no-such-dir"
    monkeypatch.setenv("BACKUP_DIR", str(missing))
    code, line = run(capsys, command)
    assert code == NotFoundError.exit_code
    assert str(missing) in line and "BACKUP_DIR" in line and "does not exist" in line


@pytest.mark.parametrize("command", ["list", "status"])
def test_a_file_as_sink_is_refused(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "passwd"
    plain.write_text("root:x:0:0::/root:/bin/sh\n")
    code, line = run(capsys, command, "--sink", str(plain))
    assert code == NotFoundError.exit_code and str(plain) in line and "not a directory" in line


@pytest.mark.parametrize("command", ["list", "status"])
def test_an_unknown_set_is_refused(
    command: str, tmp_path: Path, source_tree: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    engine_for(source_tree, sink=tmp_path / "sink").backup("app")
    code, line = run(capsys, command, "--sink", str(tmp_path / "sink"), "--set", "nope")
    assert code == ConfigError.exit_code and "'nope'" in line and "app" in line
    assert run(capsys, command, "--sink", str(tmp_path / "sink"), "--set", "app")[0] in (0, 11, 12)


def test_listing_a_bucket_whose_backups_sit_under_prefixes_names_them(
    s3: S3Server, source_tree: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    s3.create_bucket("bkt")
    for prefix in ("app", "other/db"):
        engine_for(source_tree, sink=f"s3://bkt/{prefix}", env=s3.env()).backup("app")
    code, line = run(capsys, "list", "--sink", "s3://bkt")
    assert code == NotFoundError.exit_code
    assert "s3://bkt/app" in line and "s3://bkt/other/db" in line and "--sink" in line
    assert run(capsys, "list", "--sink", "s3://bkt/app")[0] == 0


def test_s3_url_query_sets_the_layout_and_refuses_unknown_options() -> None:
    assert backupkit_sink_for_url("s3://bkt/p?layout=flat") == ("s3", {"prefix": "p", "bucket": "bkt",
                                                                       "layout": "flat"})
    with pytest.raises(ConfigError, match="unknown key 'layuot'.*'layout'"):
        backupkit_sink_for_url("s3://bkt/p?layuot=flat")
    with pytest.raises(ConfigError, match="twice"):
        backupkit_sink_for_url("s3://bkt/p?layout=flat&layout=tiered")


def test_cli_backs_up_to_a_flat_s3_layout_from_the_url(
    s3: S3Server, source_tree: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    s3.create_bucket("bkt")
    assert cli.main(["backup", "--source", str(source_tree), "--sink", "s3://bkt/p?layout=flat"]) == 0
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket="bkt")["Contents"]]
    assert any(k.startswith("p/backups/") and k.endswith(".manifest.json") for k in keys), keys
    assert not any(k.startswith("p?") for k in keys)
    capsys.readouterr()
    code, line = run(capsys, "list", "--sink", "s3://bkt/p?layuot=flat")
    assert code == ConfigError.exit_code and "layuot" in line


def test_restore_of_an_artifact_the_backup_lacks_is_not_found(
    tmp_path: Path, source_tree: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    engine_for(source_tree, sink=tmp_path / "sink").backup("app")
    code, line = run(capsys, "restore", "latest", "--sink", str(tmp_path / "sink"),
                     "--to", str(tmp_path / "out"), "--artifact", "nosuch")
    assert code == NotFoundError.exit_code and "'nosuch'" in line and "files" in line
    assert not (tmp_path / "out").exists()
