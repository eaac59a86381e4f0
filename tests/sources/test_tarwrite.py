"""The source's own tar writer gives byte for byte what tarfile's pax format gives,
and its streams read back with tarfile and GNU tar."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from backupkit.errors import SourceError
from backupkit.sources.filesystem.source import _exact_mtime, _Exactly, _tarinfo
from backupkit.sources.filesystem.tarwrite import TarWriter, _byte_sum, file_header, header

TEXT = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120),
    st.text(max_size=40).filter(lambda t: "\0" not in t),
)
KINDS = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
         tarfile.CHRTYPE, tarfile.BLKTYPE]


@st.composite
def infos(draw: st.DrawFn) -> tarfile.TarInfo:
    info = tarfile.TarInfo(draw(TEXT.filter(bool)))
    info.type = draw(st.sampled_from(KINDS))
    info.mode = draw(st.integers(0, 0o177777))
    info.uid = draw(st.one_of(st.integers(0, 70000), st.integers(0, 2**40)))
    info.gid = draw(st.one_of(st.integers(0, 70000), st.integers(0, 2**40)))
    info.size = draw(st.one_of(st.integers(0, 10**6), st.integers(0, 2**40)))
    info.mtime = draw(st.one_of(st.integers(0, 2**34), st.floats(0, 2**33)))
    info.linkname = draw(TEXT)
    info.uname = draw(TEXT)
    info.gname = draw(TEXT)
    info.devmajor, info.devminor = draw(st.integers(0, 255)), draw(st.integers(0, 255))
    ns = draw(st.integers(0, 999_999_999))
    if ns and isinstance(info.mtime, int):
        info.pax_headers = {"mtime": f"{info.mtime}.{ns:09d}"}
    return info


@settings(max_examples=500, deadline=None)
@given(infos())
def test_header_is_byte_for_byte_tarfiles_pax_header(info: tarfile.TarInfo) -> None:
    assert header(info) == info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def test_headers_of_real_files_match_tarfile_for_every_kind(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/f").write_bytes(b"x" * 700)
    os.link(tmp_path / "d/f", tmp_path / "d/hard")
    (tmp_path / "d/l").symlink_to("f")
    os.mkfifo(tmp_path / "d/p")
    os.utime(tmp_path / "d/f", ns=(1_600_000_000_987_654_321,) * 2)
    inodes: dict[tuple[int, int], str] = {}
    for name in ["d", "d/f", "d/hard", "d/l", "d/p"]:
        st_ = os.lstat(tmp_path / name)
        info = _tarinfo(inodes, str(tmp_path / name), name, st_)
        assert info is not None
        _exact_mtime(info, st_)
        assert header(info) == info.tobuf(tarfile.PAX_FORMAT)
    assert inodes == {(os.lstat(tmp_path / "d/f").st_ino, os.lstat(tmp_path / "d/f").st_dev): "d/f"}


def test_stream_reads_back_with_tarfile_and_gnu_tar(tmp_path: Path) -> None:
    out = io.BytesIO()
    writer = TarWriter(out, bufsize=4096)  # small reads: a big file arrives in several pieces
    contents = {"a.txt": b"hello", "big.bin": os.urandom(50_000), "empty": b"", "exact": b"e" * 512}
    for name, data in contents.items():
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 1_500_000_000, 0o640
        writer.add(info, io.BytesIO(data))
    writer.close()
    blob = out.getvalue()
    assert len(blob) % tarfile.RECORDSIZE == 0 and writer.offset == len(blob)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
    assert got == contents
    listing = subprocess.run(["tar", "-tvf", "-"], input=blob, capture_output=True, check=True).stdout
    assert listing.decode().count("\n") == len(contents)


@pytest.mark.parametrize("size", [100, 50_000])  # written with its header / read in pieces
def test_content_ending_early_is_an_error_not_a_short_member(size: int) -> None:
    writer = TarWriter(io.BytesIO(), bufsize=4096)
    info = tarfile.TarInfo("f")
    info.size = size
    with pytest.raises(OSError, match="ended 10 bytes early"):
        writer.add(info, io.BytesIO(bytes(size - 10)))


def test_common_headers_do_not_go_through_tarfile(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    info = tarfile.TarInfo("src/app/main.py")
    info.size, info.mtime, info.mode, info.uname, info.gname = 1234, 1_700_000_000, 0o644, "app", "app"
    info.pax_headers = {"mtime": "1700000000.123456789"}
    expected = info.tobuf(tarfile.PAX_FORMAT)

    def refuse(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the fast path fell back to tobuf")

    monkeypatch.setattr(tarfile.TarInfo, "tobuf", refuse)
    assert header(info) == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=512, max_size=512))
@example(b"\xff" * 512)  # the largest sum, nearest adler32's modulus
@example(bytes(512))
def test_header_checksum_sum_is_the_plain_byte_sum(block: bytes) -> None:
    assert _byte_sum(block) == sum(block)


class _ShortReads(io.RawIOBase):
    """A file whose reads return at most *step* bytes, as a FUSE or NFS file may."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos = data, step, 0

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        out = self.data[self.pos : self.pos + min(size, self.step)]
        self.pos += len(out)
        return out


def test_short_reads_are_not_taken_for_a_file_that_shrank(caplog) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(10_000)
    reader = _Exactly(_ShortReads(data, step=999).read, len(data), "f")
    assert reader.read(4096) + reader.read(-1) == data
    assert reader.hexdigest() == hashlib.sha256(data).hexdigest()
    assert "shrank" not in caplog.text


def test_a_file_that_shrank_is_padded_with_zeros_and_reported(caplog) -> None:  # type: ignore[no-untyped-def]
    reader = _Exactly(_ShortReads(b"abc", step=2).read, 8, "/data/f")
    assert reader.read(-1) == b"abc" + bytes(5)
    assert "/data/f shrank while being read" in caplog.text


@settings(max_examples=300, deadline=None)
@given(
    name=TEXT.filter(bool),
    mode=st.integers(0, 0o7777),
    ids=st.tuples(st.integers(0, 2**22), st.integers(0, 2**22)),
    size=st.one_of(st.integers(0, 10**6), st.integers(0, 2**40)),
    mtime_ns=st.one_of(st.integers(-(10**18), 2**34 * 10**9), st.integers(0, 10**6) .map(lambda s: s * 10**9)),
    owner=st.tuples(TEXT, TEXT),
)
def test_file_headers_from_stat_are_what_tarfile_gives(
    name: str, mode: int, ids: tuple[int, int], size: int, mtime_ns: int, owner: tuple[str, str]
) -> None:
    # os.stat_result: 10 ints, then float atime/mtime/ctime, then their nanoseconds.
    st_ = os.stat_result((0o100000 | mode, 1, 1, 1, *ids, size, 0, 0, 0, 0.0, mtime_ns / 1e9, 0.0,
                          0, mtime_ns, 0))
    fast = file_header(name, st_, *owner)
    if fast is None:
        return  # left to tarfile (see the test below for what must not be)
    info = tarfile.TarInfo(name)
    info.mode, (info.uid, info.gid), info.size = st_.st_mode, ids, size
    info.uname, info.gname = owner
    _exact_mtime(info, st_)
    assert fast == info.tobuf(tarfile.PAX_FORMAT)



@pytest.mark.parametrize("mtime_ns", [1_700_000_000_000_000_000, 1_700_000_000_123_456_789])
@pytest.mark.parametrize("name", ["src/app/main.py", "d/" + "n" * 98])
def test_common_files_take_the_fast_header(name: str, mtime_ns: int) -> None:
    st_ = os.stat_result((0o100644, 1, 1, 1, 1000, 1000, 12345, 0, 0, 0, 0.0, mtime_ns / 1e9, 0.0,
                          0, mtime_ns, 0))
    fast = file_header(name, st_, "app", "staff")
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid, info.size, info.uname, info.gname = 0o100644, 1000, 1000, 12345, "app", "staff"
    _exact_mtime(info, st_)
    assert fast is not None and fast == info.tobuf(tarfile.PAX_FORMAT)


@pytest.mark.parametrize("name", ["é.txt", "x\udcff", "/abs", "n" * 101])
def test_unusual_names_are_left_to_tarfile(name: str) -> None:
    st_ = os.stat_result((0o100644, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0.0, 0.0, 0.0, 0, 0, 0))
    assert file_header(name, st_, "", "") is None


def test_a_read_error_names_the_file(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)  # a directory where the walk saw a file
    try:
        reader = _Exactly(functools.partial(os.read, fd), 10, "/data/was-a-file")
        with pytest.raises(SourceError, match="cannot read /data/was-a-file: Is a directory"):
            reader.read(-1)
    finally:
        os.close(fd)
