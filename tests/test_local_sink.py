"""The local sink's own rules: temp collection and key safety."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from backupkit.errors import SinkError
from backupkit.sinks.local import STALE_UNLOCKED_SECONDS, LocalSink


def test_a_run_directory_without_lock_is_collected_only_when_old(tmp_path: Path) -> None:
    sink = LocalSink(root=tmp_path)
    sink.begin_run("20240101T000000Z-aaaaaa")
    fresh = tmp_path / "temp" / "20240101T000000Z-bbbbbb"  # a run between mkdir and its lock
    fresh.mkdir()
    old = tmp_path / "temp" / "20240101T000000Z-cccccc"
    old.mkdir()
    past = time.time() - STALE_UNLOCKED_SECONDS - 60
    os.utime(old, (past, past))
    assert sink.collect_stale_temp() == ["20240101T000000Z-cccccc"]
    assert fresh.is_dir() and not old.exists()
    assert (tmp_path / "temp" / "20240101T000000Z-aaaaaa").is_dir()  # our own run is kept
    sink.end_run("20240101T000000Z-aaaaaa")
    assert not (tmp_path / "temp" / "20240101T000000Z-aaaaaa").exists()


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "daily/../../x", "", "a//b", "./a"])
def test_keys_cannot_leave_the_sink(tmp_path: Path, key: str) -> None:
    with pytest.raises(SinkError, match="invalid key"):
        LocalSink(root=tmp_path).get_bytes(key)


def test_temp_files_are_not_listed(tmp_path: Path) -> None:
    sink = LocalSink(root=tmp_path)
    sink.begin_run("r1")
    writer = sink.open_artifact("daily/a.tar", run_id="r1")
    writer.write(b"partial")
    assert list(sink.list_keys()) == []
    writer.commit()
    assert list(sink.list_keys()) == ["daily/a.tar"]
    assert sink.get_bytes("daily/a.tar") == b"partial"
