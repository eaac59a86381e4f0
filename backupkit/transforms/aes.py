"""The ``aes`` transform: streaming authenticated encryption, AES-256-GCM in chunks.

The stream format lives in :mod:`backupkit.crypto.stream` (docs/encryption.md gives
the byte layout); this module is the plugin that applies it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from backupkit.crypto.keys import Key, Keyring
from backupkit.crypto.stream import (
    DEFAULT_CHUNK,
    AesDecoder,
    AesEncoder,
    check_chunk_size,
    check_key_id,
)
from backupkit.params import check_range, secret
from backupkit.plugin import Encoder, Reader, Register, Stage, Transform, Writer, hookimpl


def _check_keyring(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, Keyring):
        raise ValueError(
            "keyring must be a backupkit.Keyring (keys come from the environment)"
        )


@attrs.frozen
class AesTransform(Transform):
    """AES-256-GCM streaming encryption with a key or passphrase from a :class:`Keyring`.

    Parameters recorded in the manifest: ``key_id`` (which key; by default the
    keyring's writing key), ``chunk_size`` and ``scrypt_log_n`` (the scrypt cost
    when the key is a passphrase). The keyring is secret: it never reaches a
    manifest, a log or a repr.
    """

    id: ClassVar[str] = "aes"
    extension: ClassVar[str] = ".bkenc"
    stage: ClassVar[Stage] = "encrypt"
    default: ClassVar[bool] = True

    key_id: str | None = attrs.field(default=None, validator=check_key_id)
    chunk_size: int = attrs.field(default=DEFAULT_CHUNK, validator=check_chunk_size)
    scrypt_log_n: int = attrs.field(default=17, validator=check_range(10, 20))
    keyring: Keyring | None = secret(  # noqa: RUF009
        default=None, validator=_check_keyring, eq=False
    )

    def with_keyring(self, keyring: Keyring) -> AesTransform:
        """A copy using *keyring*; without a ``key_id`` it takes the writing key's."""
        key_id = self.key_id
        if key_id is None and keyring.writer is not None:
            key_id = keyring.writer.id
        return attrs.evolve(self, key_id=key_id, keyring=keyring)

    def check_keys(self, where: str) -> None:
        keyring = self.keyring or Keyring()
        if self.key_id is None:
            keyring.writing_key(what=where)
        else:
            keyring.find(self.key_id, what=where)

    def _key(self) -> Key:
        keyring = self.keyring or Keyring()
        if self.key_id is None:
            return keyring.writing_key(what="this stream")
        return keyring.find(self.key_id, what="this stream")

    def encoder(self, out: Writer) -> Encoder:
        return AesEncoder(
            out, self._key(), chunk_size=self.chunk_size, scrypt_log_n=self.scrypt_log_n
        )

    def decoder(self, inp: Reader) -> Reader:
        return AesDecoder(
            inp,
            self.keyring or Keyring(),
            key_id=self.key_id,
            chunk_size=self.chunk_size,
            scrypt_log_n=self.scrypt_log_n,
        )


@hookimpl
def backupkit_register_transforms(register: Register) -> None:
    register.transform(AesTransform)
