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
    """Whether *ref* names a stored object (``s3://b/p/x.manifest.json``, a path such as
    ``/var/backups/app/daily/x.files.tar.zst``) rather than a backup id, id prefix, time
    or ``latest`` (none of which holds a ``/``)."""
    return "://" in ref or "/" in ref or ref.endswith(MANIFEST_SUFFIX)


def manifest_beside(parts: Parts, url: str) -> str:
    """The URL of the manifest of the backup whose artifact is stored at *url*: the
    manifest in the same directory whose name, less ``.manifest.json``, begins the
    artifact's (``app_full_<id>.files.tar.zst`` -> ``app_full_<id>.manifest.json``)."""
    directory, sep, name = url.rpartition("/")
    directory = directory if sep else "."
    stems = [k[: -len(MANIFEST_SUFFIX)] for k in parts.sink_for(directory).list_keys()
             if "/" not in k and k.endswith(MANIFEST_SUFFIX) and name.startswith(k[: -len(MANIFEST_SUFFIX)] + ".")]
    if not stems:
        raise NotFoundError(
            f"{url}: no backup's manifest (*{MANIFEST_SUFFIX}) is beside it in {directory}; give the "
            "path of a backup's artifact or manifest, a backup id or 'latest'"
        )
    return f"{directory}/{max(stems, key=len)}{MANIFEST_SUFFIX}"


def manifest_at(parts: Parts, url: str) -> tuple[Manifest, Sink]:
    """Read the manifest stored at *url*; return it and the sink holding its artifacts.

    Works on a fresh machine with no configuration: ``s3://bucket/prefix/host/
    daily/x.manifest.json`` or a path; or the URL or path of one of a backup's
    artifacts, whose manifest is beside it (:func:`manifest_beside`). Artifact keys
    are relative to the sink's root: the manifest's directory less the directory its
    artifacts' keys share with it (``<hostname>/daily``, ``daily``, ``backups``).
    """
    if not url.endswith(MANIFEST_SUFFIX):
        url = manifest_beside(parts, url)
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
