"""A fast writer of the pax tar stream the filesystem source stores.

``tarfile`` builds every header through dictionaries, per-field encoders and a
copied ``TarInfo`` (~50 µs a file, two headers each since the pax record keeps
the nanosecond mtime), and writes each header, file and padding separately through
the stored-stream hash and the pipe. Here the common header — ASCII names that fit,
ordinary numbers, at most an ``mtime`` pax record — is packed in one go, byte for
byte what ``TarInfo.tobuf(PAX_FORMAT)`` gives (a test compares them), and anything
else is left to ``tobuf``. The pax header block of the ``mtime`` record is the same
for nearly every file and is made once. A small file goes to *out* with its header
and padding in one write; a bigger one as it is read. The engine's pipe gathers
small writes (a second buffer here only copied them twice).
"""

from __future__ import annotations

import functools
import os
import tarfile
import zlib

from backupkit.plugin import Reader, Writer

BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
_MAGIC = tarfile.POSIX_MAGIC  # b"ustar\x0000"
_PAX_NAME = b"././@PaxHeader"
_TAIL = bytes(BLOCK - 500)  # the ustar block ends with 12 unused bytes
SMALL = 64 << 10  # a file up to this size is written with its header in one piece


def _field(text: bytes, width: int) -> bytes:
    return text + bytes(width - len(text))


def _ustar(
    name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, kind: bytes,
    linkname: bytes, uname: bytes, gname: bytes,
) -> bytes:
    block = b"".join((
        _field(name, 100),
        b"%07o\0%07o\0%07o\0%011o\0%011o\0        " % (mode, uid, gid, size, mtime),
        kind,
        _field(linkname, 100),
        _MAGIC,
        _field(uname, 32),
        _field(gname, 32),
        bytes(8 + 8 + 155),  # device numbers, prefix
        _TAIL,
    ))
    # The checksum counts its own field as eight spaces: the sum of this block as is.
    return b"%s%06o\0%s" % (block[:148], _byte_sum(block), block[155:])


def _byte_sum(block: bytes) -> int:
    """``sum(block)`` of a 512-byte block, in C: adler32's low half is 1 + the byte sum
    mod 65521, and the sum of 256 bytes is at most 65280, so each half sums exactly."""
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def _pax_record(keyword: bytes, value: bytes) -> bytes:
    """``"<length> keyword=value\\n"``, the length counting its own digits."""
    rest = len(keyword) + len(value) + 3
    length = rest + len(str(rest))
    if len(str(length)) != len(str(rest)):
        length = rest + len(str(length))
    return b"%d %s=%s\n" % (length, keyword, value)


def header(info: tarfile.TarInfo) -> bytes:
    """The pax-format header blocks of *info*: ``info.tobuf(tarfile.PAX_FORMAT)``."""
    kind = info.type
    name = info.name + "/" if kind == tarfile.DIRTYPE and not info.name.endswith("/") else info.name
    pax = info.pax_headers
    mtime = info.mtime
    if (
        kind not in (tarfile.CHRTYPE, tarfile.BLKTYPE)
        and (not pax or pax.keys() == {"mtime"})
        and type(mtime) is int
        and 0 <= mtime < 8**11
        and 0 <= info.size < 8**11
        and 0 <= info.uid < 8**7
        and 0 <= info.gid < 8**7
        and len(name) <= 100
        and len(info.linkname) <= 100
        and len(info.uname) <= 32
        and len(info.gname) <= 32
    ):
        try:
            fields = (
                name.encode("ascii"),
                info.linkname.encode("ascii"),
                info.uname.encode("ascii"),
                info.gname.encode("ascii"),
                pax["mtime"].encode("ascii") if pax else b"",
            )
        except UnicodeEncodeError:
            pass
        else:
            block = _ustar(
                fields[0], info.mode & 0o7777, info.uid, info.gid, info.size, mtime, kind,
                fields[1], fields[2], fields[3],
            )
            return _with_mtime_record(block, fields[4]) if pax else block
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def file_header(name: str, st: os.stat_result, uname: str, gname: str) -> bytes | None:
    """The header :func:`header` gives for the regular file *name* whose ``lstat`` is *st*.

    It is built straight from the numbers (the mtime to the nanosecond); None when it
    needs tarfile.
    """
    seconds, ns = divmod(st.st_mtime_ns, 1_000_000_000)
    if not (
        0 <= seconds < 8**11 and st.st_size < 8**11 and 0 <= st.st_uid < 8**7
        and 0 <= st.st_gid < 8**7 and len(name) <= 100 and len(uname) <= 32
        and len(gname) <= 32 and name.isascii() and uname.isascii() and gname.isascii()
        and not name.startswith("/")
    ):
        return None
    block = _ustar(
        name.encode(), st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_size, seconds,
        tarfile.REGTYPE, b"", uname.encode(), gname.encode(),
    )
    return _with_mtime_record(block, b"%d.%09d" % (seconds, ns)) if ns else block


def _with_mtime_record(block: bytes, mtime: bytes) -> bytes:
    """*block* after a pax extended header holding only the ``mtime`` record *mtime*."""
    records = _pax_record(b"mtime", mtime)
    return b"".join((_pax_head(len(records)), records, bytes(-len(records) % BLOCK), block))


@functools.lru_cache(maxsize=64)
def _pax_head(size: int) -> bytes:
    """The header block of a pax extended header of *size* bytes: one per size, and nearly
    every file's mtime record has the same size."""
    return _ustar(_PAX_NAME, 0, 0, 0, size, 0, tarfile.XHDTYPE, b"", b"", b"")


class TarWriter:
    """Members written to *out* as one tar stream.

    File contents are read *bufsize* bytes at a time.
    """

    def __init__(self, out: Writer, bufsize: int = 1 << 20) -> None:
        self._out = out
        self._bufsize = bufsize
        self._small = min(SMALL, bufsize)
        self.offset = 0

    def _write(self, data: bytes) -> None:
        self.offset += len(data)
        self._out.write(data)

    def add(self, info: tarfile.TarInfo, content: Reader | None = None) -> None:
        """One member; a regular file's *content* gives exactly ``info.size`` bytes."""
        self.add_encoded(header(info), info.size if content is not None else 0, content)

    def add_encoded(self, head: bytes, size: int, content: Reader | None) -> None:
        """One member whose header blocks are *head*; *content* gives exactly *size* bytes."""
        if content is None:
            self._write(head)
            return
        if size <= self._small:  # one write, not three: most files are small
            data = content.read(size)
            while len(data) < size and (more := content.read(size - len(data))):
                data += more  # a short read, not yet the end
            if len(data) != size:
                raise OSError(f"a member's content ended {size - len(data)} bytes early")
            self._write(b"".join((head, data, bytes(-size % BLOCK))))
            return
        self._write(head)
        left = size
        while left:
            data = content.read(min(left, self._bufsize))
            if not data:
                raise OSError(f"a member's content ended {left} bytes early")
            self._write(data)
            left -= len(data)
        if size % BLOCK:
            self._write(bytes(BLOCK - size % BLOCK))

    def close(self) -> None:
        """The end-of-archive blocks, padding to a whole record as tar does."""
        self._write(bytes(2 * BLOCK))
        if self.offset % RECORD:
            self._write(bytes(RECORD - self.offset % RECORD))
