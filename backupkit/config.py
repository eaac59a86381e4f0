"""Configuration: backup sets, their sources, transforms and sink.

A configuration comes from a dict (notebooks, host apps), a TOML file
(``backupkit.toml``) or the ad-hoc command line. The standard environment variables
fill in what the file leaves out: ``BACKUP_DIR`` is the sink of a set that names
none. Unknown keys are refused with a one-line error naming them; plugin
parameters are checked by the plugins themselves when the engine builds them.

::

    [sets.app]
    sink = "/var/backups/app"              # or { type = "local", root = "..." }
    compress = "zstd"                       # zstd | gzip | none (or a transforms list)
    encrypt = true                          # add 'aes' after compression (BACKUP_ENCRYPTION)
    tags = ["prod"]

    [[sets.app.sources]]
    type = "filesystem"
    name = "files"                          # artifact name; defaults to the type
    paths = ["/srv/app/media", "/srv/app/config"]
    exclude = ["*.pyc", "__pycache__"]
"""

from __future__ import annotations

import datetime as dt
import os
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from backupkit.core.drill import DrillSettings
from backupkit.core.durations import parse_interval
from backupkit.core.retention import TIER_AGES, RetentionPolicy
from backupkit.core.schedule import Job, enabled, parse_schedule
from backupkit.crypto.keys import looks_like_key
from backupkit.errors import ConfigError, unknown_key
from backupkit.params import redacted_repr
from backupkit.plugins import Roles, builtin_roles

CONFIG_FILENAME = "backupkit.toml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

_TOP_KEYS = ("sets", "hostname", "key_file", "timezone", "plugins")
_SET_KEYS = (
    "sources", "transforms", "compress", "encrypt", "encrypt_manifest", "sink", "hostname", "tags",
    "retention", "schedule", "rpo", "rto", "drill",
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _key_file_repr(value: str | None) -> str:
    return repr("***" if value is not None and looks_like_key(value) else value)


# The reprs of the classes below hide secrets (hosts log configurations and engines, and
# tracebacks print locals): parameters whose names look secret, URL passwords, a key given
# as key_file. Plugins hide their own secret fields once built (params.secret).
@attrs.frozen
class PluginRef:
    """A plugin id and the parameters to build it with (checked by the plugin)."""

    id: str
    params: Mapping[str, Any] = attrs.field(factory=dict, repr=redacted_repr)
    name: str | None = None


@attrs.frozen
class SetConfig:
    """One backup set: what to read, how to transform it, where to store it."""

    name: str
    sources: tuple[PluginRef, ...]
    transforms: tuple[PluginRef, ...]
    sink: PluginRef | str = attrs.field(repr=redacted_repr)
    hostname: str | None = None
    tags: tuple[str, ...] = ()
    encrypt_manifest: bool = False  # seal the manifest body with the encryption key too
    retention: RetentionPolicy | None = None  # None: default_policy(env) at prune time
    schedule: tuple[Job, ...] = ()  # see backupkit.core.schedule
    #: The recovery point objective: the newest good backup may be this old at most.
    rpo: dt.timedelta | None = None
    #: The recovery time objective: a drill's restore may take this long at most.
    rto: dt.timedelta | None = None
    drill: DrillSettings = attrs.field(factory=DrillSettings, repr=False)  # see backupkit.core.drill


@attrs.frozen
class Config:
    """Every backup set, and a sink to read when no set is configured."""

    sets: Mapping[str, SetConfig] = attrs.field(factory=dict)
    sink: PluginRef | str | None = attrs.field(default=None, repr=redacted_repr)
    key_file: str | None = attrs.field(default=None, repr=_key_file_repr)  # see backupkit.crypto.keys
    timezone: str = "UTC"  # calendar buckets and tiers are counted in it
    #: ``BACKUP_RETENTION_DAYS`` of the environment the configuration was read with:
    #: checked only when a default policy is needed (:attr:`default_retention`).
    retention_days: str = ""
    #: ``BACKUP_ENABLED`` of that environment: ``false`` refuses backups unless forced.
    backups_enabled: bool = True
    #: ``[plugins.<name>]`` tables, for plugins built per engine (``backupkit_engine_plugins``).
    plugin_settings: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def default_retention(self) -> RetentionPolicy:
        """The policy of a set that configures none (see :func:`default_policy`)."""
        return default_policy({"BACKUP_RETENTION_DAYS": self.retention_days})

    @property
    def tz(self) -> dt.tzinfo:
        """The configuration's time zone, in which calendar buckets and tiers are counted."""
        return zoneinfo.ZoneInfo(self.timezone)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        env: Mapping[str, str] | None = None,
        origin: str = "config",
        roles: Roles | None = None,
    ) -> Config:
        """The configuration in *data* (a dict, or a parsed TOML file).

        :param roles: what the engine's transforms do (``Plugins.roles``); by default the
            built-in transforms': ``compress`` and ``encrypt`` name a stage, not a plugin.
        """
        env = os.environ if env is None else env
        roles = roles or builtin_roles()
        _check_keys(data, _TOP_KEYS, origin)
        sets_raw = data.get("sets", {})
        if not isinstance(sets_raw, Mapping) or not sets_raw:
            raise ConfigError(f"{origin}: 'sets' must be a table with at least one backup set")
        default_host = _opt_str(data, "hostname", origin)
        sets = {
            name: _parse_set(name, body, env, f"{origin}: set {name!r}", default_host, roles)
            for name, body in sets_raw.items()
        }
        timezone = _opt_str(data, "timezone", origin) or "UTC"
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{origin}: timezone {timezone!r} is not a known time zone; use a name like "
                "'UTC' or 'Europe/Berlin'"
            ) from None
        settings = data.get("plugins", {})
        if not isinstance(settings, Mapping) or not all(isinstance(v, Mapping) for v in settings.values()):
            raise ConfigError(f"{origin}: 'plugins' holds tables, one per plugin: [plugins.alerts]")
        return cls(sets=sets, key_file=_opt_str(data, "key_file", origin), timezone=timezone,
                   retention_days=env.get("BACKUP_RETENTION_DAYS", ""), backups_enabled=enabled(env),
                   plugin_settings=dict(settings))

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        env: Mapping[str, str] | None = None,
        roles: Roles | None = None,
    ) -> Config:
        """The configuration in the TOML file at *path* (see :meth:`from_dict`)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist; create it or pass --config") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        text = _decoded(raw, path)
        import tomllib  # only for a config file

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        config = cls.from_dict(data, env=env, origin=str(path), roles=roles)
        if config.key_file is None:
            return config
        # A relative key_file is next to the config file, wherever cron or systemd runs from.
        key_file = os.path.abspath(os.path.join(path.parent, config.key_file))
        if looks_like_key(config.key_file) and not os.path.exists(key_file):
            return config  # a key, not a path: refused without showing it when keys are read
        return attrs.evolve(config, key_file=key_file)

    @classmethod
    def adhoc(
        cls,
        *,
        sources: list[str],
        sink: str | None,
        compress: str | bool = True,
        name: str = "default",
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
        encrypt: bool = False,
        roles: Roles | None = None,
    ) -> Config:
        """The configuration the ad-hoc command line describes (*compress* ``True``: the
        default compression)."""
        env = os.environ if env is None else env
        if not sources:
            raise ConfigError("nothing to back up; pass --source PATH (or use a config file)")
        params: dict[str, Any] = {"paths": list(sources)}
        if include:
            params["include"] = list(include)
        if exclude:
            params["exclude"] = list(exclude)
        body: dict[str, Any] = {
            "sources": [{"type": "filesystem", "name": "files", **params}],
            "compress": compress,
        }
        if sink is not None:
            body["sink"] = sink
        if encrypt:  # otherwise BACKUP_ENCRYPTION decides
            body["encrypt"] = True
        sets = {name: _parse_set(name, body, env, f"set {name!r}", None, roles or builtin_roles())}
        return cls(sets=sets, retention_days=env.get("BACKUP_RETENTION_DAYS", ""),
                   backups_enabled=enabled(env))

    @classmethod
    def for_sink(cls, sink: str | None, *, env: Mapping[str, str] | None = None) -> Config:
        """Only a sink to read (list, status, restore, verify without a config file)."""
        env = os.environ if env is None else env
        location = sink or env.get("BACKUP_DIR")
        if not location:
            raise ConfigError("no sink given; pass --sink DIR|URL, set BACKUP_DIR, or use --config")
        return cls(sink=location, retention_days=env.get("BACKUP_RETENTION_DAYS", ""),
                   backups_enabled=enabled(env))

    def get_set(self, name: str | None) -> SetConfig:
        """The set *name*; with ``None``, the only configured set (an error if there are several)."""
        if name is None:
            if len(self.sets) == 1:
                return next(iter(self.sets.values()))
            if not self.sets:
                raise ConfigError("no backup set is configured; pass --source or use a config file")
            raise ConfigError(
                f"several backup sets are configured ({', '.join(self.sets)}); name one with --set"
            )
        try:
            return self.sets[name]
        except KeyError:
            raise ConfigError(
                f"unknown backup set {name!r}; configured sets: {', '.join(self.sets) or 'none'}"
            ) from None


def _check_keys(data: Any, allowed: tuple[str, ...], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table")
    for key in data:
        if key not in allowed:
            raise unknown_key(where, key, allowed)


def _opt_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: {key!r} must be a string")
    return value


def _plugin_ref(entry: Any, where: str, *, named: bool) -> PluginRef:
    if isinstance(entry, str):
        return PluginRef(id=entry)
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a table with a 'type' key")
    params = dict(entry)
    plugin_id = params.pop("type", None)
    if not isinstance(plugin_id, str) or not plugin_id:
        raise ConfigError(f"{where} needs a 'type' naming its plugin")
    name = params.pop("name", None) if named else None
    if name is not None and (not isinstance(name, str) or not _NAME.match(name)):
        raise ConfigError(f"{where}: name {name!r} must be letters, digits, '.', '_' or '-'")
    return PluginRef(id=plugin_id, params=params, name=name)


def _parse_set(
    name: str,
    body: Any,
    env: Mapping[str, str],
    where: str,
    default_host: str | None,
    roles: Roles,
) -> SetConfig:
    if not _NAME.match(name) or "_" in name:
        raise ConfigError(f"{where}: set names use letters, digits, '.' and '-' only")
    _check_keys(body, _SET_KEYS, where)
    sources_raw = body.get("sources")
    if not isinstance(sources_raw, list) or not sources_raw:
        raise ConfigError(f"{where}: 'sources' must list at least one source")
    sources = tuple(
        _plugin_ref(s, f"{where}: sources[{i}]", named=True) for i, s in enumerate(sources_raw)
    )
    names = [s.name or s.id for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: two sources are named {dupes[0]!r}; give each a unique 'name'")
    if "compress" in body and "transforms" in body:
        raise ConfigError(f"{where}: give either 'compress' or 'transforms', not both")
    if "transforms" in body:
        raw = body["transforms"]
        if not isinstance(raw, list):
            raise ConfigError(f"{where}: 'transforms' must be a list")
        transforms = tuple(
            _plugin_ref(t, f"{where}: transforms[{i}]", named=False) for i, t in enumerate(raw)
        )
    else:
        compress = body.get("compress", True)
        if compress is True:
            compress = roles.default("compress") or "none"
        if compress is False:
            compress = "none"
        choices = compress_choices(roles)
        if compress not in choices:
            raise ConfigError(
                f"{where}: compress must be one of {', '.join(choices)}, got {compress!r}"
            )
        transforms = () if compress == "none" else (PluginRef(id=compress),)
    encrypt = body.get("encrypt")
    if encrypt is None:
        encrypt = _env_flag(env, "BACKUP_ENCRYPTION")
    if not isinstance(encrypt, bool):
        raise ConfigError(f"{where}: 'encrypt' must be true or false, got {encrypt!r}")
    if encrypt and not roles.encrypts(transforms):
        encryption = roles.default("encrypt")
        if encryption is None:
            raise ConfigError(
                f"{where}: encryption is asked for, but no encryption plugin is loaded "
                "(is backupkit's aes plugin blocked?)"
            )
        transforms = (*transforms, PluginRef(id=encryption))  # last: compress, then encrypt
    encrypt_manifest = body.get("encrypt_manifest", False)
    if not isinstance(encrypt_manifest, bool):
        raise ConfigError(f"{where}: 'encrypt_manifest' must be true or false")
    if encrypt_manifest and not roles.encrypts(transforms):
        raise ConfigError(f"{where}: 'encrypt_manifest' needs encryption; add encrypt = true")
    sink_raw = body.get("sink", env.get("BACKUP_DIR"))
    if sink_raw is None:
        raise ConfigError(f"{where} has no sink; add sink = \"DIR or URL\" or set BACKUP_DIR")
    sink: PluginRef | str
    if isinstance(sink_raw, str):
        sink = sink_raw
    else:
        sink = _plugin_ref(sink_raw, f"{where}: sink", named=False)
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ConfigError(f"{where}: 'tags' must be a list of strings")
    schedule = parse_schedule(name, body.get("schedule"), env, where)
    return SetConfig(
        name=name,
        sources=sources,
        transforms=transforms,
        sink=sink,
        hostname=_opt_str(body, "hostname", where) or default_host,
        tags=tuple(tags),
        encrypt_manifest=encrypt_manifest,
        retention=_retention(body, where),
        schedule=schedule,
        rpo=_objective(body, "rpo", where),
        rto=_objective(body, "rto", where),
        drill=DrillSettings.from_dict(body.get("drill"), where),
    )


def _decoded(raw: bytes, path: Path) -> str:
    """The text of a config file, which TOML says is UTF-8 (a UTF-8 BOM is allowed)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"config file {path} is UTF-16 (it starts with a UTF-16 byte order mark); "
                          "TOML files are UTF-8: save it as UTF-8")
    if b"\x00" in raw:
        at = raw.index(b"\x00")
        line = raw[:at].count(b"\n") + 1
        raise ConfigError(f"config file {path} holds a NUL byte at byte {at} (line {line}), "
                          "as UTF-16 text does; TOML files are UTF-8: save it as UTF-8")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"config file {path} is not UTF-8: byte {exc.start} (line {line}) is "
                          f"0x{raw[exc.start]:02x}; TOML files are UTF-8: save it as UTF-8") from None


def _objective(body: Mapping[str, Any], key: str, where: str) -> dt.timedelta | None:
    raw = body.get(key)
    if raw is None:
        return None
    try:
        return parse_interval(raw)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from None


def _retention(body: Mapping[str, Any], where: str) -> RetentionPolicy | None:
    raw = body.get("retention")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: 'retention' must be a table of rules")
    return RetentionPolicy.from_dict(raw, origin=f"{where}: retention")


def default_policy(env: Mapping[str, str] | None = None) -> RetentionPolicy:
    """The policy of a set that configures none: the standard tiers (daily 7 days,
    weekly 30, monthly 365, incrementals 24 hours), plus everything younger than
    ``BACKUP_RETENTION_DAYS`` days when that is set in *env* (by default the process's
    environment)."""
    env = os.environ if env is None else env
    raw = env.get("BACKUP_RETENTION_DAYS", "").strip()
    if not raw:
        return RetentionPolicy(tier_ages=TIER_AGES)
    try:
        days = int(raw)
        if days < 1:
            raise ValueError
    except ValueError:
        raise ConfigError(f"BACKUP_RETENTION_DAYS must be a whole number of days, got {raw!r}") from None
    return RetentionPolicy(tier_ages=TIER_AGES, keep_within=dt.timedelta(days=days))


def _env_flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise ConfigError(f"{name} must be true or false, got {env[name]!r}")


def find_config_file(explicit: str | None, cwd: Path | None = None) -> Path | None:
    """``--config FILE`` if given, else ``backupkit.toml`` in the working directory."""
    if explicit:
        return Path(explicit)
    candidate = (cwd or Path.cwd()) / CONFIG_FILENAME
    return candidate if candidate.is_file() else None


def compress_choices(roles: Roles | None = None) -> tuple[str, ...]:
    """What ``compress`` accepts: the compression transforms (the default first), ``none``."""
    return (*(roles or builtin_roles()).of_stage("compress"), "none")
