"""Bearer tokens for the HTTP API: who may call it, and with which scope.

Tokens come from ``BACKUPKIT_API_TOKENS="id:token:scope,..."`` or a token file (one
``id:token:scope`` per line; ``#`` comments), where the token may be given as
``sha256:<64 hex digits>`` of it instead, so the file need not hold the secret. Scopes:
``read`` (status, scheduler state, metrics) and ``admin`` (everything, including starting
backups, the scheduler and download URLs). Presented tokens are compared by their SHA-256
digests in constant time, against every configured token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from backupkit.errors import ConfigError

SCOPES = ("read", "admin")
MIN_TOKEN_LENGTH = 16
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HASH = re.compile(r"sha256:([0-9a-fA-F]{64})")


@attrs.frozen
class Token:
    """One configured token: its id (what the audit log names), digest and scope."""

    id: str
    digest: bytes = attrs.field(repr=False)
    scope: str

    def allows(self, scope: str) -> bool:
        """Whether this token may call a route that needs *scope*."""
        return self.scope == "admin" or scope == self.scope


def _parse(entry: str, where: str) -> Token:
    token_id, sep, rest = entry.strip().partition(":")
    secret, sep2, scope = rest.rpartition(":")
    if not sep or not sep2 or not secret:
        raise ConfigError(f"{where}: a token is 'id:token:scope' (scope read or admin), got an entry "
                          f"starting {token_id[:16]!r}")
    if not _ID.fullmatch(token_id):
        raise ConfigError(f"{where}: token id {token_id[:64]!r} may hold only letters, digits, '_', '.', '-'")
    if scope not in SCOPES:
        raise ConfigError(f"{where}: token {token_id!r} has scope {scope[:16]!r}; use read or admin")
    hashed = _HASH.fullmatch(secret)
    if hashed:
        return Token(token_id, bytes.fromhex(hashed.group(1)), scope)
    if len(secret) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{where}: token {token_id!r} is shorter than {MIN_TOKEN_LENGTH} characters; "
                          "make a long random one (python -c 'import secrets; print(secrets.token_urlsafe())')")
    return Token(token_id, hashlib.sha256(secret.encode()).digest(), scope)


@attrs.frozen
class Tokens:
    """The configured tokens; empty means the API has none (and must not be served open)."""

    tokens: tuple[Token, ...] = ()

    def __attrs_post_init__(self) -> None:
        ids = [t.id for t in self.tokens]
        for token_id in ids:
            if ids.count(token_id) > 1:
                raise ConfigError(f"API token id {token_id!r} is given twice; give each token its own id")

    @classmethod
    def parse(cls, entries: Iterable[str], where: str) -> Tokens:
        """Tokens from ``id:token:scope`` entries."""
        return cls(tuple(_parse(e, where) for e in entries if e.strip() and not e.strip().startswith("#")))

    @classmethod
    def from_env(cls, env: Mapping[str, str], token_file: str | None = None) -> Tokens:
        """``BACKUPKIT_API_TOKENS`` and the token file (``--token-file`` or
        ``BACKUPKIT_API_TOKEN_FILE``), together."""
        found = cls.parse(env.get("BACKUPKIT_API_TOKENS", "").split(","), "BACKUPKIT_API_TOKENS").tokens
        path = token_file or env.get("BACKUPKIT_API_TOKEN_FILE")
        if path:
            try:
                lines = Path(path).read_text().splitlines()
            except OSError as exc:
                raise ConfigError(f"cannot read the API token file {path}: {exc.strerror or exc}") from None
            found += cls.parse(lines, f"API token file {path}").tokens
        return cls(found)

    def check(self, presented: str) -> Token | None:
        """The token *presented* is, or None: every digest is compared, in constant time."""
        digest = hashlib.sha256(presented.encode()).digest()
        match = None
        for token in self.tokens:
            if hmac.compare_digest(digest, token.digest):
                match = token
        return match
