"""The encryption-downgrade guard: a set configured to encrypt does not restore a
backup that someone without the key could have planted."""

from __future__ import annotations

from collections.abc import Iterable

from backupkit.config import Config, SetConfig
from backupkit.core.catalog import Catalog
from backupkit.core.manifest import Manifest
from backupkit.errors import IntegrityError
from backupkit.plugins import Roles


def refuse_unencrypted(
    manifests: Iterable[Manifest],
    catalog: Catalog,
    sealed: Iterable[str],
    *,
    config: Config,
    roles: Roles,
    unauthenticated: Iterable[str] = (),
) -> None:
    """Refuse a backup of a set configured to encrypt that is not encrypted as the set
    says, when the set already has backups that are: whoever can write to the sink,
    without any key, could otherwise plant a plain backup (or rewrite a plain
    manifest) and have it restored. Backups older than the set's first encrypted one
    (from before encryption was turned on) are restored as they are.

    The same holds for a manifest of an encrypted set that is not authenticated (a MAC
    removed, or a manifest written before backupkit wrote MACs): backups older than the
    set's first authenticated one are restored as they are.

    :param sealed: the ids of the backups whose manifests were sealed.
    :param unauthenticated: the ids of the backups whose manifests are plain without a MAC.
    """
    sealed, plain = set(sealed), set(unauthenticated)

    def data_encrypted(m: Manifest) -> bool:
        return all(roles.encrypts(a.transforms) for a in m.artifacts)

    def as_configured(m: Manifest, set_cfg: SetConfig) -> bool:
        encrypts = roles.encrypts(set_cfg.transforms)
        return (data_encrypted(m) or not encrypts) and (
            m.id in sealed or not set_cfg.encrypt_manifest
        ) and (not encrypts or m.id not in plain)

    for manifest in manifests:
        set_cfg = config.sets.get(manifest.set_name)
        if set_cfg is None or as_configured(manifest, set_cfg):
            continue
        first = next(
            (m for m in catalog.for_set(manifest.set_name) if as_configured(m, set_cfg)), None
        )
        if first is None or manifest.created_at < first.created_at:
            continue
        if not data_encrypted(manifest):
            what = "artifacts are not encrypted"
        elif set_cfg.encrypt_manifest and manifest.id not in sealed:
            what = "manifest is not sealed"
        else:
            what = "manifest is not authenticated: it has no MAC"
        raise IntegrityError(
            f"backup {manifest.id} of set {manifest.set_name} is not encrypted as the set is "
            f"configured ({what}), yet the set's backups have been since {first.id}: it was "
            "not written by this configuration, and may have been planted by someone who can "
            "write to the sink; restore an older backup, or pass --allow-unencrypted if you "
            "know where it comes from"
        )
