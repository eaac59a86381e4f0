"""Reading the catalog: every manifest of the sinks, opened (sealed ones with the
keyring), with where each came from and what could not be read."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import attrs

from backupkit.core.catalog import Catalog, CatalogProblem
from backupkit.core.manifest import Manifest
from backupkit.crypto.authenticated import check_manifest
from backupkit.crypto.keys import Keyring
from backupkit.crypto.sealed import is_sealed_manifest, open_manifest
from backupkit.engine.layout import Layout
from backupkit.errors import ManifestError, NotFoundError
from backupkit.plugin import Sink

log = logging.getLogger("backupkit")


@attrs.frozen
class CatalogScan:
    """What one read of the sinks found.

    :ivar catalog: the backups, and the manifests that could not be read (``problems``).
    :ivar owner: each backup's sink, by backup id.
    :ivar keys: each backup's manifest key, by backup id.
    :ivar unreadable: the keys of manifests that could not be read.
    :ivar foreign: the keys of manifests that are not their sink's (see :func:`scan`).
    :ivar sealed: the ids of backups whose manifest was sealed.
    :ivar authenticated: the ids of backups whose manifest was checked to be as written
        (sealed, or with a MAC that matched; see :mod:`backupkit.crypto.authenticated`).
    :ivar unauthenticated: with keys configured, the ids of backups whose manifest is plain
        and has no MAC (one with a MAC whose key is not configured is in neither set).
    """

    catalog: Catalog
    owner: Mapping[str, Sink]
    keys: Mapping[str, str] = attrs.field(factory=dict)
    unreadable: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()
    sealed: frozenset[str] = frozenset()
    authenticated: frozenset[str] = frozenset()
    unauthenticated: frozenset[str] = frozenset()


def scan(sinks: Iterable[Sink], keyring: Keyring) -> CatalogScan:
    """Read the catalog of *sinks*.

    A manifest where its sink would not have written it (one of a backupkit sink
    nested in this one, or of another host's layout) is not this sink's: it is left
    out, as its artifact keys are relative to another root.
    """
    manifests: list[Manifest] = []
    problems: list[CatalogProblem] = []
    owner: dict[str, Sink] = {}
    keys: dict[str, str] = {}
    unreadable: list[str] = []
    foreign: list[str] = []
    sealed: set[str] = set()
    authenticated: set[str] = set()
    unauthenticated: set[str] = set()
    for sink in sinks:
        layout = Layout.of(sink)
        for key in sink.list_manifest_keys():
            if not layout.fits(key):
                log.debug("%s is not a manifest of sink %s; skipped", key, sink.location)
                foreign.append(key)
                continue
            origin = f"{sink.location.rstrip('/')}/{key}"
            try:
                raw = sink.get_bytes(key)
                data = open_manifest(raw, keyring, origin=origin)
                found = "authenticated" if is_sealed_manifest(raw) else check_manifest(data, keyring, origin=origin)
                manifest = Manifest.from_json(data, origin=origin)
                if found == "unverifiable":
                    refuse_foreign_mac(manifest, keyring, origin)
            except (ManifestError, NotFoundError) as exc:
                log.info("%s", exc)  # a catalog problem: `list` and `status` report them
                problems.append(CatalogProblem(origin, str(exc)))
                unreadable.append(key)
                continue
            if not layout.fits(key, hostname=manifest.hostname):
                log.debug("%s is not a manifest of sink %s; skipped", key, sink.location)
                foreign.append(key)
                continue
            if manifest.id in owner:
                continue
            manifests.append(manifest)
            owner[manifest.id] = sink
            keys[manifest.id] = key
            if is_sealed_manifest(raw):
                sealed.add(manifest.id)
            if found == "authenticated":
                authenticated.add(manifest.id)
            elif found == "unauthenticated" and keyring.writer is not None:
                unauthenticated.add(manifest.id)  # without keys, no MAC could be expected
    return CatalogScan(
        Catalog(manifests, problems), owner, keys, tuple(unreadable), tuple(foreign),
        frozenset(sealed), frozenset(authenticated), frozenset(unauthenticated),
    )


def refuse_foreign_mac(manifest: Manifest, keyring: Keyring, origin: str) -> None:
    """A manifest whose MAC names a key that is not configured, while the keys its data
    is encrypted with are: the MAC was not written with them, so the manifest was edited
    (without the data's keys, the restore asks for them instead)."""
    data_keys = {str(t.params["key_id"]) for a in manifest.artifacts for t in a.transforms if "key_id" in t.params}
    if data_keys and data_keys <= set(keyring.ids()):
        raise ManifestError(f"manifest {origin} was edited after it was written: its MAC is by a key that is "
                            f"not the one its data is encrypted with ({', '.join(sorted(data_keys))}); "
                            "do not trust this backup, restore an older one")
