"""The stream protocols plugins read and write: what a source writes to, what a
transform wraps, what a restore reads from."""

from __future__ import annotations

from typing import Protocol


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
