"""Download URLs: an expiring GET URL for a stored artifact, from sinks that can sign."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from backupkit.core.manifest import MANIFEST_SUFFIX
from backupkit.core.restore import plan_restore
from backupkit.engine.parts import Parts
from backupkit.engine.resolve import (
    is_location,
    is_sidecar,
    manifest_at,
    named_artifact,
    restore_target,
)
from backupkit.engine.scan import scan
from backupkit.errors import ConfigError, NotFoundError
from backupkit.params import strip_userinfo


def presigned_url(
    parts: Parts,
    ref: str,
    artifact: str | None = None,
    *,
    expires: int = 3600,
    set_name: str | None = None,
) -> str:
    """An expiring GET URL for an artifact of backup *ref*.

    :param ref: ``latest``, a backup id or unique prefix, the URL of a manifest, or
        the URL of any stored object (``s3://bucket/key``), which is signed as is.
    :param artifact: the artifact's name; may be left out if the backup has one.
    :param expires: seconds the URL stays valid (the S3 sink allows up to 7 days).
    """
    if is_location(ref) and not ref.endswith(MANIFEST_SUFFIX):
        directory, _, name = ref.rpartition("/")
        return parts.sink_for(directory).presign(name, expires=expires)
    if is_location(ref):
        manifest, sink = manifest_at(parts, ref)
    else:
        found = scan(parts.sinks(), parts.keyring)
        manifest = plan_restore(found.catalog, target=restore_target(ref), set_name=set_name).chain[-1]
        sink = found.owner[manifest.id]
    if artifact is None:
        data = [a for a in manifest.artifacts if not is_sidecar(a)]
        if len(data) != 1:
            names = ", ".join(a.name for a in data) or "none"
            raise ConfigError(
                f"backup {manifest.id} has {len(data)} artifacts ({names}); name one with --artifact"
            )
        chosen = data[0]
    else:
        chosen = named_artifact(manifest, artifact)
    return sink.presign(chosen.key, expires=expires)


@attrs.frozen
class DownloadUrl:
    """An expiring URL for one catalogued artifact."""

    url: str = attrs.field(repr=False)  # carries a signature: never logged
    path: str
    backup_id: str
    artifact: str
    expires_seconds: int
    expires_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        return {"url": self.url, "path": self.path, "backup_id": self.backup_id,
                "artifact": self.artifact, "expires_seconds": self.expires_seconds,
                "expires_at": self.expires_at.isoformat().replace("+00:00", "Z")}


def _join(location: str, key: str) -> str:
    return f"{location.rstrip('/')}/{key}"


def stored_backups(parts: Parts) -> list[dict[str, Any]]:
    """Every catalogued backup of the configured sets with where each artifact is stored
    (the ``path`` a download URL is asked for with), oldest first."""
    found = scan(parts.sinks(), parts.keyring)
    rows = []
    for record, manifest in zip(found.catalog.to_records(), found.catalog.manifests, strict=True):
        location = found.owner[manifest.id].location
        rows.append({**record, "artifacts": [
            {"name": a.name, "path": _join(location, a.key), "stored_size": a.stored_size}
            for a in manifest.artifacts if not is_sidecar(a)]})
    return rows


def catalogued_url(parts: Parts, path: str, *, expires: int) -> DownloadUrl:
    """A download URL for *path* only if it is an artifact of a catalogued backup in a
    configured set's sink: never for another bucket, another key, or a sink's own records
    (claims, audit entries, logs)."""
    owners = [s for s in parts.sinks() if path.startswith(s.location.rstrip("/") + "/")]
    if not owners:
        raise NotFoundError(f"{strip_userinfo(path)} is not in the sink of a configured set; "
                          "ask for the path of a listed backup's artifact")
    found = scan(owners, parts.keyring)
    for manifest in found.catalog.manifests:
        sink = found.owner[manifest.id]
        for artifact in manifest.artifacts:
            if _join(sink.location, artifact.key) == path and not is_sidecar(artifact):
                url = sink.presign(artifact.key, expires=expires)
                return DownloadUrl(url, path, manifest.id, artifact.name, expires,
                                   parts.clock().astimezone(dt.UTC) + dt.timedelta(seconds=expires))
    raise NotFoundError(f"{strip_userinfo(path)} is no artifact of a catalogued backup; "
                        "list the backups to see their paths")
