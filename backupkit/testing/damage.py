"""Damage stored bytes on purpose: what integrity tests do to a backup before checking it."""

from __future__ import annotations

import os


def flip(blob: bytes, offset: int, mask: int = 0xFF) -> bytes:
    """*blob* with the byte at *offset* (negative counts from the end) XORed with *mask*."""
    data = bytearray(blob)
    data[offset] ^= mask
    return bytes(data)


def flip_in_file(path: str | os.PathLike[str], offset: int | None = None, mask: int = 0xFF) -> None:
    """Flip one byte of the file at *path* in place: at *offset*, by default its middle one."""
    with open(path, "rb") as f:
        blob = f.read()
    with open(path, "wb") as f:
        f.write(flip(blob, len(blob) // 2 if offset is None else offset, mask))
