"""The parallel mode: ``pg_dump -Fd -j N`` into a temporary directory, then that
directory streamed as one tar artifact that ``pg_restore -Ft`` reads from a pipe.

``pg_restore`` reads a tar archive from standard input only in the order it restores
the data, so the members are written in that order: ``toc.dat`` first, then each
table's data file in the order of ``pg_restore -l`` (the archive's own table of
contents), the large objects where their ``BLOBS`` entry is. The temporary copy is
the price of parallel dumping (the custom format is written by one process); it is
removed when the backup ends, also on failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from backupkit.errors import SourceError
from backupkit.plugin import Writer
from backupkit.sources.postgres.connection import Conn
from backupkit.sources.postgres.programs import run_program

_ENTRY = re.compile(r"^(\d+); \d+ \d+ (TABLE DATA|BLOBS|SEQUENCE SET|MATERIALIZED VIEW DATA) ")


def member_order(listing: str, names: Sequence[str]) -> list[str]:
    """The files of a directory archive (*names*) in the order ``pg_restore`` reads
    their data, given its ``pg_restore -l`` *listing*; files the listing does not
    place (none, normally) come last, sorted."""
    present = set(names)
    order = ["toc.dat"] if "toc.dat" in present else []
    blobs = sorted((n for n in names if n.startswith("blob_")),
                   key=lambda n: int(re.sub(r"\D", "", n) or 0))
    for line in listing.splitlines():
        match = _ENTRY.match(line)
        if not match:
            continue
        if match.group(2) == "BLOBS":
            order += blobs + (["blobs.toc"] if "blobs.toc" in present else [])
        elif (name := f"{match.group(1)}.dat") in present:
            order.append(name)
    placed = set(order)
    return order + sorted(n for n in names if n not in placed)


class _Out:
    """A file-like front for a :class:`Writer` (tarfile wants ``write`` and nothing else)."""

    def __init__(self, out: Writer) -> None:
        self.out = out

    def write(self, data: bytes) -> int:
        return self.out.write(data)


def dump_directory(
    pg_dump: str, pg_restore: str, args: Sequence[str], conn: Conn, out: Writer, *,
    jobs: int, temp_dir: str | None, what: str, during: Callable[[], None] | None = None,
) -> None:
    """Dump with ``-Fd -j jobs`` under *temp_dir* and write it to *out* as a tar stream."""
    try:
        tmp = tempfile.mkdtemp(prefix="backupkit-pgdir-", dir=temp_dir)
    except OSError as exc:
        raise SourceError(f"cannot make a temporary directory in {temp_dir or tempfile.gettempdir()} "
                          f"for the parallel dump: {exc.strerror}; set 'temp_dir'") from None
    try:
        target = Path(tmp) / "dump"
        run_program([pg_dump, *args, "--format=directory", f"--jobs={jobs}", f"--file={target}"],
                    conn, what=what, during=during)
        listing = subprocess.run([pg_restore, "--list", str(target)], capture_output=True, text=True,
                                 check=False, env=conn.child_env(), cwd="/")
        if listing.returncode != 0:
            raise SourceError(f"{what}: pg_restore --list cannot read the dump: {listing.stderr.strip()}")
        names = sorted(os.listdir(target))
        with tarfile.open(fileobj=_Out(out), mode="w|", format=tarfile.USTAR_FORMAT) as tar:  # type: ignore[call-overload]
            for name in member_order(listing.stdout, names):
                info = tar.gettarinfo(str(target / name), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                with open(target / name, "rb") as fh:
                    tar.addfile(info, fh)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
