"""Where a Redis server is and how to log in, from a URL or host/port, with the password
kept out of sight; redis-py clients with one-line errors, and the raw socket the
replication protocol needs."""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs

from backupkit.errors import ConfigError, SourceError


def _redis() -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigError("the redis source needs redis-py; install backupkit[redis]") from None
    return redis


def keyspace(info: Mapping[str, Any]) -> dict[str, int]:
    """``{"0": keys, ...}`` from ``INFO keyspace`` (databases that hold keys)."""
    return {k[2:]: int(v["keys"]) for k, v in info.items() if k.startswith("db") and isinstance(v, dict)}


@attrs.frozen
class RedisConn:
    """One server: address, TLS, ACL user, database, and the password apart."""

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    tls: bool = False
    tls_ca_file: str | None = None

    @classmethod
    def resolve(cls, url: str | None, **given: Any) -> RedisConn:
        """*given* keywords (host, port, db, username, password...) over *url*."""
        base: dict[str, Any] = {}
        if url:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("redis", "rediss"):
                raise ConfigError("redis source: 'url' must start with redis:// or rediss:// "
                                  "(e.g. redis://:PASSWORD@host:6379/0)")
            try:
                port = parts.port
            except ValueError:
                raise ConfigError("redis source: the port in 'url' is not a number") from None
            base = {"host": parts.hostname or "127.0.0.1", "port": port or 6379,
                    "tls": parts.scheme == "rediss"}
            if parts.username:
                base["username"] = urllib.parse.unquote(parts.username)
            if parts.password:
                base["password"] = urllib.parse.unquote(parts.password)
            path = parts.path.strip("/")
            if path:
                if not path.isdigit():
                    raise ConfigError(f"redis source: database {path!r} in 'url' is not a number")
                base["db"] = int(path)
        base.update({k: v for k, v in given.items() if v is not None})
        return cls(**base)

    def where(self) -> str:
        """``user@host:port`` for messages (no password)."""
        return f"{self.username + '@' if self.username else ''}{self.host}:{self.port}"

    def redact(self, text: str) -> str:
        """*text* with the password replaced by ``***``."""
        return text.replace(self.password, "***") if self.password else text

    def client(self, db: int | None = None, **kwargs: Any) -> Any:
        """A redis-py client (lazy: errors come with the first command, see :meth:`call`)."""
        redis = _redis()
        return redis.Redis(host=self.host, port=self.port, db=self.db if db is None else db,
                           username=self.username, password=self.password, ssl=self.tls,
                           ssl_ca_certs=self.tls_ca_file, socket_connect_timeout=15,
                           socket_timeout=kwargs.pop("socket_timeout", 300), **kwargs)

    def error(self, exc: BaseException, doing: str = "") -> SourceError:
        """A one-line :class:`SourceError` for a redis-py or socket error."""
        redis = _redis()
        text = self.redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        at = f"Redis at {self.where()}"
        if isinstance(exc, redis.exceptions.BusyLoadingError) or text.startswith("LOADING"):
            return SourceError(f"{at} is loading its dataset into memory; try again once it is up")
        if ("WRONGPASS" in text or "invalid password" in text or
                (isinstance(exc, redis.exceptions.AuthenticationError) and "HELLO must" not in text)):
            return SourceError(f"{at} refused the login ({text}); check the user name and password")
        if "NOAUTH" in text or "HELLO must be called with the client already authenticated" in text or \
                isinstance(exc, redis.exceptions.AuthenticationWrongNumberOfArgsError):
            return SourceError(f"{at} requires a password; give one in 'url' (redis://:PASSWORD@host) "
                               "or 'password'")
        if isinstance(exc, (redis.exceptions.ConnectionError, OSError, redis.exceptions.TimeoutError)):
            return SourceError(f"cannot connect to {at}: {text}; check that it is running and "
                               "'host'/'port' are right")
        return SourceError(f"{at}{' ' + doing if doing else ''}: {text}")

    @contextmanager
    def calls(self, doing: str = "") -> Iterator[None]:
        """Translate redis-py errors raised inside the block."""
        redis = _redis()
        try:
            yield
        except (redis.exceptions.RedisError, OSError) as exc:
            raise self.error(exc, doing) from None

    def socket(self, timeout: float = 300) -> socket.socket:
        """A connected (TLS if asked) socket, logged in: for the replication protocol."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=15)
        except OSError as exc:
            raise self.error(exc) from None
        sock.settimeout(timeout)
        if self.tls:
            import ssl  # only for TLS: ~20 ms of every start-up otherwise

            context = ssl.create_default_context(cafile=self.tls_ca_file)
            try:
                sock = context.wrap_socket(sock, server_hostname=self.host)
            except (ssl.SSLError, OSError) as exc:
                sock.close()
                raise SourceError(f"TLS to Redis at {self.where()} failed: {exc}") from None
        return sock
