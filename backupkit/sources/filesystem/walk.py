"""Walking the filesystem source's paths: which entries a backup stores, in which order.

Each configured path is walked depth first, names sorted, so a backup lists its
entries in a stable order. ``exclude`` patterns prune whole subtrees; ``include``
patterns select files (directories are always walked). A pattern matches an
entry's archive name or its base name (``fnmatch``, case-sensitive). Entries that
vanish while the tree is walked are skipped with a warning.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Iterable, Iterator

from backupkit.errors import SourceError

log = logging.getLogger("backupkit.sources.filesystem")

#: One walked entry: its path on disk, its name in the archive, and its ``lstat``.
Entry = tuple[str, str, os.stat_result]


def arcname_of(path: str) -> str:
    """The name a configured path is stored under: its base name ("root" for ``/``)."""
    name = os.path.basename(os.path.normpath(os.path.abspath(path)))
    return name or "root"


def matches(patterns: tuple[str, ...], arcname: str) -> bool:
    """Whether a pattern matches *arcname* or its base name."""
    base = arcname.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(arcname, p) or fnmatch.fnmatchcase(base, p) for p in patterns)


def walk(
    root: str, arcroot: str, *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> Iterator[Entry]:
    """(path, arcname, lstat) in a stable order, excludes pruned."""
    stack = [(root, arcroot)]
    while stack:
        path, arcname = stack.pop()
        if exclude and arcname != arcroot and matches(exclude, arcname):
            continue
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            log.warning("%s vanished before it could be read; skipped", path)
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if not is_dir and include and not matches(include, arcname):
            continue
        yield path, arcname, st
        if is_dir:
            try:
                names = sorted(os.listdir(path), reverse=True)
            except (FileNotFoundError, NotADirectoryError):  # removed or replaced meanwhile
                log.warning("%s vanished before it could be listed; its contents are skipped", path)
                continue
            except OSError as exc:
                raise SourceError(f"cannot list {path}: {exc.strerror}; check permissions") from None
            prefix, arcprefix = os.path.join(path, ""), arcname + "/"
            stack.extend([(prefix + n, arcprefix + n) for n in names])


def entries(
    paths: Iterable[str], *, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> Iterator[Entry]:
    """Every entry under *paths*, each path walked under its :func:`arcname_of`.

    A path that is a symlink is walked where it leads.
    """
    for root in paths:
        walked = root
        if os.path.islink(root):  # a source path that is a symlink: what it leads to
            walked = os.path.realpath(root)
            log.info("source path %s is a symlink; backing up %s under its name", root, walked)
        yield from walk(walked, arcname_of(root), include=include, exclude=exclude)
