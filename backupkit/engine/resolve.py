"""From what a user names (``latest``, an id or prefix, a time, a manifest's URL) to
the backups and the sinks that hold them."""

from __future__ import annotations

import datetime as dt
import posixpath

from backupkit.core.manifest import MANIFEST_SUFFIX, Artifact, Manifest
from backupkit.crypto.sealed import open_manifest
from backupkit.engine.parts import Parts
from backupkit.engine.scan import CatalogScan, scan
from backupkit.errors import ConfigError, NotFoundError
from backupkit.plugin import Sink


def restore_target(ref: str) -> str | dt.datetime:
    """A backup id, prefix or 'latest' as is; an ISO 8601 time with a zone as a datetime."""
    if "-" in ref[:11] and ":" in ref:  # 2024-01-05T12:00Z, 2024-01-05 12:00:00+01:00
        try:
            when = dt.datetime.fromisoformat(ref.replace("Z", "+00:00"))
        except ValueError:
            return ref
        if when.tzinfo is None:
            raise ConfigError(f"time {ref!r} has no time zone; add one, e.g. 'Z' or '+01:00'")
        return when
    return ref


def is_sidecar(artifact: Artifact) -> bool:
    """Whether *artifact* is a source's sidecar (an index), not data to restore."""
    return "sidecar_of" in artifact.extra


def named_artifact(manifest: Manifest, name: str) -> Artifact:
    """The artifact a user named (``--artifact``); a :class:`NotFoundError` listing the
    backup's artifacts if it has none of that name."""
    for artifact in manifest.artifacts:
        if artifact.name == name:
            return artifact
    names = ", ".join(a.name for a in manifest.artifacts if not is_sidecar(a)) or "none"
    raise NotFoundError(
        f"backup {manifest.id} has no artifact named {name!r}; it has: {names}; give one of "
        "them to --artifact"
    )


def is_location(ref: str) -> bool:
    """Whether *ref* names a stored object (``s3://b/p/x.manifest.json``, a path) rather
    than a backup id, id prefix or ``latest``."""
    return "://" in ref or ref.endswith(MANIFEST_SUFFIX)


def manifest_at(parts: Parts, url: str) -> tuple[Manifest, Sink]:
    """Read the manifest stored at *url*; return it and the sink holding its artifacts.

    Works on a fresh machine with no configuration: ``s3://bucket/prefix/host/
    daily/x.manifest.json`` or a path. Artifact keys are relative to the sink's
    root: the manifest's directory less the directory its artifacts' keys share
    with it (``<hostname>/daily``, ``daily``, ``backups``).
    """
    if not url.endswith(MANIFEST_SUFFIX):
        raise ConfigError(
            f"{url} is not a manifest (*{MANIFEST_SUFFIX}); give one, a backup id or 'latest'"
        )
    directory, sep, name = url.rpartition("/")
    directory = directory if sep else "."
    data = open_manifest(parts.sink_for(directory).get_bytes(name), parts.keyring, origin=url)
    manifest = Manifest.from_json(data, origin=url)
    shared = posixpath.dirname(manifest.artifacts[0].key) if manifest.artifacts else ""
    if shared and directory.endswith("/" + shared):
        directory = directory[: -len(shared) - 1]
    return manifest, parts.sink_for(directory)


def scan_for(parts: Parts, ref: str) -> tuple[CatalogScan, str]:
    """The catalog to resolve *ref* in, and *ref* as an id for it: every configured
    sink's catalog, or for a manifest's URL (:func:`manifest_at`) its own sink's."""
    if not is_location(ref):
        return scan(parts.sinks(), parts.keyring), ref
    manifest, sink = manifest_at(parts, ref)
    return scan([sink], parts.keyring), manifest.id
