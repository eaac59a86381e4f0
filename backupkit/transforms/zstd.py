"""The ``zstd`` transform: Zstandard frames that plain ``zstd -d`` reads."""

from __future__ import annotations

from typing import IO, ClassVar, cast

import attrs
import zstandard

from backupkit.params import check_range
from backupkit.plugins import Register, hookimpl
from backupkit.transforms.base import Encoder, Reader, Stage, Transform, Writer


@attrs.frozen
class ZstdTransform(Transform):
    """Zstandard compression; ``threads`` > 0 uses libzstd's worker threads."""

    id: ClassVar[str] = "zstd"
    extension: ClassVar[str] = ".zst"
    stage: ClassVar[Stage] = "compress"

    level: int = attrs.field(default=3, validator=check_range(-7, 22))
    threads: int = attrs.field(default=0, validator=check_range(0, 256))

    def encoder(self, out: Writer) -> Encoder:
        compressor = zstandard.ZstdCompressor(
            level=self.level, threads=self.threads, write_checksum=True
        )
        writer: Encoder = compressor.stream_writer(
            cast(IO[bytes], out), closefd=False, write_return_read=True
        )
        return writer

    def decoder(self, inp: Reader) -> Reader:
        reader: Reader = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], inp), read_across_frames=True, closefd=False
        )
        return reader


@hookimpl
def backupkit_register_transforms(register: Register) -> None:
    register.transform(ZstdTransform)
