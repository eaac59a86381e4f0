"""The audit log: one JSON object per operation in the sink, listed by backupkit audit."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest

import backupkit
from backupkit.errors import SourceError
from backupkit.testing.fakes import SteppingClock


def write_config(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_text("alpha")
    path = tmp_path / "backupkit.toml"
    path.write_text(f'[plugins.audit]\n[sets.app]\nsink = "{tmp_path / "sink"}"\n'
                    f'[[sets.app.sources]]\ntype = "filesystem"\npaths = ["{src}"]\n'
                    '[sets.app.retention]\nkeep_last = 1\n')
    return path


def test_backups_restores_prunes_and_failures_are_recorded_and_listed(tmp_path: Path, cli: Any) -> None:
    path = write_config(tmp_path)
    clock = SteppingClock(step=__import__("datetime").timedelta(hours=1))
    engine = backupkit.Engine.from_config(path, env={}, clock=clock)
    first, second = engine.backup(), engine.backup()
    engine.restore(second.id, to=tmp_path / "out")
    (result,) = engine.prune("app", dry_run=False)
    assert result.deleted == (first.id,)
    (tmp_path / "src" / "a.txt").unlink()
    (tmp_path / "src").rmdir()
    with pytest.raises(SourceError):
        engine.backup()
    keys = sorted(p.relative_to(tmp_path / "sink").as_posix() for p in (tmp_path / "sink" / "audit").rglob("*.json"))
    assert len(keys) == 5 and all(k.startswith("audit/") for k in keys)
    listed = cli("audit", "--config", path, "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)["entries"]
    assert [(e["operation"], e["result"]) for e in entries] == [
        ("backup", "ok"), ("backup", "ok"), ("restore", "ok"), ("prune", "ok"), ("backup", "failed")]
    assert entries[0]["backup_id"] == first.id and entries[3]["deleted"] == [first.id]
    assert entries[4]["error"] and "does not exist" in entries[4]["error"]
    assert all(e["who"] == getpass.getuser() and e["host"] and e["set"] in ("app", None) for e in entries)
    text = cli("audit", "--config", path)
    assert f"backup   app          ok     {second.id}" in text.stdout
    # the audit log is never taken for orphans, and its entries stay after pruning
    engine.prune("app", dry_run=False)
    assert len(list((tmp_path / "sink" / "audit").rglob("*.json"))) == 6


def test_a_backup_with_another_key_than_the_sets_last_records_a_key_change(tmp_path: Path, cli: Any) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("[sets.app]\n", "[sets.app]\nencrypt = true\n"))
    old_key, new_key = "passphrase:first secret words", "passphrase:second secret words"
    backupkit.Engine.from_config(path, env={"BACKUP_ENCRYPTION_KEY": old_key}).backup()
    backupkit.Engine.from_config(path, env={"BACKUP_ENCRYPTION_KEY": old_key}).backup()  # same key: none
    rotated = backupkit.Engine.from_config(path, env={"BACKUP_ENCRYPTION_KEY": new_key}).backup()
    cli.env["BACKUP_ENCRYPTION_KEY"] = new_key
    listed = cli("audit", "--config", path, "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)["entries"]
    assert [e["operation"] for e in entries] == ["backup", "backup", "key-change", "backup"]
    change = entries[2]
    old_id = entries[0]["key_ids"]
    assert len(old_id) == 1 and change["from_key_ids"] == old_id
    assert change["to_key_ids"] == entries[3]["key_ids"] != old_id and change["backup_id"] == rotated.id
    raw = "".join(p.read_text() for p in (tmp_path / "sink" / "audit").rglob("*.json"))
    assert "secret words" not in raw  # ids only, never the keys
