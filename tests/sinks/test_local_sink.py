"""The local sink's own rules: temp collection, key safety, durability, never overwriting."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths os.fsync is called on, in order."""
    paths: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    yield paths


def test_delete_fsyncs_every_directory_it_deleted_from(tmp_path: Path, synced: list[str]) -> None:
    sink = LocalSink(root=tmp_path)
    sink.begin_run("r1")
    for key in ("daily/a.manifest.json", "daily/a.tar", "weekly/b.tar"):
        sink.put_bytes(key, b"x", run_id="r1")
    synced.clear()

    sink.delete(["daily/a.manifest.json", "daily/a.tar", "weekly/b.tar", "monthly/gone.tar"])

    assert list(sink.list_keys()) == []
    assert sorted(synced) == [str(tmp_path / d) for d in ("daily", "monthly", "weekly")]


def test_abort_after_a_commit_that_failed_after_publishing_removes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = LocalSink(root=tmp_path)
    sink.begin_run("r1")
    writer = sink.open_artifact("daily/a.tar", run_id="r1")
    writer.write(b"data")
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)  # the directory's fsync fails: a disk error
    with pytest.raises(SinkError, match="^cannot store .*daily/a.tar: Input/output error$"):
        writer.commit()
    writer.abort()

    assert not (tmp_path / "daily" / "a.tar").exists()
    assert list(sink.list_keys()) == []


def test_an_unreadable_tier_directory_fails_the_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = LocalSink(root=tmp_path)
    sink.begin_run("r1")
    sink.put_bytes("daily/a.tar", b"x", run_id="r1")
    sink.put_bytes("weekly/b.tar", b"x", run_id="r1")
    unreadable = str(tmp_path / "weekly")
    real = os.scandir

    def scandir(path: Any = ".") -> Any:  # chmod 000 does not stop root, who runs the tests here
        if os.fspath(path) == unreadable:
            raise PermissionError(errno.EACCES, "Permission denied", unreadable)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(SinkError) as caught:
        list(sink.list_keys())
    assert str(caught.value) == (
        f"cannot list {unreadable}: permission denied; make it writable or choose another sink"
    )


@pytest.mark.parametrize("hard_links", [True, False])
def test_a_writer_never_replaces_an_artifact_committed_after_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool
) -> None:
    if not hard_links:  # a filesystem without them (FAT, some SMB mounts): check, then rename

        def link(src: Any, dst: Any) -> None:
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", link)
    sink = LocalSink(root=tmp_path)
    sink.begin_run("r1")
    sink.begin_run("r2")
    first = sink.open_artifact("daily/a.tar", run_id="r1")
    second = sink.open_artifact("daily/a.tar", run_id="r2")  # both saw no file
    first.write(b"first")
    second.write(b"second")
    first.commit()

    with pytest.raises(SinkError, match="daily/a.tar already exists; refusing to overwrite"):
        second.commit()
    second.abort()

    assert sink.get_bytes("daily/a.tar") == b"first"
    assert list(sink.list_keys()) == ["daily/a.tar"]


def test_collectors_in_other_processes_never_break_a_run_being_set_up_or_ended(tmp_path: Path) -> None:
    """Replicas share a sink: each one's begin_run collects the others' stale runs while they
    start and end their own. No run may lose its directory, and no collector may trip over one
    that just went away."""
    import threading

    errors: list[BaseException] = []

    def worker(n: int) -> None:
        sink = LocalSink(root=tmp_path)  # its own file descriptors, as another process has
        try:
            for i in range(150):
                run_id = f"run-{n}-{i}"
                sink.begin_run(run_id)
                (tmp_path / "temp" / run_id / "part").write_bytes(b"x")  # fails if collected
                sink.end_run(run_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list((tmp_path / "temp").iterdir()) == []


def test_a_run_directory_is_locked_from_the_moment_it_appears(tmp_path: Path) -> None:
    import fcntl

    sink = LocalSink(root=tmp_path)
    sink.begin_run("r1")
    assert sorted(p.name for p in (tmp_path / "temp").iterdir()) == ["r1"]
    fd = os.open(tmp_path / "temp" / "r1" / ".lock", os.O_RDWR)
    try:
        with pytest.raises(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    staging = tmp_path / "temp" / ".r2"  # another process between mkdir and rename
    staging.mkdir()
    (staging / ".lock").touch()
    assert LocalSink(root=tmp_path).collect_stale_temp() == []
    assert staging.is_dir()  # judged by age alone, and it is young
    sink.end_run("r1")
