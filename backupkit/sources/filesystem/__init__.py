"""The ``filesystem`` source: files and directories as a POSIX (pax) tar stream.

Each configured path is stored under its base name (``/srv/app/media`` becomes
``media/...`` in the archive), so ``tar -x`` of a decompressed artifact recreates
the same tree. Modes, mtimes, symlinks and hard links are kept; ownership is not
restored (restores run as whoever runs them).

The stream is written by :mod:`~backupkit.sources.filesystem.tarwrite` and read back by
:mod:`~backupkit.sources.filesystem.tarread`, both faster than ``tarfile`` for many small
files; the bytes are those of ``tarfile``'s pax format, so GNU tar and ``tarfile`` read
them. Each backup also stores a file index (:mod:`~backupkit.sources.filesystem.index`),
which the next incremental backup compares the tree with.

Restore (:mod:`~backupkit.sources.filesystem.restore`) is safe against hostile archives:
absolute names, ``..`` components, links pointing outside the target and paths
through a symlink the archive made are refused (what tarfile's ``data`` filter
refuses, checked without touching the disk); set-id bits are dropped, device nodes
skipped, FIFOs kept. Files are extracted into a fresh staging directory inside the
target and moved into place only after the whole stream has been read and its
checksums matched, so a corrupt backup writes nothing.

This package is the plugin module ``backupkit.sources.filesystem``: it holds the
``backupkit_register_sources`` hook implementation. Like any plugin it imports only
the plugin seam (:mod:`backupkit.plugin`), :mod:`backupkit.errors`,
:mod:`backupkit.params` and its own modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backupkit.plugin import Register, hookimpl, lazy_exports

if TYPE_CHECKING:
    from backupkit.sources.filesystem.source import FilesystemSource

__all__ = ["FilesystemSource", "backupkit_register_sources"]


@hookimpl
def backupkit_register_sources(register: Register) -> None:
    """The ``filesystem`` source, by reference: its modules load when a set uses it."""
    register.source("backupkit.sources.filesystem:FilesystemSource", id="filesystem")


__getattr__ = lazy_exports(__name__, {"FilesystemSource": "backupkit.sources.filesystem.source"})
