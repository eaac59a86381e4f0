"""A tree that changes while it is backed up is stored as it was when each entry was read.

Each race is forced at the exact moment it matters by a wrapper around the ``os``
call the filesystem source makes (``os.open``, ``os.listdir``, ``os.read``): the
wrapper changes the real tree first, then makes the real call.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import treegen
import zstandard

from backupkit.errors import SourceError
from backupkit.testing.fakes import engine_for


def before_call(monkeypatch: pytest.MonkeyPatch, name: str, when: Callable[[Any], bool],
                change: Callable[[], None]) -> None:
    """Run *change* once, just before the first ``os.<name>(arg, ...)`` for which *when(arg)*."""
    real = getattr(os, name)
    done = []

    def wrapper(arg: Any, *args: Any, **kwargs: Any) -> Any:
        if not done and when(arg):
            done.append(arg)
            change()
        return real(arg, *args, **kwargs)

    monkeypatch.setattr(os, name, wrapper)


def opening(path: Path) -> Callable[[Any], bool]:
    return lambda arg: isinstance(arg, str) and arg == str(path)


def test_a_file_replaced_by_rename_after_the_walk_is_stored_whole_as_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text("old-version\n")

    def save_atomically() -> None:  # as editors and config writers save
        (src / "config.tmp").write_text('{"new": "version, and longer than before"}\n')
        os.replace(src / "config.tmp", src / "config.json")

    before_call(monkeypatch, "open", opening(src / "config.json"), save_atomically)
    engine = engine_for(src, sink=tmp_path / "sink")
    engine.backup("app")
    monkeypatch.undo()

    engine.restore("latest", to=tmp_path / "out")
    assert (tmp_path / "out/src/config.json").read_text() == '{"new": "version, and longer than before"}\n'


def test_a_file_swapped_for_a_symlink_is_stored_as_the_symlink_never_its_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "mine.txt").write_text("my own data\n")
    (tmp_path / "secret").write_text("TOP SECRET, readable by the backup's user only\n")

    def swap() -> None:
        (src / "mine.txt").unlink()
        (src / "mine.txt").symlink_to(tmp_path / "secret")

    before_call(monkeypatch, "open", opening(src / "mine.txt"), swap)
    engine = engine_for(src, sink=tmp_path / "sink")
    manifest = engine.backup("app")
    monkeypatch.undo()

    stored = tmp_path / "sink" / manifest.artifact("files").key
    with stored.open("rb") as fh, tarfile.open(
        fileobj=zstandard.ZstdDecompressor().stream_reader(fh), mode="r|"
    ) as tar:
        members = {m.name: (m.type, m.linkname, m.size) for m in tar}
    assert members["src/mine.txt"] == (tarfile.SYMTYPE, str(tmp_path / "secret"), 0)


def test_a_file_swapped_for_a_fifo_does_not_hang_the_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "pipe").write_text("a file for now\n")

    def swap() -> None:
        (src / "pipe").unlink()
        os.mkfifo(src / "pipe")

    before_call(monkeypatch, "open", opening(src / "pipe"), swap)
    engine = engine_for(src, sink=tmp_path / "sink")
    run = threading.Thread(target=engine.backup, args=("app",), daemon=True)
    run.start()
    run.join(timeout=60)
    hung = run.is_alive()
    if hung:  # opening a FIFO for reading waits for a writer: be one, so the run can end
        os.close(os.open(src / "pipe", os.O_WRONLY | os.O_NONBLOCK))
        run.join()
    monkeypatch.undo()
    assert not hung, "the backup waited on a FIFO"

    engine.restore("latest", to=tmp_path / "out")
    assert (tmp_path / "out/src/pipe").is_fifo()


def test_a_directory_that_vanishes_before_it_is_listed_is_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "src"
    (src / "cache/sub").mkdir(parents=True)
    (src / "cache/sub/tmp.bin").write_bytes(b"x" * 100)
    (src / "keep.txt").write_text("kept\n")

    before_call(monkeypatch, "listdir", opening(src / "cache"),
                lambda: shutil.rmtree(src / "cache"))
    engine = engine_for(src, sink=tmp_path / "sink")
    with caplog.at_level(logging.WARNING, logger="backupkit"):
        manifest = engine.backup("app")
    monkeypatch.undo()

    assert manifest.artifact("files").extra["files"] == 1
    assert any("cache vanished before it could be listed" in r.getMessage() for r in caplog.records)
    engine.restore("latest", to=tmp_path / "out")
    assert (tmp_path / "out/src/keep.txt").read_text() == "kept\n"


def test_a_hard_linked_file_whose_first_name_vanishes_still_restores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("shared content\n")
    os.link(src / "a", src / "b")
    os.link(src / "a", src / "c")

    before_call(monkeypatch, "open", opening(src / "a"), (src / "a").unlink)
    engine = engine_for(src, sink=tmp_path / "sink")
    engine.backup("app")
    monkeypatch.undo()

    engine.restore("latest", to=tmp_path / "out")  # "b" and "c" must not be links to a missing "a"
    out = tmp_path / "out/src"
    assert sorted(p.name for p in out.iterdir()) == ["b", "c"]
    assert (out / "b").read_text() == (out / "c").read_text() == "shared content\n"
    assert (out / "b").stat().st_ino == (out / "c").stat().st_ino


def test_a_file_that_vanishes_during_an_incremental_is_not_restored_by_later_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "session.tmp").write_text("v1\n")
    (src / "keep.txt").write_text("kept\n")
    engine = engine_for(src, sink=tmp_path / "sink")
    engine.backup("app")
    (src / "session.tmp").write_text("v2, changed: the incremental will read it\n")

    before_call(monkeypatch, "open", opening(src / "session.tmp"), (src / "session.tmp").unlink)
    engine.backup("app", kind="incremental")
    monkeypatch.undo()
    (src / "keep.txt").write_text("kept, edited\n")
    engine.backup("app", kind="incremental")

    engine.restore("latest", to=tmp_path / "out")
    treegen.assert_same_tree(src, tmp_path / "out/src")  # no session.tmp from the full backup


def test_a_big_file_written_to_while_it_is_read_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "db.bin").write_bytes(os.urandom(3 << 20))  # read in several calls
    real_read = os.read
    reads = []

    def read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        reads.append(n)
        if len(reads) == 1:
            with (src / "db.bin").open("r+b") as fh:  # a writer, in the middle of the read
                fh.seek(2 << 20)
                fh.write(b"changed")
        return data

    monkeypatch.setattr(os, "read", read)
    with caplog.at_level(logging.WARNING, logger="backupkit"):
        engine_for(src, sink=tmp_path / "sink").backup("app")
    monkeypatch.undo()

    assert any("db.bin changed while it was read" in r.getMessage() for r in caplog.records)


def test_a_source_path_that_is_a_symlink_backs_up_what_it_leads_to(tmp_path: Path) -> None:
    (tmp_path / "disk/app").mkdir(parents=True)
    (tmp_path / "disk/app/data.txt").write_text("the data\n")
    (tmp_path / "app").symlink_to(tmp_path / "disk/app")  # /var/lib/app -> /mnt/disk/app
    engine = engine_for(tmp_path / "app", sink=tmp_path / "sink")

    manifest = engine.backup("app")

    assert manifest.artifact("files").extra["files"] == 1
    engine.restore("latest", to=tmp_path / "out")
    assert (tmp_path / "out/app/data.txt").read_text() == "the data\n"
    assert not (tmp_path / "out/app").is_symlink()


def test_a_source_path_that_is_a_dangling_symlink_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "app").symlink_to(tmp_path / "unmounted/app")
    with pytest.raises(SourceError, match=r"is a symlink to .*unmounted/app, which does not exist"):
        engine_for(tmp_path / "app", sink=tmp_path / "sink").backup("app")


def test_mtimes_before_1970_with_fractions_restore_exactly(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    mtimes = {"1960.txt": -302_356_799_750_000_000, "before-epoch.txt": -1_250_000_000,
              "whole.txt": -86_400_000_000_000}
    for name, ns in mtimes.items():
        (src / name).write_text(name)
        os.utime(src / name, ns=(ns, ns))
    engine = engine_for(src, sink=tmp_path / "sink")
    engine.backup("app")

    engine.restore("latest", to=tmp_path / "out")
    assert {n: (tmp_path / "out/src" / n).stat().st_mtime_ns for n in mtimes} == mtimes
