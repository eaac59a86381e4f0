"""Manifests: the record of one backup run, written last, read by the catalog.

A manifest is JSON with a ``format`` version. It lists every artifact the run
stored with the source that produced it, the ordered transform chain that was
applied (compression before encryption), and two checksums: of the raw stream the
source produced and of the bytes the sink stored. It never holds secrets: source
and transform parameters are passed through :func:`public_params` by the plugins
before they reach it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from backupkit.errors import ManifestError

FORMAT_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
KINDS = ("full", "incremental")
Kind = Literal["full", "incremental"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6,32}$")


def _frozen_params(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(value)


@attrs.frozen
class PluginSpec:
    """A plugin id with the non-secret parameters it was used with."""

    id: str
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_params)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for the manifest's JSON."""
        return {"id": self.id, "params": dict(self.params)}


@attrs.frozen
class Artifact:
    """One stored stream: what produced it, how it was transformed, where it is."""

    name: str
    source: PluginSpec
    transforms: tuple[PluginSpec, ...]
    key: str
    raw_size: int
    stored_size: int
    raw_sha256: str
    stored_sha256: str
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_params)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for the manifest's JSON."""
        return {
            "name": self.name,
            "source": self.source.to_dict(),
            "transforms": [t.to_dict() for t in self.transforms],
            "key": self.key,
            "raw_size": self.raw_size,
            "stored_size": self.stored_size,
            "raw_sha256": self.raw_sha256,
            "stored_sha256": self.stored_sha256,
            "extra": dict(self.extra),
        }


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("created_at must be timezone-aware")
    return value.astimezone(dt.UTC)


@attrs.frozen
class Manifest:
    """The record of one backup run; the unit the catalog, retention and restore work on."""

    id: str
    set_name: str
    created_at: dt.datetime = attrs.field(converter=_utc)
    kind: Kind
    hostname: str
    tool_version: str
    artifacts: tuple[Artifact, ...]
    parent_id: str | None = None
    reason: str = "manual"
    tags: tuple[str, ...] = ()
    tier: str = "daily"
    duration_seconds: float = 0.0
    format: int = FORMAT_VERSION

    @property
    def raw_size(self) -> int:
        """The bytes read from every source, sidecars included."""
        return sum(a.raw_size for a in self.artifacts)

    @property
    def stored_size(self) -> int:
        """The bytes stored for every artifact, sidecars included."""
        return sum(a.stored_size for a in self.artifacts)

    def artifact(self, name: str) -> Artifact:
        """The artifact named *name*; a :class:`ManifestError` if there is none."""
        for artifact in self.artifacts:
            if artifact.name == name:
                return artifact
        names = ", ".join(a.name for a in self.artifacts) or "none"
        raise ManifestError(
            f"backup {self.id} has no artifact named {name!r}; it has: {names}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain dict, as the manifest's JSON holds it."""
        return {
            "format": self.format,
            "id": self.id,
            "set": self.set_name,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "kind": self.kind,
            "parent_id": self.parent_id,
            "hostname": self.hostname,
            "reason": self.reason,
            "tags": list(self.tags),
            "tier": self.tier,
            "tool_version": self.tool_version,
            "duration_seconds": self.duration_seconds,
            "artifacts": [a.to_dict() for a in self.artifacts],
        }

    def to_json(self) -> bytes:
        """The manifest as stored: UTF-8 JSON, one trailing newline."""
        return (json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | str, *, origin: str = "<manifest>") -> Manifest:
        """Parse a manifest; any defect raises :class:`ManifestError` naming *origin*."""
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(
                f"manifest {origin} is not valid JSON (truncated or corrupt): {exc}; "
                "restore it from another copy or delete it"
            ) from None
        return cls.from_dict(obj, origin=origin)

    @classmethod
    def from_dict(cls, obj: Any, *, origin: str = "<manifest>") -> Manifest:
        """A manifest from its JSON's dict; every defect is a :class:`ManifestError` naming *origin*."""
        reader = _Reader(origin)
        if not isinstance(obj, dict):
            reader.fail("top level", "must be a JSON object")
        fmt = obj.get("format")
        if fmt != FORMAT_VERSION:
            raise ManifestError(
                f"manifest {origin} has format version {fmt!r}, this backupkit reads "
                f"version {FORMAT_VERSION}; upgrade backupkit to read it"
            )
        kind = reader.choice(obj, "kind", KINDS)
        artifacts_raw = reader.get(obj, "artifacts", list)
        artifacts = tuple(
            reader.artifact(a, f"artifacts[{i}]") for i, a in enumerate(artifacts_raw)
        )
        manifest_id = reader.get(obj, "id", str)
        if not _ID.match(manifest_id):
            reader.fail("id", f"{manifest_id!r} is not a backup id")
        tags = reader.get(obj, "tags", list, default=[])
        if not all(isinstance(t, str) for t in tags):
            reader.fail("tags", "must be a list of strings")
        duration = obj.get("duration_seconds", 0.0)
        if not isinstance(duration, (int, float)) or isinstance(duration, bool):
            reader.fail("duration_seconds", "must be a number")
        return cls(
            id=manifest_id,
            set_name=reader.get(obj, "set", str),
            created_at=reader.timestamp(obj, "created_at"),
            kind=kind,  # type: ignore[arg-type]
            parent_id=reader.get(obj, "parent_id", str, optional=True),
            hostname=reader.get(obj, "hostname", str),
            reason=reader.get(obj, "reason", str, default="manual"),
            tags=tuple(tags),
            tier=reader.get(obj, "tier", str, default="daily"),
            tool_version=reader.get(obj, "tool_version", str),
            duration_seconds=float(duration),
            artifacts=artifacts,
        )


_MISSING = object()


class _Reader:
    """Field access that turns every defect into a ManifestError naming the file."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, field: str, problem: str) -> Any:
        raise ManifestError(
            f"manifest {self.origin}: field {field!r} {problem}; the file is damaged "
            "or was not written by backupkit"
        )

    def get(
        self,
        obj: Mapping[str, Any],
        field: str,
        typ: type,
        *,
        optional: bool = False,
        default: Any = _MISSING,
        where: str = "",
    ) -> Any:
        label = f"{where}.{field}" if where else field
        if field not in obj:
            if default is not _MISSING:
                return default
            if optional:
                return None
            self.fail(label, "is missing")
        value = obj[field]
        if value is None and optional:
            return None
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            self.fail(label, f"must be of type {typ.__name__}, got {type(value).__name__}")
        return value

    def choice(self, obj: Mapping[str, Any], field: str, choices: tuple[str, ...]) -> str:
        value: str = self.get(obj, field, str)
        if value not in choices:
            self.fail(field, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def timestamp(self, obj: Mapping[str, Any], field: str) -> dt.datetime:
        text: str = self.get(obj, field, str)
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return self.fail(field, f"is not an ISO 8601 timestamp: {text!r}")  # type: ignore[no-any-return]
        if value.tzinfo is None:
            self.fail(field, "must carry a time zone")
        try:
            return value.astimezone(dt.UTC)
        except (ValueError, OverflowError):  # 0001-01-01T00:30+01:00 is before year 1 in UTC
            return self.fail(field, f"is out of range: {text!r}")  # type: ignore[no-any-return]

    def spec(self, obj: Any, where: str) -> PluginSpec:
        if not isinstance(obj, dict):
            self.fail(where, "must be an object")
        params = self.get(obj, "params", dict, default={}, where=where)
        return PluginSpec(id=self.get(obj, "id", str, where=where), params=params)

    def artifact(self, obj: Any, where: str) -> Artifact:
        if not isinstance(obj, dict):
            self.fail(where, "must be an object")
        transforms = self.get(obj, "transforms", list, where=where)
        sizes = {
            f: self.get(obj, f, int, where=where) for f in ("raw_size", "stored_size")
        }
        for field, size in sizes.items():
            if size < 0:
                self.fail(f"{where}.{field}", "must not be negative")
        digests = {
            f: self.get(obj, f, str, where=where) for f in ("raw_sha256", "stored_sha256")
        }
        for field, digest in digests.items():
            if not _SHA256.match(digest):
                self.fail(f"{where}.{field}", "must be 64 lowercase hex digits")
        return Artifact(
            name=self.get(obj, "name", str, where=where),
            source=self.spec(obj.get("source"), f"{where}.source"),
            transforms=tuple(
                self.spec(t, f"{where}.transforms[{i}]") for i, t in enumerate(transforms)
            ),
            key=self.get(obj, "key", str, where=where),
            raw_size=sizes["raw_size"],
            stored_size=sizes["stored_size"],
            raw_sha256=digests["raw_sha256"],
            stored_sha256=digests["stored_sha256"],
            extra=self.get(obj, "extra", dict, default={}, where=where),
        )


def backup_id(created_at: dt.datetime, token: str) -> str:
    """The id of a backup made at *created_at* (UTC) with a random hex *token*."""
    return f"{format_timestamp(created_at)}-{token}"


def format_timestamp(value: dt.datetime) -> str:
    """Compact UTC timestamp used in ids and file names: ``20240101T020000Z``."""
    return _utc(value).strftime("%Y%m%dT%H%M%SZ")
