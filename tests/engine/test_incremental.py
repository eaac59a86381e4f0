"""Incremental filesystem backups: only what changed is stored, and every point restores exactly."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard
from treegen import assert_same_tree, make_tree

import backupkit
from backupkit.testing.fakes import engine_for


def copy_of(src: Path, dest: Path) -> Path:
    subprocess.run(["cp", "-a", str(src), str(dest)], check=True)
    return dest


def replace_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """New content and a new inode, but the size and mtime the index remembers."""
    st = path.stat()
    assert len(data) == st.st_size
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, st.st_mode & 0o7777)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)


def stored_files(sink: Path, manifest: backupkit.Manifest) -> set[str]:
    """Names of the regular files inside a stored (zstd) filesystem artifact."""
    with (sink / manifest.artifact("files").key).open("rb") as fh:
        reader = zstandard.ZstdDecompressor().stream_reader(fh)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            return {m.name for m in tar if m.isreg() and not m.name.startswith(".backupkit")}


def change_1(src: Path) -> None:  # edits and additions
    (src / "README.txt").write_text("edited readme, longer than before\n")
    (src / "added.txt").write_text("added\n")
    (src / "added-dir/inner").mkdir(parents=True)
    (src / "added-dir/inner/x.bin").write_bytes(os.urandom(50_000))


def change_2(src: Path) -> None:  # deletions and renames
    (src / "empty.txt").unlink()
    subprocess.run(["rm", "-rf", str(src / "added-dir")], check=True)
    (src / "text/source.py").rename(src / "text/renamed.py")
    (src / "nested/a/b").rename(src / "nested/a/b-renamed")


def change_3(src: Path) -> None:  # permissions, symlinks, type changes
    os.chmod(src / "binary.bin", 0o600)
    (src / "links/to-file").unlink()
    os.symlink("../README.txt", src / "links/to-file")
    (src / "added.txt").unlink()
    (src / "added.txt").mkdir()
    (src / "added.txt/now-a-dir.txt").write_text("a file became a directory\n")
    subprocess.run(["rm", "-rf", str(src / "empty-dir")], check=True)
    (src / "empty-dir").write_text("a directory became a file\n")


def change_4(src: Path) -> None:  # content change the metadata alone would miss
    data = (src / "binary.bin").read_bytes()
    replace_keeping_size_and_mtime(src / "binary.bin", bytes(b ^ 0xFF for b in data[:10]) + data[10:])


def change_5(src: Path) -> None:  # a new hard link; nothing else
    os.link(src / "README.txt", src / "README-hardlink.txt")


@pytest.mark.integration
def test_full_then_five_incrementals_each_point_restores_exactly(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "app")
    engine = engine_for(src, sink=tmp_path / "sink")
    points = []
    first = engine.backup("app", kind="full")
    points.append((first, copy_of(src, tmp_path / "copy0")))
    for i, change in enumerate([change_1, change_2, change_3, change_4, change_5], start=1):
        change(src)
        manifest = engine.backup("app", kind="incremental")
        assert manifest.kind == "incremental"
        assert manifest.parent_id == points[-1][0].id
        assert manifest.tier == "incremental"
        points.append((manifest, copy_of(src, tmp_path / f"copy{i}")))

    for i, (manifest, expected) in enumerate(points):
        out = tmp_path / f"restore{i}"
        engine.restore(manifest.id, to=out)
        assert_same_tree(expected, out / "app")
        assert engine.verify(manifest.id).ok


@pytest.mark.integration
def test_incremental_stores_only_changed_files_and_lists_deletions(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "app")
    engine = engine_for(src, sink=tmp_path / "sink")
    full = engine.backup("app")
    files = full.artifact("files")
    change_1(src)
    inc = engine.backup("app", kind="incremental")
    extra = inc.artifact("files").extra
    assert extra["stored_files"] == 3 + 2  # README.txt, added.txt, x.bin and the hard-link pair
    assert extra["unchanged_files"] == files.extra["files"] - 1 - 2
    assert extra["deleted"] == 0
    assert stored_files(tmp_path / "sink", inc) == {
        "app/README.txt", "app/added.txt", "app/added-dir/inner/x.bin", "app/hard/one",  # two: a link
    }
    change_2(src)
    inc2 = engine.backup("app", kind="incremental")
    assert inc2.artifact("files").extra["deleted"] >= 3


def test_replaced_file_with_same_content_is_not_stored_again(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "app")
    engine = engine_for(src, sink=tmp_path / "sink")
    engine.backup("app")
    same = (src / "binary.bin").read_bytes()
    replace_keeping_size_and_mtime(src / "binary.bin", same)  # new inode, same bytes
    inc = engine.backup("app", kind="incremental")
    assert inc.artifact("files").extra["stored_files"] == 2  # only the hard-link pair, always stored
    assert "app/binary.bin" not in stored_files(tmp_path / "sink", inc)
    change_4(src)
    inc2 = engine.backup("app", kind="incremental")
    assert inc2.artifact("files").extra["stored_files"] == 3
    assert "app/binary.bin" in stored_files(tmp_path / "sink", inc2)


def test_incremental_without_a_full_backup_runs_as_full_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = make_tree(tmp_path / "app")
    engine = engine_for(src, sink=tmp_path / "sink")
    with caplog.at_level(logging.WARNING, logger="backupkit"):
        manifest = engine.backup("app", kind="incremental")
    assert manifest.kind == "full" and manifest.parent_id is None
    assert "has no full backup yet; this incremental runs as a full backup" in caplog.text


def test_restore_fails_clearly_when_a_link_of_the_chain_is_missing(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "app")
    sink = tmp_path / "sink"
    engine = engine_for(src, sink=sink)
    full = engine.backup("app")
    change_1(src)
    inc = engine.backup("app", kind="incremental")
    next(sink.glob(f"*/*{full.id}.manifest.json")).unlink()
    with pytest.raises(backupkit.errors.ChainError, match=f"needs {full.id} \\(parent of {inc.id}\\)"):
        engine.restore(inc.id, to=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.integration
def test_cli_incremental_round_trip(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "app")
    sink = tmp_path / "sink"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "backupkit", *args], capture_output=True, text=True)

    assert cli("backup", "--source", str(src), "--sink", str(sink)).returncode == 0
    change_1(src)
    result = cli("backup", "--kind", "incremental", "--source", str(src), "--sink", str(sink))
    assert result.returncode == 0, result.stderr
    listing = cli("list", "--sink", str(sink))
    assert "incremental" in listing.stdout and "full" in listing.stdout
    assert cli("restore", "latest", "--sink", str(sink), "--to", str(tmp_path / "out")).returncode == 0
    assert_same_tree(src, tmp_path / "out" / "app")


def test_file_names_that_are_not_utf8_survive_full_incremental_and_restore(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    bad, later = os.fsencode(src) + b"/bad-\xff.txt", os.fsencode(src) + b"/later-\xfe\xfd.txt"
    with open(bad, "wb") as fh:
        fh.write(b"first")
    engine = engine_for(src, sink=tmp_path / "sink")
    full = engine.backup()
    with open(later, "wb") as fh:
        fh.write(b"second")
    os.remove(bad)
    inc = engine.backup(kind="incremental")
    assert inc.kind == "incremental" and inc.artifact("files").extra["deleted"] == 1

    engine.restore(full.id, to=tmp_path / "at-full")
    engine.restore(inc.id, to=tmp_path / "at-inc")

    assert os.listdir(os.fsencode(tmp_path / "at-full/src")) == [b"bad-\xff.txt"]
    assert os.listdir(os.fsencode(tmp_path / "at-inc/src")) == [b"later-\xfe\xfd.txt"]
    with open(os.fsencode(tmp_path / "at-inc/src") + b"/later-\xfe\xfd.txt", "rb") as fh:
        assert fh.read() == b"second"


def _tar_stream(members: list[tuple[str, bytes | None]]) -> io.BytesIO:
    """A pax tar stream: (name, content) files, (name, None) directories."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 1_600_000_000, 0o755 if data is None else 0o644
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    out.seek(0)
    return out


@pytest.mark.parametrize("deletions_first", [True, False])
def test_the_deletion_list_is_applied_wherever_it_stands_in_the_stream(
    tmp_path: Path, deletions_first: bool
) -> None:
    """Backups made before the list moved to the end of the stream have it first."""
    from backupkit.plugin import RestoreContext
    from backupkit.sources.filesystem import FilesystemSource
    from backupkit.sources.filesystem.restore import DELETED_MEMBER

    full = _tar_stream([("t", None), ("t/a", b"old a"), ("t/b", b"b"), ("t/gone", None),
                        ("t/gone/x", b"x")])
    deletions = (DELETED_MEMBER, json.dumps(["t/a", "t/gone"]).encode())
    changes = [("t", None), ("t/c", b"new c")]
    incremental = _tar_stream([deletions, *changes] if deletions_first else [*changes, deletions])
    source = FilesystemSource(paths=[str(tmp_path)])

    source.restore_chain(iter([full, incremental]), RestoreContext("files", tmp_path / "out"))

    tree = tmp_path / "out/t"
    assert sorted(p.name for p in tree.iterdir()) == ["b", "c"]
    assert (tree / "c").read_bytes() == b"new c"


def test_a_directory_renamed_and_replaced_by_a_symlink_keeps_its_contents_on_restore(
    tmp_path: Path,
) -> None:
    src, sink = tmp_path / "src", tmp_path / "sink"
    (src / "data/deeper").mkdir(parents=True)
    (src / "data/report.txt").write_text("precious\n")
    (src / "data/deeper/notes.txt").write_text("also precious\n")
    engine = engine_for(src, sink=sink)
    engine.backup("app")
    (src / "data").rename(src / "data-2024")
    (src / "data").symlink_to("data-2024")  # the old name now leads to the new place
    engine.backup("app", kind="incremental")

    engine.restore("latest", to=tmp_path / "out")

    # The deletions of data/report.txt and data/deeper/... must not follow the new symlink.
    assert_same_tree(src, tmp_path / "out" / "src")
    assert (tmp_path / "out/src/data-2024/report.txt").read_text() == "precious\n"
    assert (tmp_path / "out/src/data").is_symlink()


def test_an_edit_that_puts_the_old_mtime_back_is_still_stored(tmp_path: Path) -> None:
    src, sink = tmp_path / "src", tmp_path / "sink"
    src.mkdir()
    (src / "balance.txt").write_text("balance=100\n")
    engine = engine_for(src, sink=sink)
    engine.backup("app")
    st = (src / "balance.txt").stat()
    with (src / "balance.txt").open("r+") as fh:  # same size, same inode
        fh.write("balance=999\n")
    os.utime(src / "balance.txt", ns=(st.st_atime_ns, st.st_mtime_ns))  # as rsync -t, cp -p do

    incremental = engine.backup("app", kind="incremental")

    assert stored_files(sink, incremental) == {"src/balance.txt"}
    engine.restore("latest", to=tmp_path / "out")
    assert (tmp_path / "out/src/balance.txt").read_text() == "balance=999\n"


def test_a_file_whose_ctime_alone_changed_is_hashed_not_stored_again(tmp_path: Path) -> None:
    src, sink = tmp_path / "src", tmp_path / "sink"
    src.mkdir()
    (src / "same.bin").write_bytes(os.urandom(10_000))
    engine = engine_for(src, sink=sink)
    engine.backup("app")
    os.chmod(src / "same.bin", 0o600)
    os.chmod(src / "same.bin", (src / "same.bin").stat().st_mode | 0o044)  # back: only ctime moved

    first = engine.backup("app", kind="incremental")
    second = engine.backup("app", kind="incremental")  # the new ctime is in the index now

    assert stored_files(sink, first) == set() and stored_files(sink, second) == set()
    assert first.artifact("files").extra["unchanged_files"] == 1


def test_an_incremental_whose_parent_is_deleted_while_it_runs_fails_and_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, sink = tmp_path / "src", tmp_path / "sink"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    engine = engine_for(src, sink=sink)
    parent = engine.backup("app")
    (parent_manifest,) = [p for p in sink.rglob("*.manifest.json") if parent.id in p.name]
    before = sorted(p.relative_to(sink).as_posix() for p in sink.rglob("*") if p.is_file())
    real_listdir = os.listdir

    def listdir(path: str) -> list[str]:  # a prune, in the middle of the walk
        if str(path) == str(src) and parent_manifest.exists():
            parent_manifest.unlink()
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    with pytest.raises(backupkit.errors.SourceError, match=rf"parent backup {parent.id} was deleted"):
        engine.backup("app", kind="incremental")
    monkeypatch.undo()

    after = sorted(p.relative_to(sink).as_posix() for p in sink.rglob("*") if p.is_file())
    new = [k for k in after if k not in before and not k.startswith("logs/")]
    assert new == []  # no manifest, no artifacts of the failed run


def test_an_incremental_on_a_backup_whose_chain_is_broken_runs_as_a_full_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, sink = tmp_path / "src", tmp_path / "sink"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    engine = engine_for(src, sink=sink)
    engine.backup("app")
    base = engine.backup("app")
    engine.backup("app", kind="incremental")
    (damaged,) = [p for p in sink.rglob("*.manifest.json") if base.id in p.name]
    damaged.write_bytes(damaged.read_bytes()[:50])  # the incremental's base is unreadable now

    with caplog.at_level(logging.WARNING, logger="backupkit"):
        manifest = engine.backup("app", kind="incremental")

    assert manifest.kind == "full" and manifest.parent_id is None
    assert any("cannot be restored" in r.getMessage() for r in caplog.records)
