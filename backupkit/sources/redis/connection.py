"""Where a Redis server is and how to log in, from a URL or host/port, with the password
kept out of sight; redis-py clients with one-line errors, the raw socket the
replication protocol needs, and :class:`Commands` for the few plain commands the
``rdb`` mode sends (redis-py takes ~170 ms to import: the ``keys`` mode alone needs it)."""

from __future__ import annotations

import socket
import sys
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

    def commands(self, db: int | None = None) -> Commands:
        """A :class:`Commands` client (it connects with its first command)."""
        return Commands(self, self.db if db is None else db)

    def error(self, exc: BaseException, doing: str = "") -> SourceError:
        """A one-line :class:`SourceError` for a redis-py, :class:`Commands` or socket error."""
        redis = sys.modules.get("redis")  # none of its errors without it: not imported for them

        def raised(*names: str) -> bool:
            return redis is not None and isinstance(exc, tuple(getattr(redis.exceptions, n) for n in names))

        text = self.redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        at = f"Redis at {self.where()}"
        if raised("BusyLoadingError") or text.startswith("LOADING"):
            return SourceError(f"{at} is loading its dataset into memory; try again once it is up")
        if ("WRONGPASS" in text or "invalid password" in text or
                (raised("AuthenticationError") and "HELLO must" not in text)):
            return SourceError(f"{at} refused the login ({text}); check the user name and password")
        if "NOAUTH" in text or "HELLO must be called with the client already authenticated" in text or \
                raised("AuthenticationWrongNumberOfArgsError"):
            return SourceError(f"{at} requires a password; give one in 'url' (redis://:PASSWORD@host) "
                               "or 'password'")
        if isinstance(exc, OSError) or raised("ConnectionError", "TimeoutError"):
            return SourceError(f"cannot connect to {at}: {text}; check that it is running and "
                               "'host'/'port' are right")
        return SourceError(f"{at}{' ' + doing if doing else ''}: {text}")

    @contextmanager
    def calls(self, doing: str = "") -> Iterator[None]:
        """Translate redis-py and :class:`Commands` errors raised inside the block."""
        try:
            yield
        except Exception as exc:
            redis = sys.modules.get("redis")
            if isinstance(exc, (ReplyError, OSError)) or (
                    redis is not None and isinstance(exc, redis.exceptions.RedisError)):
                raise self.error(exc, doing) from None
            raise

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


class ReplyError(Exception):
    """An error reply of the server (``-ERR ...``, ``-NOAUTH ...``), as it sent it."""


class Commands:
    """A connection for plain commands (``INFO``, ``REPLICAOF``, ``FLUSHALL``), speaking
    RESP on :meth:`RedisConn.socket`: what the ``rdb`` mode sends, without redis-py.

    Like a redis-py client it connects (logs in, selects the database) with its first
    command, so errors come from a command, inside :meth:`RedisConn.calls`.
    """

    def __init__(self, conn: RedisConn, db: int = 0) -> None:
        self.conn, self.db = conn, db
        self._sock: socket.socket | None = None
        self._reader: Any = None

    def execute_command(self, *args: str) -> Any:
        """Send one command; return its reply (raise :class:`ReplyError` for an error)."""
        if self._sock is None:
            self._connect()
        return self._call(*args)

    def info(self, section: str) -> dict[str, Any]:
        """``INFO section`` as a dict, as redis-py's ``info()`` reads the fields used here:
        numbers as int, ``db0:keys=1,expires=0`` as a dict, anything else as text."""
        text = self.execute_command("INFO", section)
        info: dict[str, Any] = {}
        for line in text.decode(errors="replace").splitlines():
            if line and not line.startswith("#") and ":" in line:
                key, value = line.split(":", 1)
                info[key] = ({k: _number(v) for k, _, v in (i.partition("=") for i in value.split(",") if i)}
                             if "=" in value else _number(value))
        return info

    def flushall(self) -> Any:
        """``FLUSHALL``."""
        return self.execute_command("FLUSHALL")

    def close(self) -> None:
        """Close the connection (if it was opened)."""
        if self._sock is not None:
            self._reader.close()
            self._sock.close()
            self._sock = self._reader = None

    def _connect(self) -> None:
        self._sock = self.conn.socket()
        self._reader = self._sock.makefile("rb")
        try:
            if self.conn.password is not None:
                user = (self.conn.username,) if self.conn.username else ()
                self._call("AUTH", *user, self.conn.password)
            if self.db:
                self._call("SELECT", str(self.db))
        except BaseException:
            self.close()
            raise

    def _call(self, *args: str) -> Any:
        assert self._sock is not None
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._sock.sendall(b"".join(out))
        return self._reply()

    def _reply(self) -> Any:
        line = self._reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("the server closed the connection")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body.decode(errors="replace")
        if kind == b"-":
            raise ReplyError(body.decode(errors="replace"))
        if kind == b":":
            return int(body)
        if kind == b"$":
            size = int(body)
            return None if size < 0 else self._reader.read(size + 2)[:-2]
        if kind == b"*":
            count = int(body)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise ConnectionError(f"the server sent {line[:40]!r}, not a RESP reply")


def _number(value: str) -> Any:
    return int(value) if value.lstrip("-").isdigit() else value
