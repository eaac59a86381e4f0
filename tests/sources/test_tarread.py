"""The restore's own tar reader agrees with tarfile on what tarfile and GNU tar write,
and turns any damage into a TarFormatError (a tarfile.ReadError), never another error."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backupkit.sources.filesystem.restore import path_parts
from backupkit.sources.filesystem.tarread import TarFormatError, TarReader

NAME_PART = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\0"),
    min_size=1,
    max_size=60,
)
MEMBER = st.tuples(
    st.lists(NAME_PART, min_size=1, max_size=5).map("/".join),
    st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE]),
    st.binary(max_size=3000),
    st.integers(min_value=0, max_value=0o7777),
    st.one_of(st.integers(min_value=0, max_value=2**33 - 1), st.floats(min_value=0, max_value=4e9)),
)


def archive(members: list[tuple[str, bytes, bytes, int, float]], fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, kind, data, mode, mtime in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, mode, mtime
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                # no NUL: tarfile keeps one from a pax record, we refuse it (tested below)
                link = data.replace(b"\0", b"").decode("latin-1")[:300]
                info.linkname = link if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
                tar.addfile(info)
    return out.getvalue()


def read_ours(blob: bytes) -> list[tuple[str, bytes, str, int, float, bytes]]:
    reader = TarReader(io.BufferedReader(io.BytesIO(blob)))  # type: ignore[arg-type]
    out = []
    while (m := reader.next()) is not None:
        data = reader.read_data() if m.isreg() else b""
        out.append((m.name, m.type, m.linkname, m.mode, float(m.mtime), data))
    return out


def read_tarfile(blob: bytes) -> list[tuple[str, bytes, str, int, float, bytes]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r|") as tar:
        for m in tar:
            fh = tar.extractfile(m) if m.isreg() else None
            out.append((m.name, m.type, m.linkname, m.mode, float(m.mtime), fh.read() if fh else b""))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MEMBER, max_size=6), st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]))
def test_reads_what_tarfile_writes_exactly_as_tarfile_does(members, fmt) -> None:  # type: ignore[no-untyped-def]
    blob = archive(members, fmt)
    assert read_ours(blob) == read_tarfile(blob)


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar not installed")
@pytest.mark.parametrize("fmt", ["posix", "gnu", "oldgnu"])
def test_reads_what_gnu_tar_writes(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "t"
    (root / ("d" * 120) / "sub").mkdir(parents=True)  # a name longer than 100 bytes
    (root / ("d" * 120) / "sub" / "file.txt").write_bytes(b"x" * 1000)
    (root / "ünïcode.bin").write_bytes(os.urandom(5000))
    (root / "link").symlink_to("ünïcode.bin")
    blob = subprocess.run(["tar", f"--format={fmt}", "-cf", "-", "-C", str(tmp_path), "t"],
                          check=True, capture_output=True).stdout
    assert read_ours(blob) == read_tarfile(blob)
    names = [m[0] for m in read_ours(blob)]
    assert f"t/{'d' * 120}/sub/file.txt" in names and "t/ünïcode.bin" in names


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damage_gives_a_tar_format_error_or_a_clean_read(data) -> None:  # type: ignore[no-untyped-def]
    blob = bytearray(archive([("a/b.txt", tarfile.REGTYPE, b"hello" * 300, 0o644, 1.5e9),
                              ("a/l", tarfile.SYMTYPE, b"b.txt", 0o777, 1e9)], tarfile.PAX_FORMAT))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        read_ours(bytes(blob[:cut]))
    except TarFormatError:
        pass  # the only error allowed


def test_truncated_member_data_is_an_error() -> None:
    blob = archive([("f", tarfile.REGTYPE, b"z" * 2000, 0o644, 0)], tarfile.PAX_FORMAT)
    with pytest.raises(TarFormatError, match="unexpected end"):
        read_ours(blob[:1536])


def test_sparse_members_are_refused() -> None:
    info = tarfile.TarInfo("f")
    info.type, info.size = tarfile.GNUTYPE_SPARSE, 0
    blob = info.tobuf(tarfile.GNU_FORMAT) + bytes(1024)
    with pytest.raises(TarFormatError, match="sparse"):
        read_ours(blob)


@given(st.lists(st.sampled_from(["a", "b", ".", "..", "", "ü"]), max_size=6).map("/".join))
def test_parts_matches_pure_posix_path_for_relative_names(name: str) -> None:
    if not name.startswith("/"):
        assert path_parts(name) == list(PurePosixPath(name).parts)


def test_a_huge_recorded_size_fails_at_end_of_stream_without_allocating_it() -> None:
    import tracemalloc

    info = tarfile.TarInfo("f")
    info.size = 2**40  # 1 TiB announced, 10 bytes present
    blob = info.tobuf(tarfile.GNU_FORMAT) + b"z" * 10
    reader = TarReader(io.BufferedReader(io.BytesIO(blob)))  # type: ignore[arg-type]
    member = reader.next()
    assert member is not None and member.size == 2**40
    tracemalloc.start()
    try:
        with pytest.raises(TarFormatError, match="unexpected end"):
            reader.read_data()
        assert tracemalloc.get_traced_memory()[1] < 64 << 20
    finally:
        tracemalloc.stop()


def test_an_oversized_pax_header_is_refused() -> None:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, 2**35
    with pytest.raises(TarFormatError, match="too big"):
        read_ours(info.tobuf(tarfile.GNU_FORMAT))


class Trickle:
    """Short reads of varying length, as a decompressor's stream gives them."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data, self.sizes, self.pos, self.i = data, sizes, 0, 0

    def read(self, n: int = -1) -> bytes:
        step = self.sizes[self.i % len(self.sizes)]
        self.i += 1
        out = self.data[self.pos : self.pos + min(n, step)]
        self.pos += len(out)
        return out


@settings(max_examples=100, deadline=None)
@given(st.lists(MEMBER, max_size=5), st.lists(st.integers(1, 1500), min_size=1, max_size=10))
def test_short_reads_from_the_stream_change_nothing(members, sizes) -> None:  # type: ignore[no-untyped-def]
    blob = archive(members, tarfile.PAX_FORMAT)
    reader = TarReader(Trickle(blob, sizes))  # type: ignore[arg-type]
    got = []
    while (m := reader.next()) is not None:
        got.append((m.name, m.type, m.linkname, m.mode, float(m.mtime), reader.read_data() if m.isreg() else b""))
    assert got == read_tarfile(blob)


SEGMENT = st.one_of(
    st.binary(min_size=1, max_size=5000),
    st.integers(1, 20_000).map(bytes),  # runs of zeros, some long enough to become holes
)


@settings(max_examples=150, deadline=None)
@given(st.lists(SEGMENT, max_size=8), st.lists(st.integers(1, 9000), min_size=1, max_size=6))
def test_files_with_runs_of_zeros_are_written_back_byte_for_byte(segments, sizes) -> None:  # type: ignore[no-untyped-def]
    content = b"".join(segments)
    info = tarfile.TarInfo("f")
    info.size = len(content)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(content))
    reader = TarReader(Trickle(out.getvalue(), sizes))  # type: ignore[arg-type]
    assert reader.next() is not None
    with tempfile.TemporaryFile() as fh:
        reader.copy_to(fh.fileno())
        assert os.fstat(fh.fileno()).st_size == len(content)
        fh.seek(0)
        assert fh.read() == content


def test_blocks_of_zeros_become_holes(tmp_path: Path) -> None:
    size = 64 << 20
    content = b"head" * 1024 + bytes(size - 8192) + b"tail" * 1024
    info = tarfile.TarInfo("disk.img")
    info.size = size
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(content))
    reader = TarReader(io.BytesIO(out.getvalue()))
    assert reader.next() is not None
    fd = os.open(tmp_path / "disk.img", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        reader.copy_to(fd)
    finally:
        os.close(fd)

    st_ = os.stat(tmp_path / "disk.img")
    assert st_.st_size == size
    assert st_.st_blocks * 512 <= 1 << 20  # 8 KiB of data, not 64 MiB
    assert (tmp_path / "disk.img").read_bytes() == content


def pax_member(records: dict[str, str], data: bytes = b"") -> bytes:
    """A pax header with *records* (written as they are), then member "f" holding *data*."""
    info = tarfile.TarInfo("f")
    info.size, info.pax_headers = len(data), records
    return info.tobuf(tarfile.PAX_FORMAT) + data + bytes(-len(data) % 512) + bytes(1024)


@pytest.mark.parametrize("key", ["size", "uid", "gid"])
@pytest.mark.parametrize("value", ["-1", "+5", " 5 ", "1_0", "\u0665", "5x", "", "1" * 21])
def test_pax_numbers_that_are_not_plain_decimal_digits_are_refused(key: str, value: str) -> None:
    reader = TarReader(io.BytesIO(pax_member({key: value}, b"z" * 5)))
    with pytest.raises(TarFormatError, match=f"invalid pax {key}"):
        reader.next()


def test_a_negative_pax_size_is_refused_before_any_data_is_read() -> None:
    stream = io.BytesIO(pax_member({"size": "-1"}) + bytes(8 << 20))
    reader = TarReader(stream)
    with pytest.raises(TarFormatError, match="invalid pax size '-1'"):
        reader.next()
    assert stream.tell() <= 4096  # the 8 MiB after the header were never read


def test_pax_numbers_are_read_as_recorded() -> None:
    reader = TarReader(io.BytesIO(pax_member({"size": "0005", "uid": "4000000000", "gid": "7"}, b"z" * 5)))
    member = reader.next()
    assert member is not None and (member.size, member.uid, member.gid) == (5, 4000000000, 7)
    assert reader.read_data() == b"z" * 5


def extended_header(size: int) -> bytes:
    """A pax header (no member after it) of about *size* bytes."""
    info = tarfile.TarInfo("f")
    info.pax_headers = {"comment": "v" * size}
    return info.tobuf(tarfile.PAX_FORMAT)[:-512]  # less the member's own header


def test_many_extended_headers_before_one_member_are_refused_once_they_add_up_to_16_mib() -> None:
    blob = extended_header(1 << 20) * 17 + pax_member({})  # each one small enough alone
    with pytest.raises(TarFormatError, match="extended headers of one member add up to .* too big"):
        read_ours(blob)
    assert len(read_ours(extended_header(1 << 20) * 15 + pax_member({}))) == 1


def test_global_headers_are_refused_once_they_add_up_to_16_mib_in_the_stream() -> None:
    glob = tarfile.TarInfo.create_pax_global_header({"comment": "g" * (9 << 20)})
    assert len(read_ours(glob + pax_member({})[:-1024])) == 1
    with pytest.raises(TarFormatError, match="global headers add up to .* too big"):
        read_ours(glob + pax_member({})[:-1024] + glob + pax_member({}))


@pytest.mark.parametrize(
    "records",
    [{"path": "a\0b"}, {"path": "a\0"}, {"linkpath": "x\0y"}],
)
def test_a_nul_byte_in_a_pax_name_or_link_target_is_refused(records: dict[str, str]) -> None:
    with pytest.raises(TarFormatError, match="NUL byte"):
        read_ours(pax_member(records))


@pytest.mark.parametrize(
    "mtime", ["inf", "-inf", "nan", "1e999999", "1e30", "-1e30", "9223372036854775808", "+5", " 5", "1_0", "0x10", ""]
)
def test_a_pax_mtime_that_is_malformed_not_finite_or_out_of_range_is_refused(mtime: str) -> None:
    with pytest.raises(TarFormatError, match="mtime"):
        read_ours(pax_member({"mtime": mtime}))


def test_a_ustar_mtime_out_of_range_is_refused() -> None:
    info = tarfile.TarInfo("f")
    info.mtime = 2**80  # base-256 in a GNU header
    with pytest.raises(TarFormatError, match="mtime out of range"):
        read_ours(info.tobuf(tarfile.GNU_FORMAT) + bytes(1024))


@pytest.mark.parametrize(
    ("text", "mtime"),
    [
        ("-1.5", -1.5),
        ("1e-05", 1e-05),
        ("1700000000.123456789", 1700000000.123456789),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_pax_mtimes_as_writers_write_them_are_read(text: str, mtime: float) -> None:
    member = TarReader(io.BytesIO(pax_member({"mtime": text}))).next()
    assert member is not None and member.mtime == mtime
