"""The ``gzip`` transform: a gzip member that plain ``gzip -d`` reads."""

from __future__ import annotations

import gzip
import zlib
from typing import Any, ClassVar, cast

import attrs

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
class GzipTransform(Transform):
    """gzip (DEFLATE) compression, for compatibility; zstd is faster at every ratio."""

    id: ClassVar[str] = "gzip"
    extension: ClassVar[str] = ".gz"
    stage: ClassVar[Stage] = "compress"

    level: int = attrs.field(default=6, validator=check_range(1, 9))

    def encoder(self, out: Writer) -> Encoder:
        # mtime=0 keeps output reproducible; GzipFile never closes a fileobj it was given.
        return gzip.GzipFile(
            fileobj=cast(Any, out), mode="wb", compresslevel=self.level, mtime=0
        )

    def decoder(self, inp: Reader) -> Reader:
        reader = gzip.GzipFile(fileobj=cast(Any, inp), mode="rb")
        # BadGzipFile is an OSError; a cut-short member is an EOFError.
        return DamageChecked(reader, (OSError, EOFError, zlib.error), "gzip stream")


@hookimpl
def backupkit_register_transforms(register: Register) -> None:
    register.transform(GzipTransform)
