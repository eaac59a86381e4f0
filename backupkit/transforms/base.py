"""The base class every transform plugin (compression, encryption) derives from."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Protocol

from backupkit.params import build, public_params


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


class Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Encoder(Protocol):
    """What :meth:`Transform.encoder` returns: ``write`` many times, ``close`` once.

    ``close`` flushes everything into the wrapped writer but must not close it.
    """

    def write(self, data: bytes, /) -> int: ...

    def close(self) -> None: ...


Stage = Literal["compress", "encrypt"]

# The order rule: every compression stage comes before every encryption stage.
# Encrypted bytes do not compress, and compressing after encrypting leaks
# information through sizes. Enforced by ``check_chain`` below.
STAGE_ORDER: dict[str, int] = {"compress": 0, "encrypt": 1}


class Transform(abc.ABC):
    """A reversible stream transformation applied between source and sink.

    Subclasses are attrs classes whose fields are their parameters, with a stable
    ``id``, a file ``extension`` (``.zst``) and a ``stage`` that places them in the
    chain (compression before encryption).
    """

    id: ClassVar[str]
    extension: ClassVar[str] = ""
    stage: ClassVar[Stage] = "compress"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Transform:
        return build(cls, params, what=f"transform {cls.id!r}")

    def describe(self) -> dict[str, Any]:
        return public_params(self)

    @abc.abstractmethod
    def encoder(self, out: Writer) -> Encoder:
        """A writer that transforms what is written to it into *out*."""

    @abc.abstractmethod
    def decoder(self, inp: Reader) -> Reader:
        """A reader that yields the original bytes from transformed *inp*."""


def check_chain(chain: list[Transform] | tuple[Transform, ...], *, where: str) -> None:
    """Refuse chains that break the order rule (compress, then encrypt)."""
    from backupkit.errors import ConfigError

    for before, after in zip(chain, chain[1:]):
        if STAGE_ORDER[before.stage] > STAGE_ORDER[after.stage]:
            raise ConfigError(
                f"{where}: transform {after.id!r} ({after.stage}) comes after "
                f"{before.id!r} ({before.stage}); put compression before encryption"
            )
