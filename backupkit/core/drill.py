"""Restore drills as data: a set's drill settings, and the record a drill leaves in the
sink (pure: no clock, no I/O; the runner is :mod:`backupkit.engine.drill`).

A drill restores one backup into scratch targets and checks it; its
:class:`DrillRecord` says what was restored, how long each artifact took (the sum is the
measured RTO), which checks ran and how they ended. Records live at
``drills/<set>/<drill id>.json`` in the sink of the backup, beside the manifests but
outside the backups' keys: retention never reads them to keep or delete a backup, and
pruning a drilled backup leaves its record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from backupkit.errors import ConfigError, ManifestError, unknown_key

FORMAT = 1
PREFIX = "drills/"
_SETTINGS_KEYS = ("postgres_url", "sql", "command", "timeout")
#: Seconds a user check may run unless ``timeout`` says otherwise.
CHECK_TIMEOUT = 600


def _seconds(value: Any) -> float:
    """Seconds as stored: to the millisecond, so that a record reads back equal."""
    return round(float(value), 3)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _time(value: Any, what: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ManifestError(f"drill record: {what} {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ManifestError(f"drill record: {what} {value!r} has no time zone")
    return parsed


@attrs.frozen
class DrillSettings:
    """A set's ``drill`` table: where databases are drilled and the user's own checks.

    ``postgres_url``: a server on which the drill may create (and drop) a throwaway
    database; without it, a temporary local cluster is started from the PostgreSQL
    binaries. ``sql``: queries that must return true, each run on every restored
    database (PostgreSQL, or the database a JSON export went into). ``command``:
    commands (argument lists) that must exit 0, run with ``BACKUPKIT_DRILL_DIR`` and
    ``BACKUPKIT_DRILL_<ARTIFACT>`` (each scratch target) in their environment.
    """

    postgres_url: str | None = attrs.field(default=None, repr=False)
    sql: tuple[str, ...] = ()
    command: tuple[tuple[str, ...], ...] = ()
    timeout: int = CHECK_TIMEOUT

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> DrillSettings:
        """The settings of a ``drill`` table (one-line :class:`ConfigError` for a bad one)."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: 'drill' is a table (postgres_url, sql, command, timeout)")
        for key in raw:
            if key not in _SETTINGS_KEYS:
                raise unknown_key(f"{where}: drill", key, _SETTINGS_KEYS)
        url = raw.get("postgres_url")
        if url is not None and (not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://"))):
            raise ConfigError(f"{where}: drill: postgres_url must be a postgresql:// URL of a scratch server")
        sql = raw.get("sql", [])
        sql = [sql] if isinstance(sql, str) else sql
        if not isinstance(sql, list) or not all(isinstance(q, str) and q.strip() for q in sql):
            raise ConfigError(f"{where}: drill: sql is a query or a list of queries that return true")
        command = raw.get("command", [])
        if isinstance(command, list) and command and all(isinstance(c, str) for c in command):
            command = [command]  # one command, as an argument list
        if not isinstance(command, list) or not all(
                isinstance(c, list) and c and all(isinstance(a, str) for a in c) for c in command):
            raise ConfigError(f"{where}: drill: command is an argument list (\"./check.sh\", \"--quick\") "
                              "or a list of them")
        timeout = raw.get("timeout", CHECK_TIMEOUT)
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
            raise ConfigError(f"{where}: drill: timeout is a whole number of seconds >= 1")
        return cls(url, tuple(sql), tuple(tuple(c) for c in command), timeout)


@attrs.frozen
class ArtifactDrill:
    """One artifact of a drilled backup: where it went, how long it took, what was checked."""

    name: str
    source: str
    seconds: float = attrs.field(converter=_seconds)
    bytes: int
    ok: bool
    target: str = ""  # for people, without a password: "temporary redis-server", "database drill_..."
    checks: Mapping[str, Any] = attrs.field(factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON."""
        return {"name": self.name, "source": self.source, "seconds": self.seconds,
                "bytes": self.bytes, "ok": self.ok, "target": self.target, "checks": dict(self.checks),
                "error": self.error}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ArtifactDrill:
        """The inverse of :meth:`to_dict`."""
        return cls(str(raw["name"]), str(raw["source"]), float(raw["seconds"]), int(raw["bytes"]),
                   bool(raw["ok"]), str(raw.get("target", "")), dict(raw.get("checks") or {}), raw.get("error"))


@attrs.frozen
class CheckResult:
    """One check of a drill beyond the restore's own: a user's SQL query or command."""

    name: str  # "sql on db: SELECT ...", "command: ./check.sh"
    ok: bool
    seconds: float = attrs.field(converter=_seconds)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON."""
        return {"name": self.name, "ok": self.ok, "seconds": self.seconds, "detail": self.detail}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CheckResult:
        """The inverse of :meth:`to_dict`."""
        return cls(str(raw["name"]), bool(raw["ok"]), float(raw["seconds"]), str(raw.get("detail", "")))


@attrs.frozen
class DrillRecord:
    """What one drill did and found (``drills/<set>/<id>.json``)."""

    drill_id: str
    set_name: str
    backup_id: str
    started_at: dt.datetime
    seconds: float = attrs.field(converter=_seconds)  # the whole drill, restore and checks: the measured RTO
    ok: bool
    artifacts: tuple[ArtifactDrill, ...] = ()
    checks: tuple[CheckResult, ...] = ()
    error: str | None = None
    host: str = ""
    version: str = ""
    backup_started_at: dt.datetime | None = None
    sink: str = ""

    @property
    def key(self) -> str:
        """Where the record is stored in its sink."""
        return record_key(self.set_name, self.drill_id)

    @property
    def bytes(self) -> int:
        """Stored bytes read by the drill."""
        return sum(a.bytes for a in self.artifacts)

    @property
    def restore_seconds(self) -> float:
        """The artifacts' restore times together."""
        return sum(a.seconds for a in self.artifacts)

    @property
    def finished_at(self) -> dt.datetime:
        """When the drill ended."""
        return self.started_at + dt.timedelta(seconds=self.seconds)

    def failures(self) -> list[str]:
        """What failed, for people: ``artifact db: ...``, ``check sql on db: ...``."""
        found = [f"artifact {a.name}: {a.error or 'failed'}" for a in self.artifacts if not a.ok]
        found += [f"check {c.name}: {c.detail or 'failed'}" for c in self.checks if not c.ok]
        if self.error and not found:
            found.append(self.error)
        return found

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON (the stored record)."""
        return {"format": FORMAT, "drill_id": self.drill_id, "set": self.set_name, "backup_id": self.backup_id,
                "backup_started_at": _iso(self.backup_started_at) if self.backup_started_at else None,
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
                "seconds": self.seconds, "restore_seconds": round(self.restore_seconds, 3),
                "bytes": self.bytes, "ok": self.ok, "error": self.error,
                "artifacts": [a.to_dict() for a in self.artifacts], "checks": [c.to_dict() for c in self.checks],
                "host": self.host, "backupkit_version": self.version, "sink": self.sink}

    @classmethod
    def from_dict(cls, raw: Any) -> DrillRecord:
        """A stored record (:class:`ManifestError` for one that is not)."""
        if not isinstance(raw, Mapping) or raw.get("format") != FORMAT:
            found = raw.get("format") if isinstance(raw, Mapping) else type(raw).__name__
            raise ManifestError(f"drill record: format {found!r} is not {FORMAT}; a newer backupkit wrote it?")
        try:
            backup_at = raw.get("backup_started_at")
            return cls(
                str(raw["drill_id"]), str(raw["set"]), str(raw["backup_id"]),
                _time(raw["started_at"], "started_at"), float(raw["seconds"]), bool(raw["ok"]),
                tuple(ArtifactDrill.from_dict(a) for a in raw.get("artifacts", [])),
                tuple(CheckResult.from_dict(c) for c in raw.get("checks", [])),
                raw.get("error"), str(raw.get("host", "")), str(raw.get("backupkit_version", "")),
                _time(backup_at, "backup_started_at") if backup_at else None, str(raw.get("sink", "")))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ManifestError):
                raise
            raise ManifestError(f"drill record {raw.get('drill_id', '?')!r} is damaged ({exc!r})") from None


def record_key(set_name: str, drill_id: str) -> str:
    """``drills/<set>/<drill id>.json``."""
    return f"{PREFIX}{set_name}/{drill_id}.json"


def latest(records: Sequence[DrillRecord], set_name: str | None = None) -> DrillRecord | None:
    """The newest record (of *set_name*), by start time."""
    chosen = [r for r in records if set_name is None or r.set_name == set_name]
    return max(chosen, key=lambda r: (r.started_at, r.drill_id), default=None)
