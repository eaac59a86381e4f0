"""The base class every source plugin derives from, and what it is told."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar

import attrs

from backupkit.errors import RestoreError
from backupkit.params import build, public_params
from backupkit.plugin.streams import Reader, Writer

if TYPE_CHECKING:
    from backupkit.plugin.scratch import Scratch


def _no_parent(name: str) -> BinaryIO | None:
    return None


def _no_sidecar(name: str) -> BinaryIO:
    raise NotImplementedError("this engine does not store sidecars")


@attrs.frozen
class BackupContext:
    """What a source is told when it is asked to produce its stream.

    ``kind`` is ``full`` or ``incremental``. For an incremental run,
    ``parent_sidecar(name)`` opens a sidecar the same source stored with the parent
    backup (checked and decoded), or returns ``None`` if there is none; the source
    then writes only what changed. ``open_sidecar(name)`` returns a write-only file
    (``write``, ``flush``, ``close``, ``with``; no ``seek``) for an extra stream (an index) that the engine
    stores, transformed like the main stream, as artifact ``<artifact>.<name>``: it is
    compressed and stored while the source writes it, and complete once
    :meth:`Source.backup` returns. Each name can be opened once per backup.
    """

    artifact: str
    kind: str = "full"
    progress: Callable[[str], None] = attrs.field(default=lambda current: None, repr=False)
    parent_sidecar: Callable[[str], BinaryIO | None] = attrs.field(default=_no_parent, repr=False)
    open_sidecar: Callable[[str], BinaryIO] = attrs.field(default=_no_sidecar, repr=False)


@attrs.frozen
class RestoreContext:
    """Where and how a source should restore its stream.

    ``target`` is a :class:`~pathlib.Path`, or a string when the user gave a URL
    (``postgresql://...``). ``facts`` are what :meth:`Source.backup` returned for this
    artifact (from the manifest), for checks after the restore. ``options`` are the
    restore's flags (``clean``, ``create``, ``no_owner``...) for sources that read them.
    """

    artifact: str
    target: Path | str | None
    overwrite: bool = False
    #: Whether symlinks whose targets lead out of the target (absolute, or up past its
    #: top) may be created as they are. Nothing is ever written through them.
    allow_external_symlinks: bool = False
    options: Mapping[str, Any] = attrs.field(factory=dict)
    facts: Mapping[str, Any] = attrs.field(factory=dict)
    #: The decoded, checked stream of one of the backup's sidecars of this artifact (its
    #: file index), by sidecar name; given to drill checks (a KeyError-like
    #: ``RestoreError`` where there is none).
    open_sidecar: Callable[[str], BinaryIO] = attrs.field(default=_no_sidecar, repr=False)


class Source(abc.ABC):
    """A thing that can be read as one byte stream and written back from it.

    Subclasses are attrs classes whose fields are their parameters, with a stable
    ``id`` and the file ``extension`` of their raw stream (``.tar``, ``.dump``).
    They implement :meth:`backup` and :meth:`restore`; the engine does buffering,
    hashing, transforms and storage.
    """

    id: ClassVar[str]
    extension: ClassVar[str] = ".bin"
    #: True if the source can write incremental streams and restore chains of them.
    supports_incremental: ClassVar[bool] = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Source:
        """Build the source from its configured parameters (checked, one-line errors)."""
        return build(cls, params, what=f"source {cls.id!r}")

    def describe(self) -> dict[str, Any]:
        """Parameters recorded in the manifest; secret fields are left out."""
        return public_params(self)

    def stream_extension(self) -> str:
        """The file extension of this source's stream; sources whose format depends on
        their parameters override it (the default is the class's ``extension``)."""
        return self.extension

    def expand(self, name: str) -> list[tuple[str, Source]]:
        """The artifacts this source stores in one backup, each with the source that
        writes and later restores it; by default one, *name*, written by this source.

        A source covering several things (a server's databases) returns one source per
        thing, each recorded in the manifest on its own (``<name>.<thing>``). Called once
        per backup, before anything is stored: errors here leave nothing behind.
        """
        return [(name, self)]

    def check(self, stream: Reader, ctx: RestoreContext) -> str | None:
        """Read the raw stream to its end and check that it is well-formed, without
        restoring it (``backupkit verify``); return a note for the report, or ``None``.

        The default only reads it: the engine checks sizes and checksums at the end.
        Raise :class:`backupkit.errors.IntegrityError` or ``RestoreError`` for a stream
        that is damaged in a way only the source can tell.
        """
        while stream.read(1 << 20):
            pass
        return None

    @abc.abstractmethod
    def backup(self, out: Writer, ctx: BackupContext) -> Mapping[str, Any] | None:
        """Write the raw stream to *out*; return extra facts for the manifest, if any."""

    @abc.abstractmethod
    def restore(self, stream: Reader, ctx: RestoreContext) -> Mapping[str, Any] | None:
        """Read the raw stream from *stream* and restore it as *ctx* says; return what
        was checked after the restore (for the result), if anything.

        The engine checks sizes and checksums when *stream* reaches its end and raises
        :class:`backupkit.errors.IntegrityError` there, so read it to the end (EOF)
        before making anything visible.
        """

    def drill_target(self, scratch: Scratch, ctx: RestoreContext) -> Path | str | None:
        """Where a restore drill restores this artifact: a throwaway target made in (or
        registered with) *scratch*, which removes it when the drill ends. The default is
        an empty directory; a database source makes a scratch database, a server source a
        temporary server. ``None``: the artifact cannot be restored into anything
        throwaway here, and the drill checks its stream only (as ``verify`` does).

        ``ctx.facts`` are the artifact's facts from the manifest.
        """
        return scratch.directory(ctx.artifact)

    def drill_check(self, target: Path | str, scratch: Scratch, ctx: RestoreContext) -> Mapping[str, Any] | None:
        """Checks after a drill restored the artifact into *target*, beyond those of
        :meth:`restore` (which already compares what it can with ``ctx.facts``); return
        what was found for the drill record, or raise ``RestoreError`` naming what is
        wrong. The default checks nothing more."""
        return None

    def restore_chain(self, streams: Iterator[Reader], ctx: RestoreContext) -> Mapping[str, Any] | None:
        """Restore a full stream followed by incremental streams, oldest first.

        Called instead of :meth:`restore` when the backup is an incremental one.
        Sources with ``supports_incremental`` override it; the streams are opened one
        after another as the iterator advances, and each is valid only until the next
        one is taken: its end is checked then, and reading it afterwards is an error
        (so ``full, *rest = streams`` does not work; read each in turn). Every stream
        of the chain must be taken: the engine refuses a restore that skipped one.
        """
        raise RestoreError(f"source {self.id!r} cannot restore incremental backups")
