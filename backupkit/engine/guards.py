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
) -> None:
    """Refuse a backup of a set configured to encrypt that is not encrypted as the set
    says, when the set already has backups that are: whoever can write to the sink,
    without any key, could otherwise plant a plain backup (or rewrite a plain
    manifest) and have it restored. Backups older than the set's first encrypted one
    (from before encryption was turned on) are restored as they are.

    :param sealed: the ids of the backups whose manifests were sealed.
    """
    sealed = set(sealed)

    def data_encrypted(m: Manifest) -> bool:
        return all(roles.encrypts(a.transforms) for a in m.artifacts)

    def as_configured(m: Manifest, set_cfg: SetConfig) -> bool:
        return (data_encrypted(m) or not roles.encrypts(set_cfg.transforms)) and (
            m.id in sealed or not set_cfg.encrypt_manifest
        )

    for manifest in manifests:
        set_cfg = config.sets.get(manifest.set_name)
        if set_cfg is None or as_configured(manifest, set_cfg):
            continue
        first = next(
            (m for m in catalog.for_set(manifest.set_name) if as_configured(m, set_cfg)), None
        )
        if first is None or manifest.created_at < first.created_at:
            continue
        what = "manifest is not sealed" if data_encrypted(manifest) else "artifacts are not encrypted"
        raise IntegrityError(
            f"backup {manifest.id} of set {manifest.set_name} is not encrypted as the set is "
            f"configured ({what}), yet the set's backups have been since {first.id}: it was "
            "not written by this configuration, and may have been planted by someone who can "
            "write to the sink; restore an older backup, or pass --allow-unencrypted if you "
            "know where it comes from"
        )
