"""The base class every source plugin derives from."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Protocol

import attrs

from backupkit.params import build, public_params


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


@attrs.frozen
class BackupContext:
    """What a source is told when it is asked to produce its stream."""

    artifact: str
    kind: str = "full"
    progress: Callable[[str], None] = attrs.field(default=lambda current: None, repr=False)


@attrs.frozen
class RestoreContext:
    """Where and how a source should restore its stream."""

    artifact: str
    target: Path | None
    overwrite: bool = False
    options: Mapping[str, Any] = attrs.field(factory=dict)


class Source(abc.ABC):
    """A thing that can be read as one byte stream and written back from it.

    Subclasses are attrs classes whose fields are their parameters, with a stable
    ``id`` and the file ``extension`` of their raw stream (``.tar``, ``.dump``).
    They implement :meth:`backup` and :meth:`restore`; the engine does buffering,
    hashing, transforms and storage.
    """

    id: ClassVar[str]
    extension: ClassVar[str] = ".bin"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Source:
        return build(cls, params, what=f"source {cls.id!r}")

    def describe(self) -> dict[str, Any]:
        """Parameters recorded in the manifest; secret fields are left out."""
        return public_params(self)

    @abc.abstractmethod
    def backup(self, out: Writable, ctx: BackupContext) -> Mapping[str, Any] | None:
        """Write the raw stream to *out*; return extra facts for the manifest, if any."""

    @abc.abstractmethod
    def restore(self, stream: BinaryIO, ctx: RestoreContext) -> None:
        """Read the raw stream from *stream* and restore it as *ctx* says."""
