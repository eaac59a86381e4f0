"""Download URLs: an expiring GET URL for a stored artifact, from sinks that can sign."""

from __future__ import annotations

from backupkit.core.manifest import MANIFEST_SUFFIX
from backupkit.core.restore import plan_restore
from backupkit.engine.parts import Parts
from backupkit.engine.resolve import is_location, is_sidecar, manifest_at, restore_target
from backupkit.engine.scan import scan
from backupkit.errors import ConfigError


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
        chosen = manifest.artifact(artifact)
    return sink.presign(chosen.key, expires=expires)
