"""Where a PostgreSQL server is and how to log in: one :class:`Conn` built from a URL,
libpq keywords or the environment, that keeps its password to itself.

The password reaches a child program (``pg_dump``, ``pg_restore``) only through its
environment (``PGPASSWORD``), never its command line; it is never in a description,
a log line or an error: :meth:`Conn.redact` removes it from any text that might hold
it (a server's or a program's message).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from backupkit.errors import ConfigError, SourceError

if TYPE_CHECKING:
    import psycopg

#: libpq keywords a source may set, besides the password.
KEYWORDS = ("host", "port", "user", "dbname", "sslmode", "sslrootcert", "passfile", "application_name")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "the postgres source needs psycopg; install backupkit[postgres]"
        ) from None
    return psycopg


@attrs.frozen
class Conn:
    """Connection keywords (no password) and the password, kept apart."""

    keywords: Mapping[str, str]
    password: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def resolve(
        cls,
        url: str | None,
        keywords: Mapping[str, Any],
        password: str | None,
        env: Mapping[str, str] | None = None,
    ) -> Conn:
        """*keywords* over *url* over ``DATABASE_URL``; what none of them sets, libpq takes
        from the ``PG*`` variables and its defaults, as ``psql`` does."""
        env = os.environ if env is None else env
        base: dict[str, str] = {}
        url = url or env.get("DATABASE_URL") or None
        if url:
            try:
                base = dict(_psycopg().conninfo.conninfo_to_dict(url))
            except Exception:
                raise ConfigError(
                    "postgres source: 'url' is not a valid PostgreSQL URL or connection string; "
                    "write it as postgresql://user@host:port/dbname"
                ) from None
        for key, value in keywords.items():
            if value is not None:
                base[key] = str(value)
        secret = password if password is not None else base.pop("password", None)
        base.pop("password", None)
        return cls({k: v for k, v in base.items() if v != ""}, secret)

    def with_dbname(self, dbname: str) -> Conn:
        """The same server and login, database *dbname*."""
        return attrs.evolve(self, keywords={**self.keywords, "dbname": dbname})

    @property
    def dbname(self) -> str | None:
        """The database named, if any (libpq's default is the user's name)."""
        return self.keywords.get("dbname") or os.environ.get("PGDATABASE") or None

    def conninfo(self) -> str:
        """A libpq connection string without the password (safe on a command line)."""
        return str(_psycopg().conninfo.make_conninfo("", **self.keywords))

    def child_env(self) -> dict[str, str]:
        """The environment for a client program: the process's, plus ``PGPASSWORD``."""
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def where(self) -> str:
        """``user@host:port/dbname`` for messages (no password)."""
        k = self.keywords
        host = k.get("host") or os.environ.get("PGHOST") or "localhost"
        port = k.get("port") or os.environ.get("PGPORT") or "5432"
        user = k.get("user") or os.environ.get("PGUSER")
        db = k.get("dbname") or os.environ.get("PGDATABASE") or ""
        return f"{user + '@' if user else ''}{host}:{port}/{db}"

    def redact(self, text: str) -> str:
        """*text* with the password (if any) replaced by ``***``."""
        if self.password:
            text = text.replace(self.password, "***")
        return text

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A psycopg connection; connection failures as one-line :class:`SourceError`."""
        psycopg = _psycopg()
        params = dict(self.keywords)
        if self.password is not None:
            params["password"] = self.password
        params.setdefault("connect_timeout", "15")
        try:
            return psycopg.connect(**params, **kwargs)  # type: ignore[no-any-return]
        except psycopg.Error as exc:
            raise SourceError(
                f"cannot connect to PostgreSQL at {self.where()}: {self.first_line(exc)}"
            ) from None

    def first_line(self, exc: BaseException) -> str:
        """The first meaningful line of a server or library message, redacted."""
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        text = lines[-1] if lines and lines[0].startswith("connection to server") and len(lines) > 1 else (
            lines[0] if lines else type(exc).__name__
        )
        return self.redact(text.removeprefix("FATAL:").strip())
