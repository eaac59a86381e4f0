"""Restore planning: which backups, in which order, and which artifacts to fetch.

:func:`plan_restore` is pure. A target is ``'latest'``, a backup id or a unique id
prefix, or a timezone-aware datetime (the newest backup at or before it). A backup is
complete once its manifest is in the catalog: manifests are written last, after every
artifact. The plan is the target's chain, the full backup first and then each
incremental in the order they apply; a restore fetches :attr:`RestorePlan.artifacts` and
applies them in that order.

A chain is broken when an incremental has no parent, its parent is not in the catalog,
belongs to another set, or the chain loops: that is a :class:`ChainError` (a
:class:`ManifestError`) naming the link. A target that matches nothing, or a time before
the first backup, is a :class:`NotFoundError`.
"""

from __future__ import annotations

import datetime as dt
import re

import attrs

from backupkit.core.catalog import Catalog, made_at_or_before
from backupkit.core.manifest import MANIFEST_SUFFIX, Artifact, Manifest
from backupkit.errors import ChainError, ConfigError, ManifestError, NotFoundError


@attrs.frozen
class Fetch:
    """One artifact to download for a restore, and the backup it belongs to."""

    backup_id: str
    artifact: Artifact

    @property
    def key(self) -> str:
        """The stored key of the artifact to fetch."""
        return self.artifact.key


@attrs.frozen
class RestorePlan:
    """The backups to apply, oldest first (a full, then incrementals), ending at ``target``."""

    chain: tuple[Manifest, ...]

    @property
    def target(self) -> Manifest:
        """The backup the plan restores: the last of its chain."""
        return self.chain[-1]

    @property
    def full(self) -> Manifest:
        """The full backup the chain starts from."""
        return self.chain[0]

    @property
    def incrementals(self) -> tuple[Manifest, ...]:
        """The incremental backups applied on the full one, oldest first."""
        return self.chain[1:]

    @property
    def artifacts(self) -> tuple[Fetch, ...]:
        """Every artifact to fetch, in the order to apply them."""
        return tuple(Fetch(m.id, a) for m in self.chain for a in m.artifacts)

    @property
    def stored_size(self) -> int:
        """Bytes to download."""
        return sum(m.stored_size for m in self.chain)


def plan_restore(
    catalog: Catalog, *, target: str | dt.datetime, set_name: str | None = None
) -> RestorePlan:
    """The chain needed to restore *target* of *set_name*.

    With no *set_name*, ``'latest'`` and a time need a catalog holding one set (the
    newest backup of one set says nothing about another); an id names its own set.
    """
    found = _resolve(catalog, target, set_name)
    return RestorePlan(chain=_chain(catalog, found))


def _resolve(catalog: Catalog, target: str | dt.datetime, set_name: str | None) -> Manifest:
    if isinstance(target, dt.datetime):
        if target.tzinfo is None or target.utcoffset() is None:
            raise ConfigError(
                f"restore time {target.isoformat()} has no time zone; add one, e.g. 'Z'"
            )
        backups = _one_set(catalog, set_name, "a time").manifests
        if not backups:
            _refuse_unreadable(catalog, None, set_name, target)
            raise NotFoundError(f"no backup{_of(set_name)} in the catalog; run a backup first")
        earlier = [m for m in backups if made_at_or_before(m.created_at, target)]
        if not earlier:
            raise NotFoundError(
                f"no backup{_of(set_name)} at or before {target.isoformat()}; the first is "
                f"{backups[0].id} at {backups[0].created_at.isoformat()}"
            )
        _refuse_unreadable(catalog, earlier[-1], set_name, target)
        return earlier[-1]
    if not isinstance(target, str):
        raise ConfigError(
            f"restore target must be 'latest', a backup id or a datetime, got {target!r}"
        )
    if target == "latest":
        one = _one_set(catalog, set_name, "'latest'")
        if not one.manifests:
            _refuse_unreadable(catalog, None, set_name, None)
        newest = one.latest(set_name=set_name)
        _refuse_unreadable(catalog, newest, set_name, None)
        return newest
    return catalog.for_set(set_name).get(target)


#: A manifest's file name: ``<set>_<kind>_<id>.manifest.json``, as the engine names it.
_MANIFEST_NAME = re.compile(
    r"(?:^|/)(?P<set>[^/]+)_(?:full|incremental)_(?P<id>(?P<at>\d{8}T\d{6}Z)-[0-9a-f]{6,32})"
    + re.escape(MANIFEST_SUFFIX) + "$"
)


def _refuse_unreadable(
    catalog: Catalog, found: Manifest | None, set_name: str | None, when: dt.datetime | None
) -> None:
    """Refuse to settle for *found* (None: nothing) as the newest backup (at or before
    *when*) when a manifest of the same set that could not be read (damaged, of a newer
    format, sealed with a key that is not configured) is newer: restoring an older
    backup in silence is how a restore goes wrong in a disaster."""
    wanted = set_name or (found.set_name if found is not None else None)
    for problem in catalog.problems:
        match = _MANIFEST_NAME.search(problem.key)
        if match is None or (wanted is not None and match["set"] != wanted):
            continue
        made = dt.datetime.strptime(match["at"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        if when is not None and not made_at_or_before(made, when):
            continue
        if found is not None and made < found.created_at.replace(microsecond=0):
            continue  # older; one of the same second may be newer, and is not skipped either
        instead = f"or restore {found.id} by its id" if found is not None else "or restore another set"
        raise ManifestError(
            f"the newest backup{_of(match['set'])}, {match['id']}, cannot be read: "
            f"{problem.message}; fix that first, {instead}"
        )


def _one_set(catalog: Catalog, set_name: str | None, what: str) -> Catalog:
    if set_name is not None:
        return catalog.for_set(set_name)
    sets = catalog.sets
    if len(sets) > 1:
        raise ConfigError(
            f"the catalog holds {len(sets)} backup sets ({', '.join(sets)}); "
            f"name the set to restore {what} from"
        )
    return catalog


def _of(set_name: str | None) -> str:
    return f" of set {set_name!r}" if set_name else ""


def _chain(catalog: Catalog, target: Manifest) -> tuple[Manifest, ...]:
    by_id = {m.id: m for m in catalog.manifests}
    chain = [target]
    seen = {target.id}
    current = target
    while current.kind == "incremental":
        parent_id = current.parent_id
        if parent_id is None:
            raise ChainError(
                f"incremental backup {current.id} names no parent; its manifest is damaged, "
                "restore an earlier full backup"
            )
        parent = by_id.get(parent_id)
        if parent is None:
            hint = "; the catalog also has unreadable manifests, see 'backupkit list'" if (
                catalog.problems
            ) else ""
            raise ChainError(
                f"backup {target.id} needs {parent_id} (parent of {current.id}), which is not "
                f"in the catalog{hint}; restore an earlier backup"
            )
        if parent.set_name != current.set_name:
            raise ChainError(
                f"backup {current.id} of set {current.set_name!r} names parent {parent_id} of "
                f"set {parent.set_name!r}; its manifest is damaged, restore an earlier backup"
            )
        if parent.id in seen:
            raise ChainError(
                f"the chain of backup {target.id} loops at {parent.id}; the manifests are "
                "damaged, restore an earlier full backup"
            )
        chain.append(parent)
        seen.add(parent.id)
        current = parent
    return tuple(reversed(chain))
