"""Retention: which backups a policy keeps, and every rule that keeps each one.

:func:`plan_retention` is pure: the current time and the time zone are arguments, and it
returns a :class:`RetentionPlan` that says keep or delete for every backup in the catalog
with the reasons. Deleting is someone else's job (the engine's prune). Each backup set is
planned on its own. The semantics, step by step (``docs/retention.md`` has worked
examples):

1. **Guards** keep a backup whatever else happens: it carries the pinned tag
   (``pinned``); it is the newest full backup of its set not dated in the future
   (``newest full``); it is dated after *now* (``in the future``).
2. **Keep rules**, combined with OR, over the set's backups not in the future, newest
   first, each with restic's meaning: ``keep_last``; ``keep_secondly`` / ``minutely``
   (borg's) / ``hourly`` / ``daily`` / ``weekly`` (ISO weeks) / ``monthly`` / ``yearly``
   calendar buckets in *tz* (a bucket holding several backups counts once, by its newest;
   each rule counts on its own, so one backup can fill buckets of several kinds; ``-1``
   is every bucket; with ``oldest_rule``, a rule with buckets to spare keeps the oldest
   backup too); ``keep_within`` a duration, and ``keep_within_hourly`` ... ``yearly`` the
   newest backup of every bucket in a duration, both ending at the newest backup of the
   set (or at *now*: ``within_anchor``); ``keep_tag`` (every tag of one of the tag sets);
   ``tier_ages`` (a backup of tier T is kept while younger than the age given for T).
3. **Caps** then remove backups the keep rules kept: ``max_age`` (no older than) and
   ``max_count`` (no more than this many kept in the set, oldest go first). Guards and
   chains win over caps.
4. **Chains**: a backup that a kept incremental depends on (its ``parent_id`` chain down
   to a full backup) is kept (``base of kept incremental``). ``max_count`` counts a
   backup together with the part of its chain not already kept and skips it if the
   whole does not fit, so a chain keeps its base and may lose its tail, never the
   reverse.

Planning is deterministic and idempotent: planning again on the kept backups with the
same *now* keeps all of them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from backupkit.core.catalog import Catalog
from backupkit.core.durations import Duration, format_duration
from backupkit.core.manifest import Manifest
from backupkit.core.policy import ALL, BUCKETS, TIER_AGES, WITHIN_BUCKETS, RetentionPolicy
from backupkit.errors import ConfigError

__all__ = [
    "BASE_OF_KEPT", "BUCKETS", "IN_THE_FUTURE", "NEWEST_FULL", "PINNED", "TIER_AGES",
    "Decision", "RetentionPlan", "RetentionPolicy", "plan_retention",
]

PINNED = "pinned"
NEWEST_FULL = "newest full"
IN_THE_FUTURE = "in the future"
BASE_OF_KEPT = "base of kept incremental"


# -- the plan -------------------------------------------------------------------------


@attrs.frozen
class Decision:
    """Keep or delete one backup, and why.

    ``reasons`` lists every guard and rule that matched, in a fixed order. A cap can
    override the rules: then ``capped_by`` names it (``'max_age 30d'``,
    ``'max_count 50'``) and the backup is deleted unless a guard or a kept incremental
    holds it. So: kept backups always have a reason; a deleted backup has no reason or
    a cap.
    """

    manifest: Manifest
    keep: bool
    reasons: tuple[str, ...] = ()
    capped_by: str | None = None

    @property
    def action(self) -> str:
        """``keep`` or ``delete``."""
        return "keep" if self.keep else "delete"

    @property
    def explanation(self) -> str:
        """One line for a dry-run listing."""
        if self.keep:
            text = ", ".join(self.reasons)
            return f"{text} (despite {self.capped_by})" if self.capped_by else text
        if self.capped_by:
            return f"{self.capped_by} (overrides {', '.join(self.reasons)})"
        return "no rule keeps it"


@attrs.frozen
class RetentionPlan:
    """Every backup of the catalog, oldest first, with keep or delete and the reasons."""

    decisions: tuple[Decision, ...]
    policy: RetentionPolicy
    now: dt.datetime
    tz: dt.tzinfo

    @property
    def keep(self) -> tuple[Manifest, ...]:
        """The backups the plan keeps."""
        return tuple(d.manifest for d in self.decisions if d.keep)

    @property
    def delete(self) -> tuple[Manifest, ...]:
        return tuple(d.manifest for d in self.decisions if not d.keep)

    @property
    def deletion_order(self) -> tuple[Manifest, ...]:
        """Backups to delete, each incremental before the backups it depends on.

        Deleting in this order, a crash part way never leaves a remaining incremental
        whose parent is gone.
        """
        doomed = {m.id: m for m in self.delete}
        children: dict[str, list[Manifest]] = {}
        for m in doomed.values():
            if m.kind == "incremental" and m.parent_id in doomed:
                children.setdefault(m.parent_id, []).append(m)
        order: list[Manifest] = []
        done: set[str] = set()

        def visit(m: Manifest) -> None:  # depth-first, children first; loops stop at `done`
            stack = [(m, False)]
            while stack:
                node, expanded = stack.pop()
                if expanded:
                    order.append(node)
                    continue
                if node.id in done:
                    continue
                done.add(node.id)
                stack.append((node, True))
                stack.extend((c, False) for c in children.get(node.id, ()))

        for m in reversed(self.delete):
            visit(m)
        return tuple(order)

    def decision(self, backup_id: str) -> Decision:
        """The decision on backup *backup_id*."""
        for d in self.decisions:
            if d.manifest.id == backup_id:
                return d
        raise KeyError(backup_id)

    def for_set(self, set_name: str) -> RetentionPlan:
        """Only the decisions on set *set_name*'s backups."""
        picked = tuple(d for d in self.decisions if d.manifest.set_name == set_name)
        return attrs.evolve(self, decisions=picked)

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per backup, oldest first (the dry-run table; pandas-friendly)."""
        return [
            {
                "id": d.manifest.id,
                "set": d.manifest.set_name,
                "created_at": d.manifest.created_at,
                "kind": d.manifest.kind,
                "tier": d.manifest.tier,
                "stored_size": d.manifest.stored_size,
                "action": d.action,
                "reasons": ", ".join(d.reasons),
                "capped_by": d.capped_by,
                "explanation": d.explanation,
            }
            for d in self.decisions
        ]


def plan_retention(
    catalog: Catalog | Iterable[Manifest],
    policy: RetentionPolicy,
    *,
    now: dt.datetime,
    tz: dt.tzinfo,
) -> RetentionPlan:
    """Decide keep or delete for every backup in *catalog* under *policy*.

    *now* is a timezone-aware time (ages and "in the future" are measured from it);
    *tz* is the time zone calendar buckets are counted in, e.g.
    ``zoneinfo.ZoneInfo("Europe/Berlin")``.
    """
    if not isinstance(catalog, Catalog):
        catalog = Catalog(catalog)
    if not isinstance(policy, RetentionPolicy):
        raise ConfigError(f"policy must be a RetentionPolicy, got {type(policy).__name__}")
    if not isinstance(now, dt.datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError(f"now={now!r} has no time zone; pass an aware datetime")
    if not isinstance(tz, dt.tzinfo):
        raise ConfigError(f"tz={tz!r} is not a time zone; pass e.g. ZoneInfo('Europe/Berlin')")
    now = now.astimezone(dt.UTC)
    by_set: dict[str, list[Manifest]] = {}
    for m in catalog.manifests:
        by_set.setdefault(m.set_name, []).append(m)
    decided: dict[str, Decision] = {}
    for backups in by_set.values():
        decided.update(_plan_set(backups, policy, now, tz))
    return RetentionPlan(
        decisions=tuple(decided[m.id] for m in catalog.manifests),
        policy=policy,
        now=now,
        tz=tz,
    )


def _plan_set(
    backups: list[Manifest], policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> dict[str, Decision]:
    """Decisions for one set's backups (given oldest first)."""
    by_id = {m.id: m for m in backups}
    guards: dict[str, list[str]] = {}  # sparse: only backups with a guard
    present = [m for m in reversed(backups) if m.created_at <= now]  # newest first

    # 1. guards
    for m in backups:
        if policy.pinned_tag in m.tags:
            guards.setdefault(m.id, []).append(PINNED)
    newest_full = next((m for m in present if m.kind == "full"), None)
    if newest_full is not None:
        guards.setdefault(newest_full.id, []).append(NEWEST_FULL)
    for m in backups:
        if m.created_at > now:
            guards.setdefault(m.id, []).append(IN_THE_FUTURE)

    # 2. keep rules
    rules = _keep_rules(present, policy, now, tz)

    # 3. caps and 4. chains: guarded backups and their chains first, then the backups
    # the rules keep, newest first, each with the part of its chain not yet kept.
    kept: set[str] = set()
    for m in backups:
        if m.id in guards:
            kept.update(_unkept_chain(m, kept, by_id, budget=None) or ())
    capped: dict[str, str] = {}
    max_age_cutoff = None if policy.max_age is None else policy.max_age.before(now, tz)
    max_age = f"max_age {format_duration(policy.max_age)}" if policy.max_age else ""
    for m in present:
        if m.id not in rules:
            continue
        if max_age_cutoff is not None and m.created_at <= max_age_cutoff:
            capped[m.id] = max_age
            continue
        if m.id in kept:
            continue
        budget = None if policy.max_count is None else policy.max_count - len(kept)
        if m.kind != "incremental" and (budget is None or budget > 0):
            kept.add(m.id)  # the common case, without the chain walk
            continue
        chain = _unkept_chain(m, kept, by_id, budget=budget)
        if chain is None:
            capped[m.id] = f"max_count {policy.max_count}"
            continue
        kept.update(chain)

    bases = _bases_of_kept_incrementals(kept, by_id)
    none: list[str] = []
    return {
        m.id: Decision(
            manifest=m,
            keep=m.id in kept,
            reasons=(
                *guards.get(m.id, none),
                *rules.get(m.id, none),
                *((BASE_OF_KEPT,) if m.id in bases else ()),
            ),
            capped_by=capped.get(m.id),
        )
        for m in backups
    }


def _keep_rules(
    present: list[Manifest], policy: RetentionPolicy, now: dt.datetime, tz: dt.tzinfo
) -> dict[str, list[str]]:
    """Every keep rule's reasons for the backups (newest first) it keeps, sparse."""
    rules: dict[str, list[str]] = {}
    if not present:
        return rules
    take = len(present) if policy.keep_last == ALL else policy.keep_last
    for n, m in enumerate(present[:take], start=1):
        rules.setdefault(m.id, []).append(f"last #{n}")
    for index, kind in enumerate(BUCKETS):
        wanted: int = getattr(policy, f"keep_{kind}")
        if wanted:
            _fill_buckets(rules, present, index, kind, wanted, policy.oldest_rule, tz)
    anchor = present[0].created_at if policy.within_anchor == "newest" else now
    if policy.keep_within is not None:
        within = f"within {format_duration(policy.keep_within)}"
        cutoff = policy.keep_within.before(anchor, tz)
        for m in present:
            if m.created_at <= cutoff:
                break
            rules.setdefault(m.id, []).append(within)
    for kind in WITHIN_BUCKETS:
        window: Duration | None = getattr(policy, f"keep_within_{kind}")
        if window is not None:
            inside = [m for m in present if m.created_at > window.before(anchor, tz)]
            name = f"within {format_duration(window)} {kind}"
            _fill_buckets(rules, inside, BUCKETS.index(kind), name, ALL,
                          policy.oldest_rule and bool(inside) and inside[-1] is present[-1], tz, numbered=False)
    for tags in policy.keep_tag:
        label = f"tag {','.join(tags)}"
        for m in present:
            if set(tags) <= set(m.tags):
                rules.setdefault(m.id, []).append(label)
    if policy.tier_ages:
        labels = {t: f"tier {t} < {format_duration(a)}" for t, a in policy.tier_ages.items()}
        cutoffs = {t: a.before(now, tz) for t, a in policy.tier_ages.items()}
        for m in present:
            tier = "incremental" if m.kind == "incremental" else m.tier
            if tier in cutoffs and m.created_at > cutoffs[tier]:
                rules.setdefault(m.id, []).append(labels[tier])
    return rules


def _fill_buckets(
    rules: dict[str, list[str]],
    backups: list[Manifest],
    index: int,
    name: str,
    wanted: int,
    oldest: bool,
    tz: dt.tzinfo,
    *,
    numbered: bool = True,
) -> None:
    """Keep the newest of each of the *wanted* newest buckets (``ALL``: every bucket) of
    *backups* (newest first); with *oldest*, also the oldest backup if buckets are left.

    Each rule counts on its own: a bucket is filled by its newest backup whichever other
    rules keep it, as restic counts.
    """
    seen: set[str] = set()
    last = None
    for m in backups:
        if wanted != ALL and len(seen) >= wanted:
            break
        label = _bucket_labels(m.created_at, tz)[index]
        if label not in seen:
            seen.add(label)
            last = m
            number = f" #{len(seen)}" if numbered else ""
            rules.setdefault(m.id, []).append(f"{name}{number} {label}")
    if oldest and backups and (wanted == ALL or len(seen) < wanted) and last is not backups[-1]:
        label = _bucket_labels(backups[-1].created_at, tz)[index]
        rules.setdefault(backups[-1].id, []).append(f"oldest {name} {label}")


def _unkept_chain(
    m: Manifest, kept: set[str], by_id: Mapping[str, Manifest], *, budget: int | None
) -> list[str] | None:
    """*m* and the backups it depends on that are not in *kept* yet.

    None if there are more than *budget* of them. The chain follows ``parent_id``
    within the set down to a full backup, and stops at a missing parent or a loop.
    """
    chain: list[str] = []
    seen: set[str] = set()
    current: Manifest | None = m
    while current is not None and current.id not in kept and current.id not in seen:
        chain.append(current.id)
        seen.add(current.id)
        if budget is not None and len(chain) > budget:
            return None
        if current.kind != "incremental" or current.parent_id is None:
            break
        current = by_id.get(current.parent_id)
    return chain


def _bases_of_kept_incrementals(kept: set[str], by_id: Mapping[str, Manifest]) -> set[str]:
    bases: set[str] = set()
    for backup_id in kept:
        m = by_id[backup_id]
        while m.kind == "incremental" and m.parent_id is not None:
            parent = by_id.get(m.parent_id)
            if parent is None or parent.id in bases:
                break
            bases.add(parent.id)
            m = parent
    return bases


@functools.lru_cache(maxsize=1 << 16)
def _bucket_labels(created_at: dt.datetime, tz: dt.tzinfo) -> tuple[str, ...]:
    """The secondly, minutely, hourly, daily, weekly, monthly and yearly bucket of a time,
    in *tz* (the order of ``BUCKETS``).

    Seconds, minutes and hours are labelled with their UTC offset, so the hour repeated
    when daylight saving time ends is two buckets, as it is two hours.
    """
    local = created_at.astimezone(tz)
    offset = local.utcoffset() or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(offset) // dt.timedelta(minutes=1)
    zone = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    day = local.date().isoformat()
    iso = local.isocalendar()
    return (
        f"{day}T{local.hour:02d}:{local.minute:02d}:{local.second:02d}{zone}",
        f"{day}T{local.hour:02d}:{local.minute:02d}{zone}",
        f"{day}T{local.hour:02d}:00{zone}",
        day,
        f"{iso.year:04d}-W{iso.week:02d}",
        f"{local.year:04d}-{local.month:02d}",
        f"{local.year:04d}",
    )
