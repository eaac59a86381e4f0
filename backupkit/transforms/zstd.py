"""The ``zstd`` transform: Zstandard frames that plain ``zstd -d`` reads."""

from __future__ import annotations

from typing import IO, ClassVar, cast

import attrs
import zstandard

from backupkit.params import check_range
from backupkit.plugin import (
    DamageChecked,
    Encoder,
    Reader,
    Register,
    Stage,
    Transform,
    Writer,
    hookimpl,
)


@attrs.frozen
class ZstdTransform(Transform):
    """Zstandard compression in libzstd's worker threads (``threads``, default 1, as
    ``zstd -T1``); ``threads = 0`` compresses in the engine's thread.

    One worker is the default because it is cheaper, not only parallel: libzstd's
    single-threaded streaming mode compresses out of a ring buffer, whose wrapped half
    it must match as an external dictionary (~10 % more CPU at level 3), where a worker
    compresses whole jobs with the previous one as a prefix; meanwhile the engine's
    thread hashes and stores. It costs ~35 MB of buffers per stream.
    """

    id: ClassVar[str] = "zstd"
    extension: ClassVar[str] = ".zst"
    stage: ClassVar[Stage] = "compress"
    default: ClassVar[bool] = True

    level: int = attrs.field(default=3, validator=check_range(-7, 22))
    threads: int = attrs.field(default=1, validator=check_range(0, 256))

    def encoder(self, out: Writer) -> Encoder:
        compressor = zstandard.ZstdCompressor(
            level=self.level, threads=self.threads, write_checksum=True
        )
        # Hand the sink 1 MiB at a time rather than zstd's 128 KiB: each write goes
        # through the stored-bytes hash and the sink in Python, in the thread that
        # also feeds the compressor (~5% of a backup's CPU). Same bytes either way.
        writer: Encoder = compressor.stream_writer(
            cast(IO[bytes], out), closefd=False, write_return_read=True, write_size=1 << 20
        )
        return writer

    def decoder(self, inp: Reader) -> Reader:
        # A stream cut at a frame's end decodes to a prefix without an error (libzstd
        # reads across frames); the engine's size and checksum of the stored bytes
        # catch that before a restore makes anything visible.
        reader: Reader = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], inp), read_across_frames=True, closefd=False
        )
        return DamageChecked(reader, (zstandard.ZstdError,), "zstd stream")


@hookimpl
def backupkit_register_transforms(register: Register) -> None:
    register.transform(ZstdTransform)
