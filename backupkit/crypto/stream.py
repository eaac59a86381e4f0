"""The AES-256-GCM stream format: a header, then chunks sealed one by one.

The stream is a 48-byte header followed by chunks, each sealed with AES-256-GCM
(the STREAM construction of age and Tink's streaming AEAD). docs/encryption.md
gives the byte layout and a standalone decryption function; in short::

    header  = magic "\\x89BKENC\\r\\n" | version 1 | kdf | scrypt log2 N, r, p
              | chunk size (u32) | key id (8) | salt (16) | nonce prefix (7)
    key     = HKDF-SHA256(key, salt, info)   or   scrypt(passphrase, salt, N, r, p)
    chunk i = AES-256-GCM(key, nonce = prefix | u32 i | last-flag, plaintext, AD = header)

Every chunk but the last holds exactly ``chunk_size`` bytes of plaintext; the last
holds 1 to ``chunk_size`` bytes (0 only when the whole stream is empty) and is the
only one sealed with the last-flag set. The counter and the flag in the nonce, a
per-artifact key and nonce prefix, and the header as associated data of every
chunk make truncation, extension, reordering, chunks swapped in from another
artifact and any flipped bit fail authentication. Memory is one chunk each way.
"""

from __future__ import annotations

import re
import secrets
import struct
from typing import TYPE_CHECKING, Any

import attrs

from backupkit.crypto.keys import Key, Keyring, looks_like_key
from backupkit.errors import IntegrityError

if TYPE_CHECKING:  # imported where used: a run without encryption need not load cryptography
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from backupkit.plugin.streams import Reader, Writer

MAGIC = b"\x89BKENC\r\n"
VERSION = 1
KDF_KEY = 1
KDF_PASSPHRASE = 2
HEADER = struct.Struct(">8sBBBBBI8s16s7s")
HEADER_SIZE = HEADER.size  # 48
TAG_SIZE = 16
DEFAULT_CHUNK = 1 << 16
SCRYPT_R = 8
SCRYPT_P = 1
_MAX_SCRYPT_MEMORY = 1 << 30  # refuse headers asking scrypt for more than 1 GiB
_MAX_COUNTER = (1 << 32) - 1
KEY_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")


def check_key_id(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An attrs validator: *value* is ``None`` or a 16-hex-digit key id (never echoed if it looks like a key)."""
    if value is None or (isinstance(value, str) and KEY_ID_PATTERN.match(value)):
        return
    if isinstance(value, str) and looks_like_key(value):  # never echo it: it may be the key
        raise ValueError(
            "key_id is not a 16-hex-digit key id; this looks like a key itself; key_id takes "
            "the id shown by `backupkit keys id`"
        )
    raise ValueError(
        "key_id is not a 16-hex-digit key id (lowercase, as `backupkit keys id` shows it)"
    )


def check_chunk_size(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An attrs validator: *value* is a power of two from 4 KiB to 16 MiB."""
    if not _valid_chunk_size(value):
        raise ValueError(f"chunk_size must be a power of two from 4096 to 16777216, got {value!r}")


def _valid_chunk_size(value: Any) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 1 << 12 <= value <= 1 << 24
        and value & (value - 1) == 0
    )


@attrs.frozen
class Header:
    """The clear-text header of an encrypted stream; every field is public."""

    kdf: int
    chunk_size: int
    key_id: str
    salt: bytes
    nonce_prefix: bytes
    scrypt_log_n: int = 0
    scrypt_r: int = 0
    scrypt_p: int = 0

    def pack(self) -> bytes:
        """The header's 48 bytes."""
        return HEADER.pack(
            MAGIC,
            VERSION,
            self.kdf,
            self.scrypt_log_n,
            self.scrypt_r,
            self.scrypt_p,
            self.chunk_size,
            bytes.fromhex(self.key_id),
            self.salt,
            self.nonce_prefix,
        )

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        """Parse and sanity-check a header; :class:`IntegrityError` if it is not one."""
        if len(data) < HEADER_SIZE:
            raise IntegrityError(
                f"encrypted stream is truncated: {len(data)} bytes, shorter than its header"
            )
        magic, version, kdf, log_n, r, p, chunk, key_id, salt, prefix = HEADER.unpack(data)
        if magic != MAGIC:
            raise IntegrityError("not a backupkit encrypted stream (bad magic bytes)")
        if version != VERSION:
            raise IntegrityError(
                f"encrypted stream has format version {version}; this backupkit reads "
                f"version {VERSION} (upgrade backupkit?)"
            )
        if not _valid_chunk_size(chunk):
            raise IntegrityError(f"encrypted stream header has an invalid chunk size {chunk}")
        if kdf == KDF_KEY:
            if (log_n, r, p) != (0, 0, 0):
                raise IntegrityError("encrypted stream header has scrypt parameters for a key")
        elif kdf == KDF_PASSPHRASE:
            if not (10 <= log_n <= 30 and r >= 1 and p >= 1) or 128 * r * (1 << log_n) * p > (
                _MAX_SCRYPT_MEMORY
            ):
                raise IntegrityError(
                    f"encrypted stream header has unacceptable scrypt parameters "
                    f"(log2 N={log_n}, r={r}, p={p})"
                )
        else:
            raise IntegrityError(f"encrypted stream header has an unknown key derivation {kdf}")
        return cls(kdf, chunk, key_id.hex(), salt, prefix, log_n, r, p)

    def payload_key(self, key: Key) -> bytes:
        """The stream's payload key, derived from *key* as the header says."""
        expected = KDF_PASSPHRASE if key.kind == "passphrase" else KDF_KEY
        if self.kdf != expected:
            raise IntegrityError(
                f"encrypted stream header says it was sealed with a "
                f"{'passphrase' if self.kdf == KDF_PASSPHRASE else 'key'}, but key "
                f"{key.id} is a {key.kind}; the header was modified"
            )
        return key.payload_key(self.salt, log_n=self.scrypt_log_n, r=self.scrypt_r, p=self.scrypt_p)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class AesEncoder:
    """Seals what is written into chunks; ``close`` seals the last one.

    ``close`` does not close the wrapped writer.
    """

    def __init__(self, out: Writer, key: Key, *, chunk_size: int, scrypt_log_n: int) -> None:
        salt = secrets.token_bytes(16)
        if key.kind == "passphrase":
            header = Header(
                KDF_PASSPHRASE,
                chunk_size,
                key.id,
                salt,
                secrets.token_bytes(7),
                scrypt_log_n,
                SCRYPT_R,
                SCRYPT_P,
            )
        else:
            header = Header(KDF_KEY, chunk_size, key.id, salt, secrets.token_bytes(7))
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(header.payload_key(key))
        self._ad = header.pack()
        self._prefix = header.nonce_prefix
        self._size = chunk_size
        self._out = out
        self._buf = bytearray()
        self._counter = 0
        self._closed = False
        out.write(self._ad)

    def _seal(self, plaintext: Any, last: bool) -> None:
        if self._counter > _MAX_COUNTER:
            raise ValueError("stream too long for one encrypted artifact (2**32 chunks)")
        nonce = _nonce(self._prefix, self._counter, last)
        self._out.write(self._aead.encrypt(nonce, plaintext, self._ad))
        self._counter += 1

    def write(self, data: bytes, /) -> int:
        if self._closed:
            raise ValueError("write to a closed encoder")
        buf = self._buf
        buf += data
        size = self._size
        if len(buf) > size:  # keep at least one byte back: the last chunk is sealed by close
            pos = 0
            with memoryview(buf) as view:
                while len(buf) - pos > size:
                    self._seal(view[pos : pos + size], last=False)
                    pos += size
            del buf[:pos]
        return len(data)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._seal(bytes(self._buf), last=True)
        self._buf = bytearray()


class AesDecoder:
    """Opens an encrypted stream chunk by chunk; :class:`IntegrityError` on any defect.

    Nothing is read before the first ``read``. Plaintext is only ever returned from
    chunks that authenticated; the end of the stream is only reported after the
    chunk sealed as last authenticated.
    """

    def __init__(
        self,
        inp: Reader,
        keyring: Keyring,
        *,
        key_id: str | None,
        chunk_size: int | None,
        scrypt_log_n: int,
    ) -> None:
        self._inp = inp
        self._keyring = keyring
        self._expect_key_id = key_id
        self._expect_chunk = chunk_size
        self._expect_scrypt = (scrypt_log_n, SCRYPT_R, SCRYPT_P)  # what the encoder writes
        self._aead: AESGCM | None = None
        self._ad = b""
        self._prefix = b""
        self._size = 0
        self._pending = b""
        self._plain = b""
        self._pos = 0
        self._counter = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def _read_exact(self, n: int) -> bytes:
        parts = []
        while n > 0:
            data = self._inp.read(n)
            if not data:
                break
            parts.append(data)
            n -= len(data)
        return b"".join(parts)

    def _start(self) -> None:
        header = Header.unpack(self._read_exact(HEADER_SIZE))
        if self._expect_key_id is not None and header.key_id != self._expect_key_id:
            raise IntegrityError(
                f"encrypted stream header names key {header.key_id} but the manifest "
                f"records key {self._expect_key_id}; the header was modified"
            )
        if self._expect_chunk is not None and header.chunk_size != self._expect_chunk:
            raise IntegrityError(
                f"encrypted stream header has chunk size {header.chunk_size} but the manifest "
                f"records {self._expect_chunk}; the header was modified"
            )
        scrypt = (header.scrypt_log_n, header.scrypt_r, header.scrypt_p)
        if header.kdf == KDF_PASSPHRASE and scrypt != self._expect_scrypt:  # before running it
            raise IntegrityError(
                f"encrypted stream header has scrypt parameters (log2 N, r, p) {scrypt} but the "
                f"manifest records {self._expect_scrypt}; the header was modified"
            )
        key = self._keyring.find(header.key_id, what="this stream")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(header.payload_key(key))
        self._ad = header.pack()
        self._prefix = header.nonce_prefix
        self._size = header.chunk_size

    def _next_chunk(self) -> bytes:
        if self._aead is None:
            self._start()
        assert self._aead is not None
        sealed = self._size + TAG_SIZE
        # One byte of look-ahead tells the last chunk from the others.
        self._pending += self._read_exact(sealed + 1 - len(self._pending))
        last = len(self._pending) <= sealed
        if last:
            chunk, self._pending = self._pending, b""
        else:
            chunk, self._pending = self._pending[:sealed], self._pending[sealed:]
        if len(chunk) < TAG_SIZE:
            raise IntegrityError(
                f"encrypted stream is truncated: chunk {self._counter} has {len(chunk)} bytes, "
                f"less than its {TAG_SIZE}-byte tag"
            )
        if self._counter > _MAX_COUNTER:
            raise IntegrityError("encrypted stream has more than 2**32 chunks")
        from cryptography.exceptions import InvalidTag

        try:
            plain = self._aead.decrypt(_nonce(self._prefix, self._counter, last), chunk, self._ad)
        except InvalidTag:
            raise IntegrityError(
                f"encrypted stream failed authentication at chunk {self._counter} (byte "
                f"{HEADER_SIZE + self._counter * sealed}): it was truncated, extended, "
                "reordered or modified"
            ) from None
        if last and not plain and self._counter > 0:
            raise IntegrityError("encrypted stream ends with an empty chunk it never writes")
        self._counter += 1
        self._done = last
        return plain

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            parts = [self._plain[self._pos :]]
            self._plain, self._pos = b"", 0
            while not self._done:
                parts.append(self._next_chunk())
            return b"".join(parts)
        if size == 0:
            return b""
        while self._pos >= len(self._plain):
            if self._done:
                return b""
            self._plain, self._pos = self._next_chunk(), 0
        data = self._plain[self._pos : self._pos + size]
        self._pos += len(data)
        return data
