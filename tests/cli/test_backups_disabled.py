"""``BACKUP_ENABLED=false`` refuses backups, from the CLI and the library, unless forced."""

from __future__ import annotations

from pathlib import Path

import pytest

from backupkit import Engine
from backupkit import cli as cli_module
from backupkit.config import Config
from backupkit.errors import DisabledError


@pytest.mark.parametrize("command", ["backup", "full", "incremental"])
def test_cli_backup_refuses_when_disabled(
    command: str, tmp_path: Path, source_tree: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BACKUP_ENABLED", "false")
    sink = tmp_path / "sink"
    code = cli_module.main([command, "--source", str(source_tree), "--sink", str(sink)])
    err = capsys.readouterr().err.splitlines()
    assert code == DisabledError.exit_code == 13
    assert len(err) == 1 and "BACKUP_ENABLED=false" in err[0] and "--force" in err[0]
    assert not list(sink.rglob("*.manifest.json")) if sink.exists() else True


def test_cli_backup_force_runs_when_disabled(
    tmp_path: Path, source_tree: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKUP_ENABLED", "false")
    sink = tmp_path / "sink"
    assert cli_module.main(["backup", "--force", "--source", str(source_tree), "--sink", str(sink)]) == 0
    assert len(list(sink.rglob("*.manifest.json"))) == 1


def test_engine_backup_refuses_when_disabled_unless_forced(tmp_path: Path, source_tree: Path) -> None:
    env = {"BACKUP_ENABLED": "false"}
    config = Config.adhoc(sources=[str(source_tree)], sink=str(tmp_path / "sink"), env=env)
    engine = Engine.from_config(config, env=env)
    with pytest.raises(DisabledError, match="BACKUP_ENABLED=false"):
        engine.backup()
    assert not (tmp_path / "sink").exists() or not list((tmp_path / "sink").rglob("*.manifest.json"))
    assert engine.backup(force=True).id


def test_engine_from_dict_reads_backup_enabled_from_its_env(tmp_path: Path, source_tree: Path) -> None:
    data = {"sets": {"app": {"sources": [{"type": "filesystem", "paths": [str(source_tree)]}],
                             "sink": str(tmp_path / "sink")}}}
    with pytest.raises(DisabledError):
        Engine.from_config(data, env={"BACKUP_ENABLED": "no"}).backup("app")
    assert Engine.from_config(data, env={}).backup("app").set_name == "app"
