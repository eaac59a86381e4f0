"""The retention policy: which rules are set, read from config and written back.

:class:`RetentionPolicy` holds restic's rules with restic's names (``keep_last``,
``keep_hourly`` ... ``keep_yearly``, ``keep_within``, ``keep_within_hourly`` ...
``keep_within_yearly``, ``keep_tag``), borg's ``keep_secondly`` and ``keep_minutely``,
backupkit's ``tier_ages``, the caps ``max_age`` and ``max_count``, and the pin
``pinned_tag``, and ``failed_logs``: how long the log of a run that made no backup is
kept. What the rules mean is :mod:`backupkit.core.retention`'s business.
"""

from __future__ import annotations

import datetime as dt
import types
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from backupkit.core.durations import (
    Duration,
    format_duration,
    months_as_mo,
    parse_duration,
    says_months_as_m,
)
from backupkit.core.tiers import TIERS
from backupkit.errors import ConfigError, DurationUnitWarning, unknown_key

#: Seed 002's tier ages: daily fulls 7 days, weekly 30, monthly 365, incrementals 24 hours.
TIER_AGES: Mapping[str, dt.timedelta] = types.MappingProxyType(
    {
        "daily": dt.timedelta(days=7),
        "weekly": dt.timedelta(days=30),
        "monthly": dt.timedelta(days=365),
        "incremental": dt.timedelta(hours=24),
    }
)

#: Calendar bucket kinds, finest first (``secondly`` and ``minutely`` are borg's).
BUCKETS = ("secondly", "minutely", "hourly", "daily", "weekly", "monthly", "yearly")
#: The kinds restic's ``keep_within_<kind>`` rules count.
WITHIN_BUCKETS = ("hourly", "daily", "weekly", "monthly", "yearly")
#: A count of ``-1`` (``"all"`` in config) keeps every bucket.
ALL = -1
#: What ``keep_within*`` windows end at: the newest backup of the set (restic), or now (borg).
ANCHORS = ("newest", "now")

COUNT_KEYS = ("keep_last", *(f"keep_{kind}" for kind in BUCKETS))
WITHIN_KEYS = ("keep_within", *(f"keep_within_{kind}" for kind in WITHIN_BUCKETS))
_KEYS = (*COUNT_KEYS, *WITHIN_KEYS, "keep_tag", "tier_ages", "max_age", "max_count", "pinned_tag",
         "oldest_rule", "within_anchor", "failed_logs")
#: How long the log of a failed run (one that stored no backup) is kept by default.
FAILED_LOGS = Duration(exact=dt.timedelta(days=30))
_WHERE = "retention policy"

_NO_RULE = (
    "has no keep rule (keep_last, keep_hourly ... keep_yearly, keep_within, keep_within_daily "
    "..., keep_tag or tier_ages); max_age and max_count only remove backups, so it would delete "
    "all but the newest full backup of each set; add a keep rule"
)


# -- reading values: one function per kind of value, naming where and what on a defect ---


def read_count(raw: Any, name: str, where: str) -> int:
    """A bucket count: a whole number >= 0, or ``-1`` / ``"all"`` for every bucket."""
    if isinstance(raw, str) and raw.strip().lower() == "all":
        return ALL
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < ALL:
        raise ConfigError(
            f"{where}: {name} must be a whole number >= 0, or -1 or 'all' for every one, got {raw!r}"
        )
    return raw


def read_duration(raw: Any, name: str, where: str) -> Duration:
    """A duration: a :class:`Duration`, a ``timedelta``, or text like ``'7d'`` / ``'1y 6m'``.

    Text that spells months ``m`` is read as months, as restic and borg do, with a
    :class:`DurationUnitWarning` saying so (once per value: the default warning filter),
    as earlier backupkit builds read ``m`` as minutes. Months only ever keep more than
    minutes would, so the new reading never deletes more than the old one.
    """
    if isinstance(raw, dt.timedelta):
        raw = Duration.of(raw)
    if isinstance(raw, Duration):
        if not raw.positive:
            raise ConfigError(f"{where}: {name} must be a duration longer than zero, got {raw!r}")
        return raw
    if isinstance(raw, str):
        try:
            value = parse_duration(raw)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {name}: {exc}") from None
        if says_months_as_m(raw):
            warnings.warn(
                f"{where}: {name} {raw!r} is {format_duration(value)} ('m' is months, as in restic "
                f"and borg; earlier backupkit builds read it as minutes): write "
                f"{months_as_mo(raw)!r} to say months without this warning, or 'min' for minutes",
                DurationUnitWarning,
                stacklevel=2,
            )
        return value
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raise ConfigError(
            f"{where}: {name} {raw!r} has no unit: write e.g. '{raw}d' for days or '{raw}h' for "
            "hours (units y m w d h min s); a bare number is never guessed"
        )
    raise ConfigError(f"{where}: {name} must be a duration like '7d' or '1y', got {raw!r}")


def read_tag_sets(raw: Any, where: str) -> tuple[tuple[str, ...], ...]:
    """``keep_tag``: tag sets, a backup is kept if it has every tag of one of them.

    ``"prod,db"`` is one set; a list holds several, each ``"prod,db"`` or ``["prod", "db"]``.
    """
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, Sequence) or not items:
        raise ConfigError(f"{where}: keep_tag must be tags like 'prod,db' or a list of them, got {raw!r}")
    sets: list[tuple[str, ...]] = []
    for item in items:
        tags = item.split(",") if isinstance(item, str) else item
        if not isinstance(tags, Sequence) or isinstance(tags, str):
            raise ConfigError(f"{where}: keep_tag entry {item!r} must be tags like 'prod,db' or a list")
        names = tuple(t.strip() if isinstance(t, str) else t for t in tags)
        if not names or not all(isinstance(t, str) and t for t in names):
            raise ConfigError(
                f"{where}: keep_tag entry {item!r} has an empty tag; an empty set would keep everything"
            )
        sets.append(tuple(dict.fromkeys(names)))
    return tuple(dict.fromkeys(sets))


def _read_tier_ages(raw: Any, where: str) -> Mapping[str, Duration]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: tier_ages must map tiers to durations like '7d', got {raw!r}")
    for tier in raw:
        if tier not in TIERS:
            raise ConfigError(
                f"{where}: tier_ages has unknown tier {tier!r}; tiers are: {', '.join(TIERS)}"
            )
    ordered = sorted(raw, key=TIERS.index)
    return types.MappingProxyType(
        {t: read_duration(raw[t], f"tier_ages[{t!r}]", where) for t in ordered}
    )


def _read_max_count(raw: Any, where: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        raise ConfigError(f"{where}: max_count must be a whole number >= 1, got {raw!r}")
    return raw


def _read_text(raw: Any, name: str, where: str, choices: tuple[str, ...] = ()) -> str:
    if not isinstance(raw, str) or not raw or (choices and raw not in choices):
        wanted = " or ".join(repr(c) for c in choices) if choices else "a non-empty string"
        raise ConfigError(f"{where}: {name} must be {wanted}, got {raw!r}")
    return raw


def _read_flag(raw: Any, name: str, where: str) -> bool:
    if not isinstance(raw, bool):
        raise ConfigError(f"{where}: {name} must be true or false, got {raw!r}")
    return raw


def _read(key: str, raw: Any, where: str) -> Any:
    """*raw* for *key*, checked and in the type the policy holds."""
    if key in COUNT_KEYS:
        return read_count(raw, key, where)
    if key in WITHIN_KEYS or key == "max_age":
        return None if raw is None else read_duration(raw, key, where)
    if key == "failed_logs":
        return read_duration(raw, key, where)
    if key == "keep_tag":
        return read_tag_sets(raw, where)
    if key == "tier_ages":
        return _read_tier_ages(raw, where)
    if key == "max_count":
        return None if raw is None else _read_max_count(raw, where)
    if key == "pinned_tag":
        return _read_text(raw, key, where)
    if key == "within_anchor":
        return _read_text(raw, key, where, ANCHORS)
    return _read_flag(raw, key, where)


# -- attrs converters: the constructor reads values like from_dict does -------------------


def _count(value: Any) -> Any:
    return ALL if isinstance(value, str) and value.strip().lower() == "all" else value


def _duration(value: Any) -> Any:
    return value if value is None else read_duration(value, "duration", _WHERE)


def _tag_sets(value: Any) -> Any:
    return value if value == () else read_tag_sets(value, _WHERE)


def _tier_ages(value: Any) -> Any:
    return _read_tier_ages(value, _WHERE)


def _validate(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _read(attribute.name, value, _WHERE)


@attrs.frozen
class RetentionPolicy:
    """What to keep. Every field is optional, but at least one keep rule must be set.

    Counts are numbers of buckets (0 = rule off, -1 or ``"all"`` = every bucket). Durations
    are :class:`~backupkit.core.durations.Duration` values, a ``timedelta`` or text
    (``RetentionPolicy(keep_within="7d")``). ``keep_tag`` holds tag sets. ``tier_ages`` maps
    a tier (``daily``, ``weekly``, ``monthly``, ``incremental``) to how long backups of that
    tier are kept; :data:`TIER_AGES` holds the standard tier ages. ``max_age`` and
    ``max_count`` are caps applied after the keep rules. Backups tagged ``pinned_tag`` are
    never deleted. ``oldest_rule`` (restic's) keeps the oldest backup for a bucket rule that
    has buckets to spare; ``within_anchor`` says whether ``keep_within*`` windows end at the
    newest backup of the set or at now. ``failed_logs`` is how long the run log of a run
    that stored no backup (a failed one) is kept; a backup's own log goes with it.
    """

    keep_last: int = attrs.field(default=0, converter=_count, validator=_validate)
    keep_secondly: int = attrs.field(default=0, converter=_count, validator=_validate)
    keep_minutely: int = attrs.field(default=0, converter=_count, validator=_validate)
    keep_hourly: int = attrs.field(default=0, converter=_count, validator=_validate)
    keep_daily: int = attrs.field(default=0, converter=_count, validator=_validate)
    keep_weekly: int = attrs.field(default=0, converter=_count, validator=_validate)
    keep_monthly: int = attrs.field(default=0, converter=_count, validator=_validate)
    keep_yearly: int = attrs.field(default=0, converter=_count, validator=_validate)
    keep_within: Duration | None = attrs.field(default=None, converter=_duration)
    keep_within_hourly: Duration | None = attrs.field(default=None, converter=_duration)
    keep_within_daily: Duration | None = attrs.field(default=None, converter=_duration)
    keep_within_weekly: Duration | None = attrs.field(default=None, converter=_duration)
    keep_within_monthly: Duration | None = attrs.field(default=None, converter=_duration)
    keep_within_yearly: Duration | None = attrs.field(default=None, converter=_duration)
    keep_tag: tuple[tuple[str, ...], ...] = attrs.field(default=(), converter=_tag_sets)
    tier_ages: Mapping[str, Duration] = attrs.field(factory=dict, converter=_tier_ages, hash=False)
    max_age: Duration | None = attrs.field(default=None, converter=_duration)
    max_count: int | None = attrs.field(default=None, validator=_validate)
    pinned_tag: str = attrs.field(default="keep", validator=_validate)
    oldest_rule: bool = attrs.field(default=True, validator=_validate)
    within_anchor: str = attrs.field(default="newest", validator=_validate)
    failed_logs: Duration = attrs.field(default=FAILED_LOGS, converter=_duration)

    def __attrs_post_init__(self) -> None:
        if not self.has_keep_rule:
            raise ConfigError(f"{_WHERE} {_NO_RULE}")

    @property
    def has_keep_rule(self) -> bool:
        """Whether any rule keeps backups (caps and the pin do not)."""
        return (
            any(getattr(self, key) for key in COUNT_KEYS)
            or any(getattr(self, key) is not None for key in WITHIN_KEYS)
            or bool(self.keep_tag) or bool(self.tier_ages)
        )

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
            values[key] = _read(key, raw, origin)
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(_WHERE, origin, 1)) from None

    def to_dict(self) -> dict[str, Any]:
        """The rules that are set, durations spelled like ``'7d'``; ``from_dict`` reads it."""
        out: dict[str, Any] = {}
        for key in COUNT_KEYS:
            count = getattr(self, key)
            if count:
                out[key] = "all" if count == ALL else count
        for key in WITHIN_KEYS:
            if getattr(self, key) is not None:
                out[key] = format_duration(getattr(self, key))
        if self.keep_tag:
            out["keep_tag"] = [list(tags) for tags in self.keep_tag]
        if self.tier_ages:
            out["tier_ages"] = {t: format_duration(a) for t, a in self.tier_ages.items()}
        if self.max_age is not None:
            out["max_age"] = format_duration(self.max_age)
        if self.max_count is not None:
            out["max_count"] = self.max_count
        if self.pinned_tag != "keep":
            out["pinned_tag"] = self.pinned_tag
        if not self.oldest_rule:
            out["oldest_rule"] = False
        if self.within_anchor != "newest":
            out["within_anchor"] = self.within_anchor
        if self.failed_logs != FAILED_LOGS:
            out["failed_logs"] = format_duration(self.failed_logs)
        return out

    def describe(self) -> str:
        """One line, e.g. ``keep_daily=7 keep_within=1y6mo keep_tag=prod,db max_count=50``."""
        parts: list[str] = []
        for key, value in self.to_dict().items():
            if key == "keep_tag":
                parts.extend(f"keep_tag={','.join(tags)}" for tags in value)
                continue
            if isinstance(value, dict):
                value = ",".join(f"{t}:{a}" for t, a in value.items())
            elif isinstance(value, bool):
                value = str(value).lower()
            parts.append(f"{key}={value}")
        return " ".join(parts)
