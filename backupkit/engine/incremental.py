"""Which backup an incremental builds on, and the check that it is still there when
the incremental is published."""

from __future__ import annotations

import logging

from backupkit.core.manifest import Manifest
from backupkit.core.restore import plan_restore
from backupkit.crypto.keys import Keyring
from backupkit.engine.pipeline import check_stored
from backupkit.engine.scan import scan
from backupkit.errors import BackupkitError, IntegrityError, NotFoundError, SourceError
from backupkit.plugin import Sink, Source

log = logging.getLogger("backupkit")


def parent_for(
    set_name: str, sink: Sink, sources: list[tuple[str, Source]], keyring: Keyring
) -> tuple[Manifest, str] | None:
    """The backup an incremental builds on and its manifest key: the set's newest one in
    *sink*, if usable (every source can build on it, and it has a whole chain to a full
    backup); ``None`` (with a warning saying why) makes the run a full backup."""
    for name, source in sources:
        if not source.supports_incremental:
            log.warning(
                "source %s (%s) cannot back up incrementally; running a full backup",
                name, source.id,
            )
            return None
    found = scan([sink], keyring)
    backups = found.catalog.for_set(set_name)
    if not backups.by_kind("full"):
        log.warning("set %s has no full backup yet; this incremental runs as a full backup", set_name)
        return None
    parent = backups.latest()
    indexed = {a.extra.get("sidecar_of") for a in parent.artifacts}
    missing = [n for n, _ in sources if n not in indexed]
    if missing:
        log.warning(
            "the newest backup %s has no index for %s; running a full backup",
            parent.id, ", ".join(missing),
        )
        return None
    try:
        plan_restore(found.catalog, target=parent.id)
    except BackupkitError as exc:  # a broken chain: building on it would break this one too
        log.warning("the newest backup %s cannot be restored (%s); running a full backup", parent.id, exc)
        return None
    damaged = damaged_sidecars(sink, parent)
    if damaged:  # what it would compare against is not what was stored: start afresh
        log.warning("the newest backup %s is damaged (%s); running a full backup", parent.id, damaged[0])
        return None
    return parent, found.keys[parent.id]


def damaged_sidecars(sink: Sink, manifest: Manifest) -> list[str]:
    """Why each of *manifest*'s sidecars (file indexes) in *sink* is missing or does not
    match its manifest, for messages; empty when all are whole."""
    found = []
    for artifact in manifest.artifacts:
        if "sidecar_of" not in artifact.extra:
            continue
        try:
            check_stored(sink, manifest, artifact)
        except NotFoundError:
            found.append(f"its {artifact.name} ({artifact.key}) is missing")
        except IntegrityError:
            found.append(f"its {artifact.name} ({artifact.key}) does not match its checksum")
    return found


def check_parent_still_there(sink: Sink, parent: Manifest, key: str) -> None:
    """Fail an incremental whose parent was deleted while it ran (a prune between its
    start and its manifest): published, it could never be restored."""
    try:
        sink.get_bytes(key)
    except NotFoundError:
        raise SourceError(
            f"the parent backup {parent.id} was deleted while this incremental ran (by a "
            "prune?); nothing of this run was kept: run the backup again"
        ) from None
