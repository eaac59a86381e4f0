"""A damaged or deleted file index (a sidecar): restore still restores the checked data
but warns that the backup is damaged; an incremental does not build on it (#20)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from backupkit import Manifest
from backupkit.testing.fakes import engine_for

if TYPE_CHECKING:
    from conftest import Cli


def _index(tmp_path: Path, manifest: Manifest) -> Path:
    (found,) = [a for a in manifest.artifacts if "sidecar_of" in a.extra]
    return tmp_path / "sink" / found.key


@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_restore_warns_and_an_incremental_runs_full(tmp_path: Path, damage: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_text(str(i) * 100)
    engine = engine_for(src, sink=tmp_path / "sink")
    full = engine.backup()
    index = _index(tmp_path, full)
    if damage == "flip":
        data = bytearray(index.read_bytes())
        data[len(data) // 2] ^= 0xFF
        index.write_bytes(bytes(data))
    else:
        index.unlink()
    why = "does not match its checksum" if damage == "flip" else "is missing"
    with caplog.at_level(logging.WARNING, logger="backupkit"):
        engine.restore(to=tmp_path / "out")
    assert (tmp_path / "out" / "src" / "f2").read_text() == "2" * 100
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"backup {full.id} is damaged: its files.index ({index.relative_to(tmp_path / 'sink')}) {why}" in warning
    assert "incremental cannot build on it" in warning
    caplog.clear()
    (src / "f3").write_text("new")
    with caplog.at_level(logging.WARNING, logger="backupkit"):
        second = engine.backup(kind="incremental")
    assert second.kind == "full" and second.parent_id is None
    assert any(f"the newest backup {full.id} is damaged" in r.getMessage() and "running a full backup" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="backupkit"):
        engine.restore(to=tmp_path / "out2")  # the new full backup is whole: no warning
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_cli_prints_the_warning_and_exits_0(tmp_path: Path, cli: Cli) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    assert cli("backup", "--source", "src", "--sink", "sink").returncode == 0
    (index,) = (tmp_path / "sink").rglob("*.index.zst")
    index.unlink()
    result = cli("restore", "latest", "--sink", "sink", "--to", "out")
    assert result.returncode == 0
    assert "backupkit: warning: backup " in result.stderr and "is damaged: its files.index" in result.stderr
