"""Generate a file tree with every kind of entry a backup must keep, and compare trees.

``make_tree(root)`` builds nested and empty directories, empty files, binary data,
unicode names, relative symlinks (to a file, to a directory, and a dangling one),
a hard-link pair, unusual modes and fixed mtimes in the past; ``big_mib`` adds one
large incompressible-looking file made cheaply from a repeated random block.

``assert_same_tree(expected, actual)`` compares type, bytes, permission bits and
mtimes of every file and directory, symlink targets, and which paths share an inode.
"""

from __future__ import annotations

import filecmp
import os
import random
import stat
from pathlib import Path
from typing import NamedTuple

MIB = 1 << 20

#: Every mtime in a generated tree is this plus a multiple of 1000 s (2017, well in the past).
BASE_MTIME = 1_500_000_000

#: Relative paths of the unusual entries, for tests that look at one of them.
UNICODE_NAMES = ("データ.txt", "ñ é", "ディレクトリ/ファイル.bin")
SYMLINKS = {
    "links/to-file": "../nested/a/b/c/deep.txt",
    "links/to-dir": "../nested/a",
    "links/dangling": "../does/not/exist",
}
HARD_LINKS = ("hard/one", "hard/two")
MODES = {
    "modes/private": 0o600,
    "modes/script.sh": 0o755,
    "modes/group-read": 0o640,
    "modes/private-dir": 0o700,
}


def make_tree(root: Path, *, seed: int = 1234, big_mib: int = 0) -> Path:
    """Create the tree under *root* (which must not exist yet) and return *root*."""
    rng = random.Random(seed)
    root.mkdir(parents=True)

    def write(rel: str, data: bytes, mode: int = 0o644) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)

    write("README.txt", b"a generated tree for backupkit tests\n")
    write("empty.txt", b"")
    write("nested/a/b/c/deep.txt", b"deep\n" * 100)
    write("nested/a/b/empty-too", b"")
    (root / "empty-dir").mkdir()
    (root / "nested/a/b/c/empty-leaf").mkdir()
    write("binary.bin", bytes(range(256)) * 16 + rng.randbytes(64 * 1024))
    write("text/source.py", "".join(f"line_{i} = {i!r}\n" for i in range(2000)).encode())
    for rel in UNICODE_NAMES:
        write(rel, f"unicode name {rel}\n".encode() + rng.randbytes(100))
    for rel, target in SYMLINKS.items():
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    write(HARD_LINKS[0], b"one inode, two names\n")
    os.link(root / HARD_LINKS[0], root / HARD_LINKS[1])
    for rel, mode in MODES.items():
        if rel.endswith("-dir"):
            (root / rel).mkdir(parents=True)
            write(f"{rel}/inside.txt", b"only the owner can list this directory\n", 0o600)
        else:
            write(rel, f"mode {mode:o}\n".encode(), mode)
    if big_mib:
        write_big_file(root / "big/blob.bin", big_mib, rng)
    for rel, mode in MODES.items():  # write() above may have relaxed a directory's mode
        (root / rel).chmod(mode)
    _set_mtimes(root)
    return root


def write_big_file(path: Path, mib: int, rng: random.Random) -> None:
    """*mib* MiB: one random MiB repeated, each copy stamped with its index (not all alike)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = bytearray(rng.randbytes(MIB))
    with open(path, "wb") as fh:
        for i in range(mib):
            stamp = i.to_bytes(8, "little")
            block[0:8] = stamp
            block[MIB // 2 : MIB // 2 + 8] = stamp
            fh.write(block)


def _set_mtimes(root: Path) -> None:
    """Fixed, distinct mtimes in the past; deepest first so parents keep theirs."""
    entries = sorted([root, *root.rglob("*")], key=lambda p: (-len(p.parts), str(p)))
    for i, path in enumerate(entries):
        when = BASE_MTIME + 1000 * i
        os.utime(path, (when, when), follow_symlinks=False)


class Entry(NamedTuple):
    kind: str  # "file", "dir" or "symlink"
    mode: int | None  # permission bits; None for symlinks
    mtime_ns: int  # a symlink's own mtime too (restore sets it, as GNU tar does)
    size: int | None
    target: str | None  # symlink target


def snapshot(root: Path) -> dict[str, Entry]:
    """Every entry below *root* (and *root* itself as ``"."``) by relative path."""
    out: dict[str, Entry] = {}
    for path in [root, *root.rglob("*")]:
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[rel] = Entry("symlink", None, st.st_mtime_ns, None, os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = Entry("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, None, None)
        elif stat.S_ISREG(st.st_mode):
            out[rel] = Entry("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_size, None)
        else:
            raise AssertionError(f"unexpected file type at {path}")
    return out


def hard_link_groups(root: Path) -> set[frozenset[str]]:
    """Sets of relative paths that share an inode (only groups of two or more)."""
    by_inode: dict[int, set[str]] = {}
    for path in root.rglob("*"):
        st = path.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            by_inode.setdefault(st.st_ino, set()).add(path.relative_to(root).as_posix())
    return {frozenset(paths) for paths in by_inode.values() if len(paths) > 1}


def assert_same_tree(expected: Path, actual: Path) -> None:
    """Fail unless *actual* has exactly *expected*'s entries, bytes, modes, mtimes, links."""
    want, got = snapshot(expected), snapshot(actual)
    assert sorted(got) == sorted(want), "the restored tree has different entries"
    for rel, entry in want.items():
        assert got[rel] == entry, f"{rel}: expected {entry}, got {got[rel]}"
        if entry.kind == "file":
            assert filecmp.cmp(expected / rel, actual / rel, shallow=False), f"{rel}: bytes differ"
    assert hard_link_groups(actual) == hard_link_groups(expected), "hard links were not kept"
