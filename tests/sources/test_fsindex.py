"""The file index: read in batches, lines kept for unchanged entries, damage reported."""

from __future__ import annotations

import io
import os
from pathlib import Path

import attrs
import pytest
import zstandard
from hypothesis import example, given
from hypothesis import strategies as st

import backupkit
from backupkit.errors import IntegrityError
from backupkit.sources.filesystem.index import (
    IndexEntry,
    ParentIndex,
    file_line,
    json_bytes,
)

ENTRIES = st.builds(
    IndexEntry,
    path=st.text(min_size=1, max_size=40),
    type=st.sampled_from(["f", "d", "l", "o"]),
    size=st.integers(0, 2**50),
    mtime_ns=st.integers(0, 2**62),
    mode=st.integers(0, 0o7777),
    inode=st.integers(0, 2**63),
    sha256=st.one_of(st.none(), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)),
)


def write_index(entries: list[IndexEntry], out: io.BytesIO) -> None:
    for entry in entries:
        out.write(entry.to_line())


def read_index(stream: io.BytesIO, *, label: str) -> dict[str, IndexEntry]:
    """Every entry of an index by path, parsed through :class:`ParentIndex`."""
    parent = ParentIndex.read(stream, label=label)
    entries = (parent.entry(key) for key in parent.keys())
    return {e.path: e for e in entries if e is not None}


@given(st.lists(ENTRIES, unique_by=lambda e: e.path, max_size=30))
def test_written_index_reads_back_entry_for_entry(entries: list[IndexEntry]) -> None:
    out = io.BytesIO()
    write_index(entries, out)
    index = read_index(io.BytesIO(out.getvalue()), label="the index")
    assert sorted(index.values(), key=lambda e: e.path) == sorted(entries, key=lambda e: e.path)


def test_an_index_bigger_than_a_read_is_read_whole() -> None:
    entries = [IndexEntry(f"dir/file-{i:06d}-{'é' * (i % 7)}", "f", i, i, 0o644, i, "ab" * 32)
               for i in range(20_000)]  # ~3 MB: lines cross the 1 MiB reads
    out = io.BytesIO()
    write_index(entries, out)
    assert out.tell() > 2 << 20
    index = read_index(io.BytesIO(out.getvalue()), label="x")
    assert sorted(index.values(), key=lambda e: e.path) == entries


@pytest.mark.parametrize("damage", [b'{"p":"a","t":"f"}\n', b"not json\n", b'{"p":"b"\n'])
def test_a_damaged_index_is_an_integrity_error_naming_it(damage: bytes) -> None:
    good = IndexEntry("a", "f", 1, 1, 0o644, 1).to_line()
    with pytest.raises(IntegrityError, match="the file index of files is damaged.*run a full backup"):
        read_index(io.BytesIO(good + damage), label="the file index of files")


def parent_of(entries: list[IndexEntry]) -> ParentIndex:
    return ParentIndex.read(io.BytesIO(b"".join(e.to_line() for e in entries)), label="x")


def test_same_line_needs_size_mtime_mode_inode_and_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"data")
    st_ = os.lstat(path)
    entry = attrs.evolve(IndexEntry.from_stat("dir/f", st_), sha256="ab" * 32)
    key = json_bytes("dir/f")
    assert parent_of([entry]).same_line(key, st_) == entry.to_line()
    for change in ({"size": 5}, {"mtime_ns": st_.st_mtime_ns + 1}, {"mode": 0o600}, {"inode": 1},
                   {"type": "l"}, {"path": "dir/g"}):
        assert parent_of([attrs.evolve(entry, **change)]).same_line(key, st_) is None, change
    assert parent_of([entry]).same_line(key, os.lstat(tmp_path)) is None  # not a regular file


@given(st.lists(ENTRIES, unique_by=lambda e: e.path, max_size=20))
def test_every_path_is_found_by_its_json_and_gone_paths_parse_back(entries: list[IndexEntry]) -> None:
    parent = parent_of(entries)
    assert parent.keys() == {json_bytes(e.path) for e in entries}
    for e in entries:
        assert parent.entry(json_bytes(e.path)) == e
    assert parent.paths(parent.keys()) == sorted(e.path for e in entries)


def test_a_path_written_with_other_escapes_is_still_found() -> None:
    # "\u00e9" for "é" and "\/" for "/": valid JSON that json_bytes would not write
    line = b'{"p":"caf\\u00e9\\/menu.txt","t":"f","s":1,"m":2,"o":420,"i":3,"h":null}\n'
    parent = ParentIndex.read(io.BytesIO(line), label="x")
    assert parent.keys() == {json_bytes("café/menu.txt")}
    assert parent.paths(parent.keys()) == ["café/menu.txt"]


def test_an_incremental_with_nothing_changed_writes_the_parents_index_again(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(50):
        (src / "d" / f"f{i}.txt").write_text(f"file {i}\n")
    sink = tmp_path / "sink"
    engine = backupkit.Engine.from_config(
        {"sets": {"app": {"sources": [{"type": "filesystem", "name": "files", "paths": [str(src)]}],
                          "sink": str(sink)}}}, env={})
    full = engine.backup()
    inc = engine.backup(kind="incremental")

    def index_of(manifest: backupkit.Manifest) -> bytes:
        key = manifest.artifact("files.index").key
        return zstandard.ZstdDecompressor().stream_reader((sink / key).read_bytes()).read()

    assert inc.kind == "incremental"
    assert index_of(inc) == index_of(full)


@given(
    path=st.text(min_size=1, max_size=30),
    nums=st.tuples(st.integers(0, 2**40), st.integers(-(2**62), 2**62), st.integers(0, 0o7777),
                   st.integers(0, 2**62)),
    sha=st.one_of(st.just(""), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)),
)
@example(path="caf\udce9/\"q\"\n", nums=(1, 2, 0o644, 3), sha="")  # not UTF-8: escaped as ASCII
def test_a_file_line_is_the_entry_line(path: str, nums: tuple[int, int, int, int], sha: str) -> None:
    size, mtime_ns, mode, ino = nums
    st_ = os.stat_result((0o100000 | mode, ino, 1, 1, 0, 0, size, 0, 0, 0, 0.0, 0.0, 0.0, 0, mtime_ns, 0))
    entry = IndexEntry.from_stat(path, st_, sha)
    assert file_line(json_bytes(path), st_, sha) == entry.to_line()
