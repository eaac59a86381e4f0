"""Carrying out a retention plan on a sink, in an order a crash cannot hurt.

The plan itself is pure (:func:`backupkit.core.retention.plan_retention`). Here it
meets storage: for each doomed backup, incrementals before the backups they depend
on, the **manifest is deleted first** and its artifacts after, so a crash part way
never leaves a manifest pointing at missing data; artifacts whose manifest is gone
are orphans that the next prune collects.

An orphan is a stored object that no manifest names, that sits where this sink's
layout puts a backup's files (:class:`Layout`: ``<tier>/<file>`` for the local sink,
``<hostname>/<tier>/<file>`` for S3, never inside another backupkit sink nested in
this one), whose name carries a backup id (``..._20240101T020000Z-3f2a1c.``) older
than the grace period, that belongs to no running backup, and that does not share its
name stem with a manifest the catalog could not read or that is not this sink's
(those artifacts may still be needed).

The grace period protects backups still running. A sink that can tell which backups
run (the local sink's locks) gets :data:`ORPHAN_GRACE`; on one that cannot (S3,
fsspec) an orphan gets that only once its run has ended (its run log is stored), and
:data:`UNTRACKED_RUN_GRACE` otherwise, as a backup may run for many hours.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from collections.abc import Iterable, Mapping

import attrs

from backupkit.core.manifest import MANIFEST_SUFFIX, Manifest, backup_id
from backupkit.core.retention import RetentionPlan
from backupkit.core.tiers import TIERS
from backupkit.plugin import Sink
from backupkit.plugin.run import RunInfo

#: Objects of a backup younger than this are never collected as orphans.
ORPHAN_GRACE = dt.timedelta(hours=6)
#: The grace of an orphan whose run may still be going on a sink that cannot tell.
UNTRACKED_RUN_GRACE = dt.timedelta(days=7)
_RUN_ID = re.compile(r"_(\d{8}T\d{6}Z)-([0-9a-f]{6,32})\.")
_TIER, _HOST = "bktierslot", "bkhostslot"  # placeholders re.escape leaves alone


@attrs.frozen
class Layout:
    """Where a sink puts a backup's files, read off its ``key_for``.

    A key fits when it has the same directories as ``key_for`` gives, with any tier
    in the tier's place and any name in the host's, and a file name last; keys of a
    backupkit sink nested in this one have more directories and never fit.
    """

    pattern: re.Pattern[str]

    @classmethod
    def of(cls, sink: Sink) -> Layout:
        started = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        run = RunInfo(
            run_id=backup_id(started, "0" * 6), set_name="set", kind="full", reason="manual",
            started_at=started, sink=sink.location, hostname=_HOST,
        )
        directory = posixpath.dirname(sink.key_for(_TIER, "file", run=run))
        shape = re.escape(directory).replace(_TIER, "(?:{})".format("|".join(TIERS)))
        shape = shape.replace(_HOST, "(?P<host>[^/]+)", 1).replace(_HOST, "(?P=host)")
        return cls(re.compile(f"{shape}/[^/]+" if directory else "[^/]+"))

    def fits(self, key: str, *, hostname: str | None = None) -> bool:
        """Whether this sink would store a file of a backup (made on *hostname*) at *key*."""
        match = self.pattern.fullmatch(key)
        if match is None:
            return False
        return hostname is None or "host" not in self.pattern.groupindex or match["host"] == hostname


@attrs.frozen
class PruneResult:
    """What a prune decided and (unless a dry run) did."""

    plan: RetentionPlan
    dry_run: bool
    deleted: tuple[str, ...] = ()  # backup ids
    deleted_keys: tuple[str, ...] = ()
    orphans: tuple[str, ...] = ()  # keys collected (or, in a dry run, that would be)
    set_name: str | None = None  # None: every set in a sink with no configured sets
    sink: str = ""  # where, for people

    @property
    def freed_bytes(self) -> int:
        return sum(m.stored_size for m in self.plan.delete)


def carry_out(
    sink: Sink,
    plan: RetentionPlan,
    manifest_keys: Mapping[str, str],
    *,
    dry_run: bool,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Delete the plan's backups from *sink*; return (backup ids, keys) deleted."""
    ids: list[str] = []
    keys: list[str] = []
    if dry_run:
        return (), ()
    doomed = [m for m in plan.deletion_order if m.id in manifest_keys]
    for manifest in doomed:  # manifests first, one by one, children before parents
        sink.delete([manifest_keys[manifest.id]])
        ids.append(manifest.id)
        keys.append(manifest_keys[manifest.id])
    artifact_keys = [a.key for m in doomed for a in m.artifacts]
    sink.delete(artifact_keys)  # a sink may batch these (S3: 1000 a request)
    keys.extend(artifact_keys)
    return tuple(ids), tuple(keys)


def find_orphans(
    keys: Iterable[str],
    manifests: Iterable[Manifest],
    manifest_keys: Iterable[str],
    unreadable: Iterable[str],
    *,
    now: dt.datetime,
    active_runs: Iterable[str] | None = None,
    grace: dt.timedelta = ORPHAN_GRACE,
    layout: Layout | None = None,
    foreign: Iterable[str] = (),
) -> list[str]:
    """Stored keys that belong to no backup (see the module docstring for the rules).

    :param keys: every key listed in the sink, run logs included (a run's log says
        the run has ended).
    :param active_runs: ids of the backups running now, or None if the sink cannot tell.
    :param layout: where the sink puts a backup's files; other keys are never orphans.
    :param foreign: keys of manifests that are not this sink's (a nested sink's).
    """
    keys = list(keys)
    named = {a.key for m in manifests for a in m.artifacts} | set(manifest_keys)
    foreign = list(foreign)
    protected_stems = tuple(k[: -len(MANIFEST_SUFFIX)] + "." for k in [*unreadable, *foreign])
    nested = tuple(f"{root}/" for k in foreign if (root := posixpath.dirname(posixpath.dirname(k))))
    ended = {_run_of(k) for k in keys if k.endswith(".log")}
    running = set(active_runs or ())
    orphans = []
    for key in keys:
        if key in named or key.endswith((MANIFEST_SUFFIX, ".log")) or key.startswith("logs/"):
            continue
        if layout is not None and not layout.fits(key):
            continue
        if key.startswith(protected_stems) or key.startswith(nested):
            continue
        run_id = _run_of(key)
        if run_id is None:
            continue  # not ours: never delete what we cannot date
        made = dt.datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        wait = grace if active_runs is not None or run_id in ended else max(grace, UNTRACKED_RUN_GRACE)
        if run_id in running or now - made < wait:
            continue
        orphans.append(key)
    return orphans


def _run_of(key: str) -> str | None:
    """The backup id in the file name of *key*, if it has one."""
    match = _RUN_ID.search(key.rsplit("/", 1)[-1])
    return f"{match.group(1)}-{match.group(2)}" if match else None
