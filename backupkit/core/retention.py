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
   first: ``keep_last``; ``keep_hourly`` / ``daily`` / ``weekly`` (ISO weeks) /
   ``monthly`` / ``yearly`` calendar buckets in *tz*, counted the way restic does (a
   bucket holding several backups counts once, by its newest; one backup can fill
   buckets of several kinds; buckets are keyed by kind and value so kinds never
   collide); ``keep_within`` a duration of *now*; ``tier_ages`` (a backup of tier T is
   kept while younger than the age given for T).
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
import re
import types
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from backupkit.core.catalog import Catalog
from backupkit.core.manifest import Manifest
from backupkit.core.tiers import TIERS
from backupkit.errors import ConfigError, unknown_key

#: Seed 002's tier ages: daily fulls 7 days, weekly 30, monthly 365, incrementals 24 hours.
TIER_AGES: Mapping[str, dt.timedelta] = types.MappingProxyType(
    {
        "daily": dt.timedelta(days=7),
        "weekly": dt.timedelta(days=30),
        "monthly": dt.timedelta(days=365),
        "incremental": dt.timedelta(hours=24),
    }
)

#: Calendar bucket kinds, finest first.
BUCKETS = ("hourly", "daily", "weekly", "monthly", "yearly")

PINNED = "pinned"
NEWEST_FULL = "newest full"
IN_THE_FUTURE = "in the future"
BASE_OF_KEPT = "base of kept incremental"

_COUNT_KEYS = ("keep_last", *(f"keep_{kind}" for kind in BUCKETS))
_DURATION_KEYS = ("keep_within", "max_age")
_KEYS = (*_COUNT_KEYS, "keep_within", "tier_ages", "max_age", "max_count", "pinned_tag")
_WHERE = "retention policy"


# -- durations ------------------------------------------------------------------------

_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(text: str) -> dt.timedelta:
    """``'7d'``, ``'24h'``, ``'1d12h'``, ``'2w'``, ``'90m'`` as a positive timedelta."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        raise ConfigError(
            f"duration {text!r} is not like '7d', '24h', '1d12h' or '90m' (units w d h m s)"
        )
    seconds = sum(int(g or 0) * unit for g, (_, unit) in zip(match.groups(), _UNITS, strict=True))
    if seconds <= 0:
        raise ConfigError(f"duration {text!r} must be longer than zero")
    return dt.timedelta(seconds=seconds)


def format_duration(value: dt.timedelta) -> str:
    """The shortest ``parse_duration`` spelling of *value* in one unit: ``7d``, ``36h``."""
    if value % dt.timedelta(seconds=1):
        return f"{value.total_seconds():g}s"
    seconds = value // dt.timedelta(seconds=1)
    for suffix, unit in _UNITS[1:]:  # days, not weeks: '14d' reads better than '2w'
        if seconds % unit == 0:
            return f"{seconds // unit}{suffix}"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")


# -- the policy -----------------------------------------------------------------------


def _check_count(name: str, value: Any, where: str, *, minimum: int = 0) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}: {name} must be a whole number >= {minimum}, got {value!r}")


def _check_duration(name: str, value: Any, where: str) -> None:
    if not isinstance(value, dt.timedelta) or value <= dt.timedelta(0):
        raise ConfigError(f"{where}: {name} must be a duration longer than zero, got {value!r}")


def _check_tier_ages(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: tier_ages must map tiers to durations, got {value!r}")
    for tier, age in value.items():
        if tier not in TIERS:
            raise ConfigError(
                f"{where}: tier_ages has unknown tier {tier!r}; tiers are: {', '.join(TIERS)}"
            )
        _check_duration(f"tier_ages[{tier!r}]", age, where)


def _has_keep_rule(values: Mapping[str, Any]) -> bool:
    return (
        any(values.get(key) for key in _COUNT_KEYS)
        or values.get("keep_within") is not None
        or bool(values.get("tier_ages"))
    )


_NO_RULE = (
    "has no keep rule (keep_last, keep_hourly/daily/weekly/monthly/yearly, keep_within or "
    "tier_ages); max_age and max_count only remove backups, so it would delete all but the "
    "newest full backup of each set; add a keep rule"
)


def _validate_count(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _check_count(attribute.name, value, _WHERE)


def _validate_optional_duration(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _check_duration(attribute.name, value, _WHERE)


def _validate_max_count(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _check_count("max_count", value, _WHERE, minimum=1)


def _validate_tier_ages(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _check_tier_ages(value, _WHERE)


def _validate_pinned_tag(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{_WHERE}: pinned_tag must be a non-empty string, got {value!r}")


def _frozen_tier_ages(value: Any) -> Any:
    if isinstance(value, Mapping):
        return types.MappingProxyType({k: value[k] for k in TIERS if k in value} | dict(value))
    return value


@attrs.frozen
class RetentionPolicy:
    """What to keep. Every field is optional, but at least one keep rule must be set.

    Counts are numbers of buckets (0 = rule off). ``tier_ages`` maps a tier (``daily``,
    ``weekly``, ``monthly``, ``incremental``) to how long backups of that tier are kept;
    :data:`TIER_AGES` holds the standard tier ages. ``max_age`` and ``max_count`` are caps
    applied after the keep rules. Backups tagged ``pinned_tag`` are never deleted.
    """

    keep_last: int = attrs.field(default=0, validator=_validate_count)
    keep_hourly: int = attrs.field(default=0, validator=_validate_count)
    keep_daily: int = attrs.field(default=0, validator=_validate_count)
    keep_weekly: int = attrs.field(default=0, validator=_validate_count)
    keep_monthly: int = attrs.field(default=0, validator=_validate_count)
    keep_yearly: int = attrs.field(default=0, validator=_validate_count)
    keep_within: dt.timedelta | None = attrs.field(
        default=None, validator=_validate_optional_duration
    )
    tier_ages: Mapping[str, dt.timedelta] = attrs.field(
        factory=dict, converter=_frozen_tier_ages, validator=_validate_tier_ages, hash=False
    )
    max_age: dt.timedelta | None = attrs.field(default=None, validator=_validate_optional_duration)
    max_count: int | None = attrs.field(default=None, validator=_validate_max_count)
    pinned_tag: str = attrs.field(default="keep", validator=_validate_pinned_tag)

    def __attrs_post_init__(self) -> None:
        if not _has_keep_rule(attrs.asdict(self, recurse=False)):
            raise ConfigError(f"{_WHERE} {_NO_RULE}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = _WHERE) -> RetentionPolicy:
        """A policy from config (TOML, JSON, a notebook dict); durations as ``'7d'``.

        Every defect is a one-line :class:`ConfigError` naming *origin* and the key.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{origin} must be a table of rules, got {data!r}")
        values: dict[str, Any] = {}
        for key, raw in data.items():
            if key not in _KEYS:
                raise unknown_key(origin, key, _KEYS)
            if key in _COUNT_KEYS:
                _check_count(key, raw, origin)
                values[key] = raw
            elif key in _DURATION_KEYS:
                values[key] = _duration_value(key, raw, origin)
            elif key == "max_count":
                _check_count(key, raw, origin, minimum=1)
                values[key] = raw
            elif key == "tier_ages":
                if not isinstance(raw, Mapping):
                    raise ConfigError(f"{origin}: tier_ages must map tiers to durations like '7d'")
                ages = {t: _duration_value(f"tier_ages[{t!r}]", a, origin) for t, a in raw.items()}
                _check_tier_ages(ages, origin)
                values[key] = ages
            else:
                if not isinstance(raw, str) or not raw:
                    raise ConfigError(f"{origin}: pinned_tag must be a non-empty string")
                values[key] = raw
        if not _has_keep_rule(values):
            raise ConfigError(f"{origin} {_NO_RULE}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The rules that are set, durations spelled like ``'7d'``; ``from_dict`` reads it."""
        out: dict[str, Any] = {key: getattr(self, key) for key in _COUNT_KEYS if getattr(self, key)}
        if self.keep_within is not None:
            out["keep_within"] = format_duration(self.keep_within)
        if self.tier_ages:
            out["tier_ages"] = {t: format_duration(a) for t, a in self.tier_ages.items()}
        if self.max_age is not None:
            out["max_age"] = format_duration(self.max_age)
        if self.max_count is not None:
            out["max_count"] = self.max_count
        if self.pinned_tag != "keep":
            out["pinned_tag"] = self.pinned_tag
        return out

    def describe(self) -> str:
        """One line, e.g. ``keep_daily=7 keep_weekly=4 max_count=50``."""
        parts = []
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                value = ",".join(f"{t}:{a}" for t, a in value.items())
            parts.append(f"{key}={value}")
        return " ".join(parts)


def _duration_value(name: str, raw: Any, where: str) -> dt.timedelta:
    if isinstance(raw, dt.timedelta):
        _check_duration(name, raw, where)
        return raw
    if isinstance(raw, str):
        try:
            return parse_duration(raw)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {name}: {exc}") from None
    raise ConfigError(f"{where}: {name} must be a duration like '7d' or '24h', got {raw!r}")


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
    guards: dict[str, list[str]] = {}  # sparse: only backups with a guard / a rule
    rules: dict[str, list[str]] = {}
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
    for n, m in enumerate(present[: policy.keep_last], start=1):
        rules.setdefault(m.id, []).append(f"last #{n}")
    for index, kind in enumerate(BUCKETS):
        wanted: int = getattr(policy, f"keep_{kind}")
        seen: set[tuple[str, str]] = set()  # keyed by kind too: kinds never share a bucket
        for m in present:
            if len(seen) >= wanted:
                break
            label = _bucket_labels(m.created_at, tz)[index]
            if (kind, label) not in seen:
                seen.add((kind, label))
                rules.setdefault(m.id, []).append(f"{kind} #{len(seen)} {label}")
    if policy.keep_within is not None:
        within = f"within {format_duration(policy.keep_within)}"
        for m in present:
            if now - m.created_at >= policy.keep_within:
                break
            rules.setdefault(m.id, []).append(within)
    if policy.tier_ages:
        labels = {t: f"tier {t} < {format_duration(a)}" for t, a in policy.tier_ages.items()}
        for m in present:
            tier = "incremental" if m.kind == "incremental" else m.tier
            age = policy.tier_ages.get(tier)
            if age is not None and now - m.created_at < age:
                rules.setdefault(m.id, []).append(labels[tier])

    # 3. caps and 4. chains: guarded backups and their chains first, then the backups
    # the rules keep, newest first, each with the part of its chain not yet kept.
    kept: set[str] = set()
    for m in backups:
        if m.id in guards:
            kept.update(_unkept_chain(m, kept, by_id, budget=None) or ())
    capped: dict[str, str] = {}
    for m in present:
        if m.id not in rules:
            continue
        if policy.max_age is not None and now - m.created_at >= policy.max_age:
            capped[m.id] = f"max_age {format_duration(policy.max_age)}"
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
def _bucket_labels(created_at: dt.datetime, tz: dt.tzinfo) -> tuple[str, str, str, str, str]:
    """The hourly, daily, weekly, monthly and yearly bucket of a time, in *tz*.

    An hour is labelled with its UTC offset, so the hour repeated when daylight saving
    time ends is two buckets, as it is two hours.
    """
    local = created_at.astimezone(tz)
    offset = local.utcoffset() or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(offset) // dt.timedelta(minutes=1)
    iso = local.isocalendar()
    return (
        f"{local.date().isoformat()}T{local.hour:02d}:00{sign}{minutes // 60:02d}:{minutes % 60:02d}",
        local.date().isoformat(),
        f"{iso.year:04d}-W{iso.week:02d}",
        f"{local.year:04d}-{local.month:02d}",
        f"{local.year:04d}",
    )
