"""Sealed manifests: a manifest (or run log) encrypted whole, in a small JSON envelope.

The envelope keeps only the format and the key id in the clear; the body is the manifest
in the AES stream format of :mod:`backupkit.crypto.stream`, as base64.
"""

from __future__ import annotations

import base64
import binascii
import io
import json

from backupkit.crypto.keys import Key, Keyring
from backupkit.crypto.stream import DEFAULT_CHUNK, KEY_ID_PATTERN, AesDecoder, AesEncoder
from backupkit.errors import IntegrityError, KeyMissingError, ManifestError

# -- sealed manifests ---------------------------------------------------------------------------
# A manifest whose body is encrypted: JSON with the format and key id in the clear and the
# manifest, in the stream format above, as base64. It reveals nothing but its size.
SEALED_FORMAT = 1
_SEALED_START = b'{"sealed_manifest": '
_SEALED_SCRYPT_LOG_N = 17  # the cost of a manifest sealed with a passphrase, always


def seal_manifest(data: bytes, key: Key) -> bytes:
    """*data* (a manifest's JSON) encrypted with *key*, wrapped in a small JSON envelope."""
    out = io.BytesIO()
    encoder = AesEncoder(out, key, chunk_size=DEFAULT_CHUNK, scrypt_log_n=_SEALED_SCRYPT_LOG_N)
    encoder.write(data)
    encoder.close()
    envelope = {
        "sealed_manifest": SEALED_FORMAT,
        "key_id": key.id,
        "body": base64.b64encode(out.getvalue()).decode("ascii"),
    }
    return (json.dumps(envelope) + "\n").encode()


def is_sealed_manifest(data: bytes) -> bool:
    """Whether *data* is a sealed manifest's envelope."""
    return data.lstrip().startswith(_SEALED_START)


def open_manifest(data: bytes, keyring: Keyring, *, origin: str) -> bytes:
    """The manifest JSON in *data*: unchanged if plain, decrypted if sealed.

    :raises ManifestError: naming *origin* (and the key id it needs), if it cannot be opened.
    """
    if not is_sealed_manifest(data):
        return data
    try:
        envelope = json.loads(data)
        version, key_id = envelope["sealed_manifest"], envelope["key_id"]
        body = base64.b64decode(envelope["body"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ManifestError(
            f"manifest {origin} is an encrypted manifest that is truncated or corrupt"
        ) from None
    if version != SEALED_FORMAT:
        raise ManifestError(
            f"manifest {origin} is an encrypted manifest of format {version!r}; this backupkit "
            f"reads format {SEALED_FORMAT} (upgrade backupkit?)"
        )
    if not isinstance(key_id, str) or not KEY_ID_PATTERN.match(key_id):
        raise ManifestError(f"manifest {origin} is an encrypted manifest with an invalid key id")
    try:
        keyring.find(key_id, what=f"manifest {origin}")
    except KeyMissingError as exc:
        raise ManifestError(str(exc)) from None
    try:
        return AesDecoder(
            io.BytesIO(body),
            keyring,
            key_id=key_id,
            chunk_size=None,
            scrypt_log_n=_SEALED_SCRYPT_LOG_N,
        ).read()
    except IntegrityError as exc:
        raise ManifestError(f"manifest {origin} cannot be decrypted: {exc}") from None
