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
(those artifacts may still be needed). Run logs (``logs/``), the audit log (``audit/``)
and the metrics' failure records (``metrics/``) are never orphans.

Run logs follow their backups: a deleted backup's log (``logs/...<set>_<kind>_<id>.log``)
is deleted in the same prune, after its manifest and artifacts (a crash before leaves a
log without a backup, which is then collected as a failed run's log). The log of a run
that stored no backup (it failed) is kept for the policy's ``failed_logs`` (30 days by
default), counted from the run's start, then collected; never while the run is going,
nor while a manifest of its run exists that the catalog could not read or that is not
this sink's.

The grace period protects backups still running. A sink that can tell which backups
run (the local sink's locks) gets :data:`ORPHAN_GRACE`; on one that cannot (S3,
fsspec) an orphan gets that only once its run has ended (its run log is stored), and
:data:`UNTRACKED_RUN_GRACE` otherwise, as a backup may run for many hours.
"""

from __future__ import annotations

import datetime as dt
import logging
import posixpath
import re
from collections.abc import Iterable, Mapping

from backupkit.core.manifest import MANIFEST_SUFFIX, Manifest
from backupkit.core.retention import RetentionPlan, RetentionPolicy, plan_retention
from backupkit.core.simulate import DEFAULT_SIZES, SimulationRow, simulate_retention
from backupkit.engine.layout import Layout
from backupkit.engine.operation import new_run_id, run_operation
from backupkit.engine.parts import Parts
from backupkit.engine.results import PruneResult
from backupkit.engine.scan import scan
from backupkit.errors import ConfigError
from backupkit.plugin import Operation, Sink

log = logging.getLogger("backupkit")

#: Objects of a backup younger than this are never collected as orphans.
ORPHAN_GRACE = dt.timedelta(hours=6)
#: The grace of an orphan whose run may still be going on a sink that cannot tell.
UNTRACKED_RUN_GRACE = dt.timedelta(days=7)
_RUN_ID = re.compile(r"_(\d{8}T\d{6}Z)-([0-9a-f]{6,32})\.")
#: A run log's file name: ``<set>_<kind>_<run id>.log``.
_LOG_NAME = re.compile(r"^(?P<set>.+)_(?:full|incremental)_\d{8}T\d{6}Z-[0-9a-f]{6,32}\.log$")


def carry_out(
    sink: Sink,
    plan: RetentionPlan,
    manifest_keys: Mapping[str, str],
    *,
    dry_run: bool,
    logs: Iterable[str] = (),
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Delete the plan's backups from *sink*, then *logs* (their run logs, and failed
    runs' expired logs); return (backup ids, keys) deleted."""
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
    logs = list(logs)  # last: a log without its backup is harmless, and collected later
    sink.delete(logs)
    keys.extend(logs)
    return tuple(ids), tuple(keys)


def find_logs(
    keys: Iterable[str],
    doomed: Iterable[str],
    present: Iterable[str],
    *,
    cutoff: dt.datetime,
    set_name: str | None = None,
    active_runs: Iterable[str] | None = None,
) -> list[str]:
    """The run logs among *keys* that go: those of the *doomed* backup ids, and those of
    runs that stored no backup (no id in *present*, which holds every manifest's run id
    in the sink, readable or not) started before *cutoff*. Logs of *active_runs* stay;
    with *set_name*, failed runs' logs of other sets too."""
    doomed, present, running = set(doomed), set(present), set(active_runs or ())
    going = []
    for key in keys:
        name = key.rsplit("/", 1)[-1]
        if not key.startswith("logs/") or not name.endswith(".log"):
            continue
        run_id = _run_of(key)
        if run_id is None or run_id in running:
            continue
        if run_id in doomed:
            going.append(key)
            continue
        match = _LOG_NAME.match(name)
        if run_id in present or match is None or (set_name is not None and match["set"] != set_name):
            continue
        if _started(run_id) < cutoff:
            going.append(key)
    return going


def _started(run_id: str) -> dt.datetime:
    return dt.datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


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
        if key in named or key.endswith((MANIFEST_SUFFIX, ".log")) or key.startswith(("logs/", "audit/", "metrics/")):
            continue
        if layout is not None and not layout.fits(key):
            continue
        if key.startswith(protected_stems) or key.startswith(nested):
            continue
        run_id = _run_of(key)
        if run_id is None:
            continue  # not ours: never delete what we cannot date
        made = _started(run_id)
        wait = grace if active_runs is not None or run_id in ended else max(grace, UNTRACKED_RUN_GRACE)
        if run_id in running or now - made < wait:
            continue
        orphans.append(key)
    return orphans


def _run_of(key: str) -> str | None:
    """The backup id in the file name of *key*, if it has one."""
    match = _RUN_ID.search(key.rsplit("/", 1)[-1])
    return f"{match.group(1)}-{match.group(2)}" if match else None


def prune_groups(
    parts: Parts, set_name: str | None, policy: RetentionPolicy | None
) -> list[tuple[Sink, str | None, RetentionPolicy]]:
    """(sink, set or None for every set in it, policy) to prune: the policy given, else
    the set's ``retention``, else the configuration's default retention."""
    config = parts.config
    if not config.sets:
        return [(sink, set_name, policy or config.default_retention) for sink in parts.sinks()]
    names = [set_name] if set_name is not None else list(config.sets)
    groups: list[tuple[Sink, str | None, RetentionPolicy]] = []
    for name in names:
        set_cfg = config.get_set(name)
        chosen = policy or set_cfg.retention or config.default_retention
        groups.append((parts.sink_for(set_cfg.sink), name, chosen))
    return groups


def prune(
    parts: Parts,
    set_name: str | None = None,
    *,
    policy: RetentionPolicy | None = None,
    dry_run: bool = True,
    orphan_grace: dt.timedelta = ORPHAN_GRACE,
) -> list[PruneResult]:
    """Prune inside the operation hook; see :meth:`backupkit.Engine.prune`."""
    now = parts.clock()
    groups = prune_groups(parts, set_name, policy)
    sink = groups[0][0].location if len({g[0].location for g in groups}) == 1 else None
    operation = Operation("prune", new_run_id(now), now, set_name=set_name, sink=sink)
    return run_operation(
        parts.plugins, operation,
        lambda: list(_prune_each(parts, groups, now=now, dry_run=dry_run, grace=orphan_grace)),
    )


def _prune_each(
    parts: Parts,
    groups: list[tuple[Sink, str | None, RetentionPolicy]],
    *,
    now: dt.datetime,
    dry_run: bool,
    grace: dt.timedelta,
) -> Iterable[PruneResult]:
    orphans_seen: set[str] = set()
    for sink, name, chosen in groups:
        found = scan([sink], parts.keyring)
        keys = found.keys
        plan = plan_retention(found.catalog.for_set(name), chosen, now=now, tz=parts.config.tz)
        active = sink.active_run_ids()
        stored = list(sink.list_keys())
        present = [*keys, *(r for k in [*found.unreadable, *found.foreign] if (r := _run_of(k)))]
        logs = find_logs(
            stored, (m.id for m in plan.delete), present,
            cutoff=chosen.failed_logs.before(now, parts.config.tz), set_name=name, active_runs=active,
        )
        deleted, deleted_keys = carry_out(sink, plan, keys, dry_run=dry_run, logs=logs)
        gone = set(deleted)
        orphans = find_orphans(
            (k for k in stored if k not in deleted_keys),
            [m for m in found.catalog if m.id not in gone],
            [k for i, k in keys.items() if i not in gone],
            found.unreadable,
            now=now,
            active_runs=active,
            grace=grace,
            layout=Layout.of(sink),
            foreign=found.foreign,
        )
        orphans = [k for k in orphans if f"{sink.location}/{k}" not in orphans_seen]
        orphans_seen.update(f"{sink.location}/{k}" for k in orphans)
        if orphans and not dry_run:
            sink.delete(orphans)
        for manifest in plan.delete:
            log.info("%s backup %s: %s", "would delete" if dry_run else "deleted",
                     manifest.id, plan.decision(manifest.id).explanation)
        for key in logs:
            log.info("%s run log %s", "would delete" if dry_run else "deleted", key)
        yield PruneResult(
            plan, dry_run, deleted, deleted_keys, tuple(orphans), set_name=name, sink=sink.location,
            logs=tuple(logs),
        )


def simulate(
    parts: Parts,
    policy: RetentionPolicy | None = None,
    *,
    duration: dt.timedelta,
    every: dt.timedelta,
    set_name: str | None = None,
    schedule: Iterable[str] = ("full",),
    sizes: Mapping[str, int] | None = None,
    start: dt.datetime | None = None,
) -> list[SimulationRow]:
    """Run a policy forward on a synthetic schedule; see :meth:`backupkit.Engine.simulate`."""
    groups = prune_groups(parts, set_name, policy)
    if len(groups) > 1:
        raise ConfigError(
            f"{len(groups)} backup sets are configured ({', '.join(str(g[1]) for g in groups)}); "
            "name the one to simulate with --set"
        )
    sink, name, chosen = groups[0]
    if sizes is None:
        catalog = scan([sink], parts.keyring).catalog.for_set(name)
        sizes = dict(DEFAULT_SIZES)
        for kind in ("full", "incremental"):
            of_kind = list(catalog.by_kind(kind))
            if of_kind:
                sizes[kind] = sum(m.stored_size for m in of_kind) // len(of_kind)
            elif kind == "incremental" and catalog.by_kind("full"):
                sizes[kind] = max(1, sizes["full"] // 10)  # a guess: a tenth of a full
    return simulate_retention(
        chosen,
        start=start or parts.clock(),
        duration=duration,
        every=every,
        tz=parts.config.tz,
        backup_size=sizes,
        kind_schedule=tuple(schedule),
    )
