"""A drill's check of a restored tree: every path of the backup's file index is there,
of its type, and every regular file has the size and the sha256 the index recorded."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from backupkit.errors import RestoreError
from backupkit.plugin import Reader
from backupkit.sources.filesystem.index import IndexEntry, file_sha256

_KIND = {"f": stat.S_ISREG, "d": stat.S_ISDIR, "l": stat.S_ISLNK}
#: How many differing paths an error names.
NAMED = 3


def _entries(stream: Reader) -> Iterator[IndexEntry]:
    rest = b""
    while block := stream.read(1 << 20):
        *lines, rest = (rest + block).split(b"\n")
        for line in lines:
            if line.strip():
                yield IndexEntry.from_json(line)
    if rest.strip():
        yield IndexEntry.from_json(rest)


def _differs(root: Path, entry: IndexEntry, hashes: Mapping[str, bytes] | None) -> str | None:
    path = root.joinpath(*entry.path.split("/"))
    try:
        st = path.lstat()
    except OSError:
        return "missing"
    is_kind = _KIND.get(entry.type)
    if is_kind is not None and not is_kind(st.st_mode):
        return "of another type"
    if entry.type != "f":
        return None
    if st.st_size != entry.size:
        return f"{st.st_size} bytes, the backup {entry.size}"
    if entry.sha256 is None:
        return None
    written = hashes.get(posixpath.normpath(entry.path)) if hashes is not None else None
    digest = written.hex() if written is not None else file_sha256(os.fspath(path))
    if digest != entry.sha256:
        return "other content (sha256)"
    return None


def check_tree(root: Path, index: Reader, artifact: str,
               hashes: Mapping[str, bytes] | None = None) -> dict[str, Any]:
    """Compare the tree restored at *root* with the file *index* of artifact *artifact*;
    :class:`RestoreError` names the first paths that differ.

    *hashes* are the sha256 of the bytes the restore wrote into each file, by path (see
    :func:`~backupkit.sources.filesystem.restore.restore_tree`); a file without one is
    read and hashed here. Its type and size are looked up either way."""
    files = paths = size = 0
    wrong: list[str] = []
    for entry in _entries(index):
        paths += 1
        why = _differs(root, entry, hashes)
        if why is not None:
            wrong.append(f"{entry.path} ({why})")
        elif entry.type == "f":
            files, size = files + 1, size + entry.size
    if wrong:
        more = f" and {len(wrong) - NAMED} more" if len(wrong) > NAMED else ""
        raise RestoreError(f"artifact {artifact}: {len(wrong)} of {paths} paths differ from the backup's index: "
                           + ", ".join(wrong[:NAMED]) + more)
    return {"paths_checked": paths, "files_checked": files, "bytes_checked": size, "checksums_match": True}
