"""Encryption keys: where they come from, their ids, and the keyring that holds them.

A key is written one of three ways, in ``BACKUP_ENCRYPTION_KEY``, in the file
``BACKUP_ENCRYPTION_KEY_FILE`` names, or in a key file given with ``--key-file`` or
``key_file`` in the configuration:

``base64:<44 characters>``
    a random 256-bit key, as ``backupkit keys generate`` prints it;
``passphrase:<text>``
    a passphrase, stretched with scrypt (the salt is in each artifact's header);
anything else
    a key if it is base64 for exactly 32 bytes; refused if it looks like a damaged
    key (30 to 50 characters of the base64 or hex alphabet, a ``#`` after
    whitespace, a mistyped prefix); otherwise a passphrase of at least 12 characters.

A leading byte order mark and surrounding whitespace are ignored. A key file holds
one key per line (blank lines and ``#`` comments are skipped); a ``base64:`` key may
be followed by whitespace and a ``# comment`` on its line, any other line with
one is refused.

The *writing* key is the first key found in this order: key files given
explicitly, ``BACKUP_ENCRYPTION_KEY``, ``BACKUP_ENCRYPTION_KEY_FILE``. Every key
found can *read*, so keys are rotated by putting the new key first and keeping the
old ones below it for as long as old backups are kept.

A key is known by its **key id**, 16 hex digits derived from it one way; the id is
what artifact headers and manifests record. The key itself never leaves this module
in anything printable: :class:`Key` and :class:`Keyring` show ids only.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from backupkit.errors import ConfigError, KeyMissingError

log = logging.getLogger("backupkit")

KEY_ENV = "BACKUP_ENCRYPTION_KEY"
KEY_FILE_ENV = "BACKUP_ENCRYPTION_KEY_FILE"
KEY_SIZE = 32
MIN_PASSPHRASE = 12

# scrypt cost of a passphrase's key id: the same as the default cost of an
# artifact, so the id is no cheaper a target for guessing than the data.
ID_SCRYPT_LOG_N = 17
ID_SCRYPT_R = 8
_ID_INFO = b"backupkit key id v1"
_PAYLOAD_INFO = b"backupkit aes-256-gcm payload key v1"
_MAC_INFO = b"backupkit manifest mac v1"

KeyKind = Literal["key", "passphrase"]


def scrypt(secret: bytes, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    """A 32-byte key stretched from *secret* (``2**log_n``, *r*, *p* as in RFC 7914)."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt  # only when encrypting: ~8 ms

    return Scrypt(salt=salt, length=KEY_SIZE, n=1 << log_n, r=r, p=p).derive(secret)


def hkdf(secret: bytes, salt: bytes | None, info: bytes, length: int = KEY_SIZE) -> bytes:
    """A key of *length* bytes derived from *secret* with HKDF-SHA256."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


class Key:
    """One encryption key or passphrase. Prints as its id, never as itself.

    :param kind: ``"key"`` (32 random bytes) or ``"passphrase"``.
    :param material: the key bytes or the passphrase's UTF-8 bytes.
    :param origin: where it came from, for messages (``BACKUP_ENCRYPTION_KEY``).
    """

    __slots__ = ("_id", "_mac", "_material", "kind", "origin")

    def __init__(self, kind: KeyKind, material: bytes, *, origin: str = "key") -> None:
        if kind == "key" and len(material) != KEY_SIZE:
            raise ConfigError(f"{origin}: an encryption key must be {KEY_SIZE} bytes")
        self.kind: KeyKind = kind
        self._material = bytes(material)
        self.origin = origin
        self._id: str | None = None
        self._mac: bytes | None = None

    @classmethod
    def generate(cls) -> Key:
        """A new random 256-bit key."""
        return cls("key", secrets.token_bytes(KEY_SIZE), origin="generated key")

    @classmethod
    def parse(cls, text: str, *, origin: str) -> Key:
        """Read a key written as the module docstring says; errors never echo *text*."""
        text = _clean(text)
        if text.startswith("base64:"):
            material = _b64_key(text[len("base64:") :])
            if material is None:
                raise ConfigError(
                    f"{origin}: the value after 'base64:' is not base64 for a {KEY_SIZE}-byte "
                    "key; create one with 'backupkit keys generate'"
                )
            return cls("key", material, origin=origin)
        if text.startswith("passphrase:"):
            return cls._passphrase(text[len("passphrase:") :], origin)
        material = _b64_key(text)
        if material is not None:
            return cls("key", material, origin=origin)
        if _PREFIX_TYPO.match(text) or _DAMAGED_KEY.fullmatch(text) or _COMMENT.search(text):
            raise ConfigError(
                f"{origin}: this looks like a damaged key, not a passphrase; check the key "
                "('base64:' and 44 characters, as 'backupkit keys generate' prints it), or "
                "write 'passphrase:' in front if a passphrase is meant"
            )
        return cls._passphrase(text, origin)

    @classmethod
    def _passphrase(cls, text: str, origin: str) -> Key:
        if len(text) < MIN_PASSPHRASE:
            raise ConfigError(
                f"{origin}: a passphrase needs at least {MIN_PASSPHRASE} characters; better, "
                "use a random key from 'backupkit keys generate'"
            )
        return cls("passphrase", text.encode("utf-8"), origin=origin)

    def encode(self) -> str:
        """The key written for ``BACKUP_ENCRYPTION_KEY`` or a key file. Keep it secret."""
        if self.kind == "passphrase":
            return "passphrase:" + self._material.decode("utf-8")
        return "base64:" + base64.b64encode(self._material).decode("ascii")

    @property
    def id(self) -> str:
        """16 hex digits identifying the key; safe to print and store."""
        if self._id is None:
            if self.kind == "key":
                raw = hkdf(self._material, None, _ID_INFO, 8)
            else:
                raw = scrypt(self._material, _ID_INFO, ID_SCRYPT_LOG_N, ID_SCRYPT_R, 1)[:8]
            self._id = raw.hex()
        return self._id

    def mac_key(self) -> bytes:
        """The key that authenticates manifests: HKDF of a key, or scrypt of a passphrase
        (as costly as its id; computed once per process)."""
        if self._mac is None:
            if self.kind == "key":
                self._mac = hkdf(self._material, None, _MAC_INFO)
            else:
                self._mac = scrypt(self._material, _MAC_INFO, ID_SCRYPT_LOG_N, ID_SCRYPT_R, 1)
        return self._mac

    def payload_key(self, salt: bytes, *, log_n: int = 0, r: int = 0, p: int = 0) -> bytes:
        """The AES-256 key of one artifact: HKDF of a key, or scrypt of a passphrase."""
        if self.kind == "key":
            return hkdf(self._material, salt, _PAYLOAD_INFO)
        return scrypt(self._material, salt, log_n, r, p)

    def __repr__(self) -> str:
        return f"<Key {self.kind} id={self._id or '?'} from {self.origin}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key):
            return NotImplemented
        return self.kind == other.kind and hmac.compare_digest(self._material, other._material)

    def __hash__(self) -> int:
        return hash((self.kind, self.id))


_B64_KEY = re.compile(r"[A-Za-z0-9+/]{43}")
_URLSAFE = str.maketrans("-_", "+/")
# Unprefixed text refused rather than taken as a passphrase: it is more likely a key that
# was cut short, mistyped or pasted with a comment, and a wrong passphrase is a new key.
_DAMAGED_KEY = re.compile(r"[A-Za-z0-9+/_=-]{30,50}")
_COMMENT = re.compile(r"\s#")
_PREFIX_TYPO = re.compile(r"(base64|passphrase)\s*[:;=]", re.IGNORECASE)


def _clean(text: str) -> str:
    """*text* without surrounding whitespace and a byte order mark (Notepad, PowerShell)."""
    return text.strip().removeprefix("\ufeff").strip()


def looks_like_key(text: str) -> bool:
    """Whether *text* is written like a key or passphrase rather than a name or an id.

    For messages about a value given in the wrong place: such a value is never echoed.
    """
    text = _clean(text)
    return (
        _PREFIX_TYPO.match(text) is not None
        or _b64_key(text) is not None
        or (_DAMAGED_KEY.fullmatch(text) is not None and not text.startswith("/"))
        or any(c.isspace() or c == "#" for c in text)
    )


def _b64_key(text: str) -> bytes | None:
    """32 bytes from canonical standard or URL-safe base64 (padding optional), else None."""
    text = text.strip().removesuffix("=").translate(_URLSAFE)
    if not _B64_KEY.fullmatch(text):
        return None
    raw = base64.b64decode(text + "=")
    return raw if base64.b64encode(raw)[:43] == text.encode() else None


class Keyring:
    """The keys a process may use: several for reading, one of them for writing.

    :param keys: every usable key; duplicates are dropped.
    :param writer: the key new backups are encrypted with; the first key by default.
    """

    __slots__ = ("_keys", "writer")

    def __init__(self, keys: Iterable[Key] = (), *, writer: Key | None = None) -> None:
        unique: list[Key] = []
        for key in [*([writer] if writer else []), *keys]:
            if key not in unique:
                unique.append(key)
        self._keys = tuple(unique)
        self.writer = writer or (unique[0] if unique else None)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        key_files: Iterable[str | os.PathLike[str]] = (),
    ) -> Keyring:
        """The keys in *key_files*, ``BACKUP_ENCRYPTION_KEY`` and ``BACKUP_ENCRYPTION_KEY_FILE``.

        The first key found writes (explicit key files first); all of them read.
        """
        env = os.environ if env is None else env
        keys: list[Key] = []
        for path in key_files:
            keys.extend(read_key_file(path))
        if env.get(KEY_ENV, "").strip():
            keys.append(Key.parse(env[KEY_ENV], origin=KEY_ENV))
        if env.get(KEY_FILE_ENV, "").strip():
            keys.extend(read_key_file(env[KEY_FILE_ENV], setting=KEY_FILE_ENV))
        return cls(keys)

    def __iter__(self) -> Iterator[Key]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def ids(self) -> list[str]:
        """The ids of every key, in the order they were found."""
        return [k.id for k in self._keys]

    def get(self, key_id: str) -> Key | None:
        """The key with id *key_id*, or ``None``."""
        for key in self._keys:
            if hmac.compare_digest(key.id, key_id):
                return key
        return None

    def find(self, key_id: str, *, what: str) -> Key:
        """The key with id *key_id*; :class:`KeyMissingError` naming it if absent."""
        key = self.get(key_id)
        if key is None:
            raise KeyMissingError(
                f"{what} is encrypted with key {key_id}, which is not configured "
                f"(configured: {', '.join(self.ids()) or 'none'}); set {KEY_ENV} or pass "
                "--key-file with that key",
                key_id=key_id,
            )
        return key

    def writing_key(self, *, what: str) -> Key:
        """The key new backups are written with; :class:`KeyMissingError` if none."""
        if self.writer is None:
            raise KeyMissingError(
                f"{what} is to be encrypted but no encryption key is configured; set {KEY_ENV} "
                "or pass --key-file (create a key with 'backupkit keys generate')"
            )
        return self.writer

    def __repr__(self) -> str:
        ids = ", ".join(k._id or "?" for k in self._keys)
        return f"<Keyring {len(self._keys)} key(s) [{ids}]>"

    __str__ = __repr__


def read_key_file(path: str | os.PathLike[str], *, setting: str | None = None) -> list[Key]:
    """Every key in a key file, one per line; ``#`` comments and blank lines skipped.

    :param setting: what named the file (``BACKUP_ENCRYPTION_KEY_FILE``), for messages.
    """
    raw = os.fspath(path)
    path = Path(raw)
    try:
        text = path.read_text(encoding="utf-8-sig")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(_unreadable(raw, setting, exc)) from None
    origin = f"{setting} ({path})" if setting else f"key file {path}"
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s can be read by other users; chmod 600 it", origin)
    keys = [
        _key_line(line, f"{origin} line {n}")
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise ConfigError(f"{origin} holds no key; put one per line ('backupkit keys generate')")
    return keys


def _key_line(line: str, origin: str) -> Key:
    """The key on one key-file line; a ``# comment`` may follow only a ``base64:`` key."""
    if not _COMMENT.search(line):
        return Key.parse(line, origin=origin)
    first = line.split()[0]
    if first.startswith("base64:") and _b64_key(first[len("base64:") :]) is not None:
        return Key.parse(first, origin=origin)
    raise ConfigError(
        f"{origin}: a '#' after whitespace is ambiguous here; put comments on a line of their "
        "own (a comment may follow a 'base64:' key), or check the key if it has been damaged"
    )


def _unreadable(raw: str, setting: str | None, exc: BaseException) -> str:
    """The message for a key file that cannot be read; *raw* is named only if it is a path."""
    named = setting or "a key file given with --key-file or key_file"
    text = _clean(raw)
    if text.startswith(("base64:", "passphrase:")) or _b64_key(text) is not None:
        return (
            f"{named} holds a key, not a file name; put the key in {KEY_ENV} instead, or "
            "give the path of a key file here"
        )
    if looks_like_key(raw):
        return (
            f"{named} names no readable file and looks like a key or passphrase (not shown); "
            f"put keys in {KEY_ENV} and only the path of a key file here"
        )
    where = f"key file {os.path.abspath(raw)}"
    if isinstance(exc, FileNotFoundError):
        return (
            f"{where} does not exist; point {setting or '--key-file or key_file'} at the key "
            "file the backups were made with, or create one with 'backupkit keys generate' "
            "for new backups"
        )
    reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
    return f"cannot read {where}" + (f" ({setting})" if setting else "") + f": {reason}"
