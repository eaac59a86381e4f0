"""The stream protocols plugins read and write: what a source writes to, what a
transform wraps, what a restore reads from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from backupkit.errors import IntegrityError


class Writer(Protocol):
    """Something bytes are written to (a source's output, a transform's output)."""

    def write(self, data: bytes, /) -> int: ...


class Reader(Protocol):
    """Something bytes are read from, ``b""`` at the end (a restore's input)."""

    def read(self, size: int = -1, /) -> bytes: ...


class Encoder(Protocol):
    """What :meth:`Transform.encoder` returns: ``write`` many times, ``close`` once.

    ``close`` flushes everything into the wrapped writer but must not close it.
    """

    def write(self, data: bytes, /) -> int: ...

    def close(self) -> None: ...


def held_back(stream: Reader, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The chunks of *stream*, each given only once the next was read, so that the last
    one comes after the stream's end was checked (the engine raises
    :class:`IntegrityError` at the end of a damaged stream). A program or server fed
    with them never receives a complete copy of a stream that turns out damaged: what
    restores into a service (a database, a running server) commits nothing then."""
    held = b""
    while data := stream.read(chunk):
        if held:
            yield held
        held = data
    if held:
        yield held


class DamageChecked:
    """A reader that re-raises a decoder library's errors as :class:`IntegrityError`.

    Transforms wrap their decoder in it, so damaged or cut-short input ends a restore
    with one line naming the stream (``zstd stream is corrupt and cannot be decoded (...)``) and never with a
    library's exception::

        return DamageChecked(gzip.GzipFile(fileobj=inp), (OSError, EOFError), "gzip stream")
    """

    __slots__ = ("_errors", "_reader", "_what")

    def __init__(self, reader: Reader, errors: tuple[type[BaseException], ...], what: str) -> None:
        self._reader, self._errors, self._what = reader, errors, what

    def read(self, size: int = -1, /) -> bytes:
        """Up to *size* decoded bytes (all that are left for ``-1``); ``b""`` at the end."""
        try:
            return self._reader.read(size)
        except self._errors as exc:
            raise IntegrityError(
                f"{self._what} is corrupt and cannot be decoded ({type(exc).__name__}: {exc})"
            ) from exc
