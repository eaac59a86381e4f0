"""The catalog: every manifest a sink holds, with the questions asked of them.

Built from already-parsed manifests (the engine reads them from the sink), so it is
pure. Manifests that could not be read are kept as :class:`CatalogProblem` records:
one bad file never hides the others.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from backupkit.core.manifest import Manifest
from backupkit.errors import ConfigError, ManifestError, NotFoundError


@attrs.frozen
class CatalogProblem:
    """A manifest that could not be read: where it is and what is wrong with it."""

    key: str
    message: str


def made_at_or_before(created_at: dt.datetime, when: dt.datetime) -> bool:
    """Whether a backup made at *created_at* counts as at or before *when*. A time given
    to the second (as ids and listings show backups) takes in the whole second: the
    backup listed at 04:45:12 was made at 04:45:12.558 and is at or before 04:45:12."""
    return (created_at.replace(microsecond=0) if not when.microsecond else created_at) <= when


def _sorted(manifests: Iterable[Manifest]) -> tuple[Manifest, ...]:
    return tuple(sorted(manifests, key=lambda m: (m.created_at, m.id)))


def _problems(problems: Iterable[CatalogProblem]) -> tuple[CatalogProblem, ...]:
    return tuple(problems)


@attrs.frozen
class Catalog:
    """Manifests ordered oldest first, plus the problems met while reading them."""

    manifests: tuple[Manifest, ...] = attrs.field(converter=_sorted, default=())
    problems: tuple[CatalogProblem, ...] = attrs.field(converter=_problems, default=())

    def __iter__(self) -> Iterator[Manifest]:
        return iter(self.manifests)

    def __len__(self) -> int:
        return len(self.manifests)

    def __bool__(self) -> bool:
        return bool(self.manifests)

    @property
    def sets(self) -> tuple[str, ...]:
        """The names of the sets with backups here, sorted."""
        return tuple(sorted({m.set_name for m in self.manifests}))

    def _filter(self, keep: Any) -> Catalog:
        return Catalog(tuple(m for m in self.manifests if keep(m)), self.problems)

    def for_set(self, set_name: str | None) -> Catalog:
        """Only the backups of set *set_name* (``None``: every set); problems stay."""
        if set_name is None:
            return self
        return self._filter(lambda m: m.set_name == set_name)

    def by_kind(self, kind: str) -> Catalog:
        """The backups of *kind* (``full`` or ``incremental``)."""
        return self._filter(lambda m: m.kind == kind)

    def by_tag(self, tag: str) -> Catalog:
        """The backups tagged *tag*."""
        return self._filter(lambda m: tag in m.tags)

    def latest(self, *, set_name: str | None = None, kind: str | None = None) -> Manifest:
        """The newest manifest, optionally of one set and kind."""
        found = self.for_set(set_name)
        if kind is not None:
            found = found.by_kind(kind)
        if not found.manifests:
            where = f" of set {set_name!r}" if set_name else ""
            what = f"{kind} backup" if kind else "backup"
            raise NotFoundError(f"no {what}{where} in the catalog; run a backup first")
        return found.manifests[-1]

    def get(self, ref: str) -> Manifest:
        """A manifest by full id or unique id prefix."""
        if not ref:
            raise ConfigError("backup id is empty; give an id, a unique prefix, or 'latest'")
        exact = [m for m in self.manifests if m.id == ref]
        if exact:
            return exact[0]
        matches = [m for m in self.manifests if m.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            unreadable = [p for p in self.problems if f"_{ref}" in p.key.rsplit("/", 1)[-1]]
            if len(unreadable) == 1:  # it is there, but its manifest cannot be read
                raise ManifestError(f"backup {ref} cannot be read: {unreadable[0].message}")
            raise NotFoundError(
                f"no backup with id or prefix {ref!r}; 'backupkit list' shows the ids"
            )
        raise NotFoundError(
            f"backup id prefix {ref!r} matches {len(matches)} backups; give more characters"
        )

    def at_or_before(self, when: dt.datetime, *, set_name: str | None = None) -> Manifest:
        """The newest manifest created at or before *when* (timezone-aware)."""
        if when.tzinfo is None or when.utcoffset() is None:
            raise ConfigError(f"time {when.isoformat()} has no time zone; add one, e.g. 'Z'")
        found = [m for m in self.for_set(set_name).manifests if made_at_or_before(m.created_at, when)]
        if not found:
            raise NotFoundError(f"no backup at or before {when.isoformat()}")
        return found[-1]

    def resolve(self, ref: str, *, set_name: str | None = None) -> Manifest:
        """``latest``, an id or a unique id prefix."""
        if ref == "latest":
            return self.latest(set_name=set_name)
        return self.for_set(set_name).get(ref)

    def children(self, manifest_id: str) -> tuple[Manifest, ...]:
        """The backups whose parent is backup *manifest_id*."""
        return tuple(m for m in self.manifests if m.parent_id == manifest_id)

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per backup, oldest first: ``pandas.DataFrame(records)`` works."""
        return [
            {
                "id": m.id,
                "set": m.set_name,
                "created_at": m.created_at,
                "kind": m.kind,
                "tier": m.tier,
                "parent_id": m.parent_id,
                "hostname": m.hostname,
                "reason": m.reason,
                "tags": ",".join(m.tags),
                "artifacts": len(m.artifacts),
                "raw_size": m.raw_size,
                "stored_size": m.stored_size,
                "duration_seconds": m.duration_seconds,
            }
            for m in self.manifests
        ]
