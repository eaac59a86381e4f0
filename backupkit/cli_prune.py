"""The ``prune`` command's arguments: restic's rule flags (``--keep-daily 7 --keep-within 1y
--keep-tag prod,db``), borg's ``--keep-secondly``/``--keep-minutely``, the caps, and the
simulation; and the policy the flags make."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any

from backupkit import cli_metrics
from backupkit.core.durations import parse_duration, parse_interval
from backupkit.core.policy import BUCKETS, TIER_AGES, WITHIN_BUCKETS, RetentionPolicy
from backupkit.errors import ConfigError


def add_parser(sub: Any, common: Callable[..., None]) -> None:
    """Add ``prune`` to the ``backupkit`` parser."""
    p = sub.add_parser(
        "prune", help="apply the retention policy: print the plan; delete with --yes",
        description="Without --yes nothing is deleted: the plan lists every backup with keep or "
                    "delete and the rule behind it. Rule flags replace the configured policy.",
    )
    common(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--yes", action="store_true", help="really delete what the plan drops")
    mode.add_argument("--dry-run", action="store_true",
                      help="only print the plan, the run logs and orphans that would go (the default)")
    for flag in ("last", *BUCKETS):
        p.add_argument(f"--keep-{flag}", metavar="N", dest=f"keep_{flag}",
                       help="-1 or 'all': every one" if flag == "last" else None)
    p.add_argument("--keep-within", metavar="DURATION",
                   help="keep everything within this of the newest backup, e.g. 7d, 1y6m, 2w")
    for flag in WITHIN_BUCKETS:
        p.add_argument(f"--keep-within-{flag}", metavar="DURATION", dest=f"keep_within_{flag}",
                       help=f"keep the newest {flag} backups within this" if flag == "hourly" else None)
    p.add_argument("--keep-tag", action="append", metavar="TAG[,TAG]", dest="keep_tag",
                   help="keep backups with all these tags (repeatable: any of the lists)")
    p.add_argument("--within-anchor", choices=("newest", "now"),
                   help="where keep-within windows end (default: the newest backup of the set)")
    p.add_argument("--no-oldest-rule", action="store_false", dest="oldest_rule", default=None,
                   help="do not keep the oldest backup for a rule with buckets to spare")
    p.add_argument("--tiered", action="store_true",
                   help="the standard tier ages: daily 7d, weekly 30d, monthly 365d, incremental 24h")
    p.add_argument("--max-age", metavar="DURATION", help="cap: delete older (never the newest full)")
    p.add_argument("--max-count", type=int, metavar="N", help="cap: hold at most N per set")
    p.add_argument("--simulate", metavar="DURATION",
                   help="instead of pruning, run the policy forward this long (e.g. 400d)")
    p.add_argument("--every", metavar="DURATION", default="24h", help="simulated backup interval")
    p.add_argument("--schedule", metavar="KINDS", default="full",
                   help="kinds cycled by the simulation, e.g. full,incremental,incremental,incremental")
    cli_metrics.add_flag(p)


def _count(flag: str, text: str) -> int | str:
    """A count flag's value: a whole number, -1 or 'all' (the policy checks the range)."""
    if text.strip().lower() == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a count; give a whole number, or -1 or 'all'") from None


def policy_from_flags(args: argparse.Namespace) -> RetentionPolicy | None:
    """The policy the rule flags give (read like a config table), or None without any."""
    rules: dict[str, Any] = {
        f"keep_{f}": _count(f"--keep-{f}", getattr(args, f"keep_{f}"))
        for f in ("last", *BUCKETS)
        if getattr(args, f"keep_{f}") is not None
    }
    for key in ("keep_within", *(f"keep_within_{f}" for f in WITHIN_BUCKETS), "keep_tag",
                "within_anchor", "oldest_rule", "max_age", "max_count"):
        if getattr(args, key) is not None:
            rules[key] = getattr(args, key)
    if args.tiered:
        rules["tier_ages"] = dict(TIER_AGES)
    if not rules:
        return None
    return RetentionPolicy.from_dict(rules, origin="prune options")


def flag_interval(flag: str, text: str) -> dt.timedelta:
    """*text* as an exact interval, an error naming *flag*."""
    try:
        return parse_interval(text)
    except ConfigError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def simulated_span(text: str) -> dt.timedelta:
    """``--simulate``: how far to run a policy forward; months and years as 30 and 365
    days, which is all a simulation's monthly rows need."""
    try:
        span = parse_duration(text)
    except ConfigError as exc:
        raise ConfigError(f"--simulate: {exc}") from None
    years, months = divmod(span.months, 12)
    return dt.timedelta(days=365 * years + 30 * months) + span.exact
