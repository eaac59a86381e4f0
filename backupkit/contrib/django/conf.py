"""The ``BACKUPKIT`` setting: a backupkit configuration mapping whose sets may take their
sources from Django's own settings.

A set without ``sources`` backs up the ``default`` database and, when ``MEDIA_ROOT`` is
set, the media files. A source ``{"type": "django-db", "alias": "default"}`` becomes a
``postgres`` source (a PostgreSQL database, from ``DATABASES[alias]``) or a ``json``
source (a SQLite database, read in one transaction); ``{"type": "django-media"}``
becomes a ``filesystem`` source of ``MEDIA_ROOT``. Any other source passes through as
it is. Every function here takes the settings object as an argument (Django's
``django.conf.settings``, or any object with the same attributes) and nothing is read
on import.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import attrs

from backupkit.config import Config
from backupkit.errors import ConfigError
from backupkit.plugins import make_plugin_manager
from backupkit.server.auth import Tokens
from backupkit.server.service import URL_EXPIRES

SETTING = "BACKUPKIT"
API_SETTING = "BACKUPKIT_API"
DB_SOURCE = "django-db"
MEDIA_SOURCE = "django-media"
POSTGRES_ENGINES = ("django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis")
SQLITE_ENGINES = ("django.db.backends.sqlite3", "django.contrib.gis.db.backends.spatialite")
#: Connection OPTIONS that Django passes to libpq but the postgres source cannot carry
#: to pg_dump; each with the environment variable that does.
_UNSUPPORTED_OPTIONS = {"service": "PGSERVICE", "sslrootcert": "PGSSLROOTCERT",
                        "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY"}


class SettingsError(ConfigError):
    """A fault in the Django settings backupkit reads; ``check_id`` is its system check."""

    def __init__(self, message: str, *, check_id: str) -> None:
        super().__init__(message)
        self.check_id = check_id


@attrs.frozen
class Target:
    """Where a restore puts an artifact unless told otherwise: a database or MEDIA_ROOT."""

    label: str  # for people: "database 'default'", "MEDIA_ROOT /srv/app/media"
    location: str = attrs.field(repr=False)  # a database URL (with its password) or a directory


@attrs.frozen
class DjangoConfig:
    """The backupkit configuration the settings describe, and each set's default
    restore targets (artifact name to :class:`Target`)."""

    data: Mapping[str, Any] = attrs.field(repr=False)
    targets: Mapping[str, Mapping[str, Target]] = attrs.field(repr=False)

    def parse(self, env: Mapping[str, str] | None = None) -> Config:
        """The checked :class:`~backupkit.config.Config` (a :class:`ConfigError` if not),
        read with *env* (``BACKUP_DIR``...; by default the process's environment)."""
        roles = make_plugin_manager().roles
        return Config.from_dict(self.data, env=env, origin=f"settings.{SETTING}", roles=roles)


def raw_setting(settings: Any) -> Mapping[str, Any]:
    """The ``BACKUPKIT`` setting itself, checked to be a mapping with ``sets``."""
    value = getattr(settings, SETTING, None)
    if value is None:
        raise SettingsError(f"settings.{SETTING} is not set; add a {SETTING} dict with at least one "
                            "backup set (see docs/django.md)", check_id="backupkit.E001")
    if not isinstance(value, Mapping):
        raise SettingsError(f"settings.{SETTING} must be a dict, got {type(value).__name__}",
                            check_id="backupkit.E002")
    return value


def set_bodies(settings: Any) -> Mapping[str, Any]:
    """The sets of the setting by name (an empty mapping when ``sets`` is not a table)."""
    sets = raw_setting(settings).get("sets")
    return sets if isinstance(sets, Mapping) else {}


def default_sources(settings: Any) -> list[dict[str, Any]]:
    """The sources of a set that names none: the ``default`` database, and the media
    files when ``MEDIA_ROOT`` is set."""
    sources: list[dict[str, Any]] = []
    if "default" in (getattr(settings, "DATABASES", None) or {}):
        sources.append({"type": DB_SOURCE, "alias": "default"})
    if getattr(settings, "MEDIA_ROOT", ""):
        sources.append({"type": MEDIA_SOURCE})
    return sources


def sources_of(body: Mapping[str, Any], settings: Any) -> Any:
    """A set's ``sources`` as written, or :func:`default_sources` when it gives none."""
    sources = body.get("sources")
    return default_sources(settings) if sources is None else sources


def source_where(set_name: str, index: int) -> str:
    """How messages name source *index* of set *set_name*."""
    return f"settings.{SETTING}: set {set_name!r}: sources[{index}]"


def build(settings: Any) -> DjangoConfig:
    """The backupkit configuration for *settings*: ``BACKUPKIT`` with its Django sources
    turned into backupkit ones (see the module's description)."""
    raw = raw_setting(settings)
    sets: dict[str, Any] = {}
    targets: dict[str, dict[str, Target]] = {}
    for name, body in set_bodies(settings).items():
        if not isinstance(body, Mapping):
            sets[name] = body  # Config.from_dict names the fault
            continue
        sources = sources_of(body, settings)
        if isinstance(sources, list):
            built = [expand_source(s, settings, source_where(name, i)) for i, s in enumerate(sources)]
            sources = [source for source, _ in built]
            targets[name] = {str(s["name"]): t for s, t in built if t is not None}
        sets[name] = {**body, "sources": sources}
    return DjangoConfig({**raw, "sets": sets}, targets)


def expand_source(entry: Any, settings: Any, where: str) -> tuple[Any, Target | None]:
    """A source entry as backupkit reads it, and where a restore puts it by default (a
    source that is not one of Django's passes through, without a default target)."""
    if isinstance(entry, str) and entry in (DB_SOURCE, MEDIA_SOURCE):
        entry = {"type": entry}
    if not isinstance(entry, Mapping) or entry.get("type") not in (DB_SOURCE, MEDIA_SOURCE):
        return entry, None
    params = {k: v for k, v in entry.items() if k not in ("type", "alias", "name")}
    if entry["type"] == MEDIA_SOURCE:
        root = getattr(settings, "MEDIA_ROOT", "")
        if not root:
            raise SettingsError(f"{where}: a {MEDIA_SOURCE} source needs settings.MEDIA_ROOT",
                                check_id="backupkit.E006")
        root = os.path.abspath(os.fspath(root))
        name = entry.get("name", "media")
        # The filesystem source stores MEDIA_ROOT under its base name: restore into its parent.
        source = {"type": "filesystem", "name": name, "paths": [root], **params}
        return source, Target(f"MEDIA_ROOT {root}", str(Path(root).parent))
    alias = entry.get("alias", "default")
    databases = getattr(settings, "DATABASES", None) or {}
    if alias not in databases:
        raise SettingsError(f"{where}: database alias {alias!r} is not in settings.DATABASES "
                            f"(aliases: {', '.join(map(str, databases)) or 'none'})", check_id="backupkit.E004")
    name = entry.get("name", "db" if alias == "default" else f"db-{alias}")
    db = databases[alias]
    engine = db.get("ENGINE", "")
    label = f"database {alias!r}"
    if engine in POSTGRES_ENGINES:
        connection = postgres_params(db, f"{where}: DATABASES[{alias!r}]")
        source = {"type": "postgres", "name": name, **connection, **params}
        return source, Target(label, postgres_url(connection))
    if engine in SQLITE_ENGINES:
        url = sqlite_url(db, f"{where}: DATABASES[{alias!r}]")
        return {"type": "json", "name": name, "url": url, **params}, Target(label, url)
    raise SettingsError(f"{where}: DATABASES[{alias!r}] uses ENGINE {engine!r}; backupkit backs up "
                        "PostgreSQL and SQLite databases (give another engine a source of its own)",
                        check_id="backupkit.E005")


def postgres_params(db: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The ``postgres`` source's connection parameters for a ``DATABASES`` entry, read the
    way Django's own ``dbshell`` reads it (the password stays a parameter, which the
    source hands to ``pg_dump`` in its environment only)."""
    options = db.get("OPTIONS") or {}
    for option, variable in _UNSUPPORTED_OPTIONS.items():
        if options.get(option):
            raise SettingsError(f"{where}: OPTIONS[{option!r}] is not passed on to pg_dump; set "
                                f"{variable} in the environment of the backup instead",
                                check_id="backupkit.E006")
    if not db.get("NAME"):
        raise SettingsError(f"{where} has no NAME", check_id="backupkit.E006")
    client = importlib.import_module("django.db.backends.postgresql.client").DatabaseClient
    args, env = client.settings_to_cmd_args_env({**db, "OPTIONS": options}, [])
    env = env or {}
    flags = {"-U": "user", "-h": "host", "-p": "port"}
    params: dict[str, Any] = {}
    rest = list(args[1:])  # psql [-U user] [-h host] [-p port] dbname
    while len(rest) > 1 and rest[0] in flags:
        flag, value, *rest = rest
        params[flags[flag]] = value
    params["dbname"] = rest[-1]
    if "port" in params:
        try:
            params["port"] = int(params["port"])
        except ValueError:
            raise SettingsError(f"{where}: PORT {params['port']!r} is not a number",
                                check_id="backupkit.E006") from None
    for variable, key in (("PGPASSWORD", "password"), ("PGSSLMODE", "sslmode"), ("PGPASSFILE", "passfile")):
        if env.get(variable):
            params[key] = env[variable]
    return params


def postgres_url(params: Mapping[str, Any]) -> str:
    """A ``postgresql://`` URL for :func:`postgres_params`' result: a restore target (its
    password is masked wherever backupkit reports a target)."""
    user, password = params.get("user") or "", params.get("password")
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    host = params.get("host") or ""
    query = {k: params[k] for k in ("sslmode", "passfile") if params.get(k)}
    if host.startswith("/"):  # a Unix socket directory
        query["host"], host = host, ""
    elif ":" in host:
        host = f"[{host}]"
    port = f":{params['port']}" if params.get("port") else ""
    at = "@" if auth else ""
    tail = f"?{urlencode(query)}" if query else ""
    return f"postgresql://{auth}{at}{host}{port}/{quote(params['dbname'], safe='')}{tail}"


def sqlite_url(db: Mapping[str, Any], where: str) -> str:
    """The ``sqlite:///`` URL of a SQLite ``DATABASES`` entry's file."""
    name = os.fspath(db.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        raise SettingsError(f"{where}: NAME must be the path of a SQLite file to back it up, got {name!r}",
                            check_id="backupkit.E006")
    return f"sqlite:///{os.path.abspath(name)}"


@attrs.frozen
class ApiSettings:
    """The ``BACKUPKIT_API`` setting of the JSON views: the bearer tokens, who among the
    logged-in users may call (``access(request) -> "read" | "admin" | None``; None: staff
    read, superusers admin) and how long download URLs stay valid."""

    tokens: Tokens = attrs.field(factory=Tokens, repr=False)
    access: Any = None
    url_expires: int = URL_EXPIRES


def api_settings(settings: Any, env: Mapping[str, str] | None = None) -> ApiSettings:
    """``BACKUPKIT_API`` (optional: ``{"tokens": ["id:token:scope", ...], "token_file": path,
    "access": callable or dotted path, "url_expires": seconds}``), with the tokens of
    ``BACKUPKIT_API_TOKENS`` and ``BACKUPKIT_API_TOKEN_FILE`` of *env* added."""
    where = f"settings.{API_SETTING}"
    value = getattr(settings, API_SETTING, None) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a dict, got {type(value).__name__}")
    unknown = sorted(set(value) - {"tokens", "token_file", "access", "url_expires"})
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; the keys are tokens, token_file, access, url_expires")
    entries = value.get("tokens", [])
    if isinstance(entries, str) or not all(isinstance(e, str) for e in entries):
        raise ConfigError(f"{where}['tokens'] must be a list of 'id:token:scope' strings")
    tokens = Tokens.parse(entries, f"{where}['tokens']").tokens
    tokens += Tokens.from_env(os.environ if env is None else env, value.get("token_file")).tokens
    access = value.get("access")
    if isinstance(access, str):
        try:
            access = importlib.import_module("django.utils.module_loading").import_string(access)
        except ImportError as exc:
            raise ConfigError(f"{where}['access']: cannot import {access!r}: {exc}") from None
    if access is not None and not callable(access):
        raise ConfigError(f"{where}['access'] must be a callable or its dotted path")
    expires = value.get("url_expires", URL_EXPIRES)
    if not isinstance(expires, int) or isinstance(expires, bool) or not 1 <= expires <= 7 * 24 * 3600:
        raise ConfigError(f"{where}['url_expires'] must be a number of seconds from 1 to 604800")
    return ApiSettings(Tokens(tokens), access, expires)
