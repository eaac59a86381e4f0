"""The base class every transform plugin (compression, encryption) derives from."""

from __future__ import annotations

import abc
import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from backupkit.errors import ConfigError
from backupkit.params import build, public_params
from backupkit.plugin.streams import Encoder, Reader, Writer

if TYPE_CHECKING:
    from backupkit.crypto.keys import Keyring


Stage = Literal["compress", "encrypt"]

# The order rule: every compression stage comes before every encryption stage.
# Encrypted bytes do not compress, and compressing after encrypting leaks
# information through sizes. Enforced by ``check_chain`` below.
STAGE_ORDER: dict[str, int] = {"compress": 0, "encrypt": 1}


class Transform(abc.ABC):
    """A reversible stream transformation applied between source and sink.

    Subclasses are attrs classes whose fields are their parameters, with a stable
    ``id``, a file ``extension`` (``.zst``) and a ``stage`` that places them in the
    chain (compression before encryption). The engine and the configuration know
    transforms by their stage only: ``default = True`` makes one the stage's default.
    """

    id: ClassVar[str]
    extension: ClassVar[str] = ""
    stage: ClassVar[Stage] = "compress"
    #: Whether this is the transform a configuration gets when it asks for the stage
    #: without naming a plugin (``encrypt = true``, ``compress = true``).
    default: ClassVar[bool] = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Transform:
        """Build the transform from its recorded or configured parameters."""
        return build(cls, params, what=f"transform {cls.id!r}")

    def describe(self) -> dict[str, Any]:
        """Parameters recorded in the manifest; secret fields are left out."""
        return public_params(self)

    @abc.abstractmethod
    def encoder(self, out: Writer) -> Encoder:
        """A writer that transforms what is written to it into *out*."""

    @abc.abstractmethod
    def decoder(self, inp: Reader) -> Reader:
        """A reader that yields the original bytes from transformed *inp*."""


def check_chain(chain: list[Transform] | tuple[Transform, ...], *, where: str) -> None:
    """Refuse chains that break the order rule (compress, then encrypt)."""
    for before, after in itertools.pairwise(chain):
        if STAGE_ORDER[before.stage] > STAGE_ORDER[after.stage]:
            raise ConfigError(
                f"{where}: transform {after.id!r} ({after.stage}) comes after "
                f"{before.id!r} ({before.stage}); put compression before encryption"
            )


@runtime_checkable
class KeyedTransform(Protocol):
    """An optional seam: a transform that needs keys (encryption) implements these two
    methods, and the engine hands it the keyring before the transform is used.

    ``with_keyring`` returns a copy that uses *keyring*; ``check_keys`` raises
    :class:`backupkit.errors.KeyMissingError` (naming the key id) when the keyring lacks
    the key the transform needs, *where* naming the set or backup in the message.
    """

    def with_keyring(self, keyring: Keyring) -> Transform: ...

    def check_keys(self, where: str) -> None: ...
