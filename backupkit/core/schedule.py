"""When scheduled jobs run: pure functions of a job and a time (no clock, no I/O).

A job is an interval (``every = "6h"``, ``"90min"``: exact time, so ``m`` (months) is
refused, see :func:`backupkit.core.durations.parse_interval`) or a cron expression (``cron = "0 2 * * *"``)
with a kind (``full``, ``incremental``, ``prune``, ``drill``) and a reason. Cron times are
wall-clock times in the configuration's time zone, computed by cronsim, which follows
Debian's cron across daylight-saving changes: a time skipped in spring runs once at
the next valid time, a time repeated in autumn runs once. Intervals count elapsed UTC
time from the Unix epoch, so every process and host computes the same slots
(``every = "6h"`` is 00:00, 06:00, 12:00 and 18:00 UTC): what replicas claim is a
slot's UTC instant.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from backupkit.core.durations import format_duration, parse_interval
from backupkit.core.units import format_span
from backupkit.errors import ConfigError, closest

KINDS = ("full", "incremental", "prune", "drill")
#: The kinds of job that make a backup (what the RPO is about).
BACKUP_KINDS = ("full", "incremental")
#: How far ahead :func:`rpo_notice` looks for gaps between scheduled backups.
RPO_HORIZON = dt.timedelta(days=31)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_JOB_KEYS = ("kind", "every", "cron", "reason", "run_at_start")


@attrs.frozen
class Job:
    """One scheduled job of one set."""

    set_name: str
    kind: str
    every: dt.timedelta | None = None
    cron: str | None = None
    reason: str = "scheduled"
    #: Run once as soon as the scheduler starts, then at each slot (seed 000's behaviour).
    run_at_start: bool = False

    @property
    def name(self) -> str:
        """``app/full@0 2 * * *`` or ``app/incremental@every 6h``: unique within a set."""
        when = self.cron if self.cron is not None else f"every {format_duration(self.every or dt.timedelta(0))}"
        return f"{self.set_name}/{self.kind}@{when}"

    def next_after(self, after: dt.datetime, tz: dt.tzinfo = dt.UTC) -> dt.datetime:
        """The first slot strictly after *after* (aware), as a UTC time."""
        if after.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        if self.cron is not None:
            from cronsim import CronSim

            local = after.astimezone(tz).replace(microsecond=0)
            found: dt.datetime = next(CronSim(self.cron, local))
            return found.astimezone(dt.UTC)
        assert self.every is not None
        passed = (after - EPOCH) // self.every
        return EPOCH + (passed + 1) * self.every

    def slots(self, start: dt.datetime, end: dt.datetime, tz: dt.tzinfo = dt.UTC) -> Iterator[dt.datetime]:
        """Every slot in ``(start, end]``, in order, as UTC times."""
        at = self.next_after(start, tz)
        while at <= end:
            yield at
            at = self.next_after(at, tz)


def _job(set_name: str, raw: Any, where: str) -> Job:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a job is a table with 'kind' and 'every' or 'cron'")
    for key in raw:
        if key not in _JOB_KEYS:
            hint = closest(key, _JOB_KEYS)
            raise ConfigError(f"{where}: unknown key {key!r}" + (f"; did you mean {hint!r}?" if hint else ""))
    kind = raw.get("kind", "full")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if ("every" in raw) == ("cron" in raw):
        raise ConfigError(f"{where}: give a job either 'every' (e.g. \"6h\") or 'cron' (e.g. \"0 2 * * *\")")
    reason = raw.get("reason", "scheduled")
    run_at_start = raw.get("run_at_start", False)
    if not isinstance(reason, str) or not isinstance(run_at_start, bool):
        raise ConfigError(f"{where}: 'reason' is a string and 'run_at_start' true or false")
    if "cron" in raw:
        cron = raw["cron"]
        try:
            from cronsim import CronSim, CronSimError

            CronSim(cron, dt.datetime(2026, 1, 1))
        except ImportError:
            raise ConfigError(f"{where}: cron schedules need cronsim; install backupkit[schedule]") from None
        except (CronSimError, TypeError) as exc:
            raise ConfigError(f"{where}: cron {cron!r} is not a cron expression ({exc})") from None
        return Job(set_name, kind, cron=cron, reason=reason, run_at_start=run_at_start)
    try:
        every = parse_interval(raw["every"])
    except ConfigError as exc:
        raise ConfigError(f"{where}: every: {exc}") from None
    return Job(set_name, kind, every=every, reason=reason, run_at_start=run_at_start)


@attrs.frozen
class Gap:
    """The time between two consecutive backup slots (UTC)."""

    after: dt.datetime
    before: dt.datetime

    @property
    def length(self) -> dt.timedelta:
        """How long the gap is."""
        return self.before - self.after


def longest_gap(jobs: Iterable[Job], start: dt.datetime, end: dt.datetime,
                tz: dt.tzinfo = dt.UTC) -> Gap | None:
    """The longest time between consecutive slots of the backup jobs among *jobs* in
    ``(start, end]`` (slots of several jobs merged); from *start* to *end* when they have
    fewer than two slots there; ``None`` for no backup job."""
    backups = [j for j in jobs if j.kind in BACKUP_KINDS]
    if not backups:
        return None
    slots = sorted({at for job in backups for at in job.slots(start, end, tz)})
    if len(slots) < 2:
        return Gap(start, end)
    return max((Gap(a, b) for a, b in itertools.pairwise(slots)), key=lambda g: g.length)


def rpo_notice(set_name: str, jobs: Sequence[Job], rpo: dt.timedelta, start: dt.datetime,
               tz: dt.tzinfo = dt.UTC, horizon: dt.timedelta = RPO_HORIZON) -> str | None:
    """A warning when the set's scheduled backups, over *horizon* from *start*, leave a
    gap between consecutive slots longer than its *rpo* (or its schedule runs no backup);
    ``None`` when they do not, or when *jobs* holds no job of the set at all."""
    mine = [j for j in jobs if j.set_name == set_name]
    if not mine:
        return None
    gap = longest_gap(mine, start, start + horizon, tz)
    if gap is None:
        return (f"set {set_name} has an RPO of {format_span(rpo)}, but its schedule runs no backup; "
                "add a full or incremental job")
    if gap.length <= rpo:
        return None
    return (f"set {set_name}: its scheduled backups leave {format_span(gap.length)} between "
            f"{gap.after.astimezone(tz):%Y-%m-%d %H:%M %Z} and {gap.before.astimezone(tz):%Y-%m-%d %H:%M %Z}, "
            f"longer than its RPO of {format_span(rpo)}; schedule backups more often or raise the rpo")


def presets(env: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """The named schedules: ``daily-02:00+6h`` (a full backup at 02:00 and an incremental
    every 6 hours, pruned after the full one) and ``interval`` (a full backup at start and
    every ``BACKUP_INTERVAL_HOURS`` hours, default 24)."""
    hours = env.get("BACKUP_INTERVAL_HOURS", "24") or "24"
    if not hours.isdigit() or int(hours) < 1:
        raise ConfigError(f"BACKUP_INTERVAL_HOURS must be a whole number of hours, got {hours!r}")
    return {
        "daily-02:00+6h": [
            {"kind": "full", "cron": "0 2 * * *"},
            {"kind": "incremental", "cron": "0 8,14,20 * * *"},
            {"kind": "prune", "cron": "30 2 * * *"},
        ],
        "interval": [{"kind": "full", "every": f"{int(hours)}h", "run_at_start": True}],
    }


def parse_schedule(set_name: str, raw: Any, env: Mapping[str, str], where: str) -> tuple[Job, ...]:
    """A set's ``schedule``: a preset's name, or a list of job tables."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        named = presets(env)
        if raw not in named:
            hint = closest(raw, named)
            raise ConfigError(f"{where}: schedule {raw!r} is not a preset"
                              + (f"; did you mean {hint!r}?" if hint else f"; presets: {', '.join(named)}"))
        raw = named[raw]
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise ConfigError(f"{where}: 'schedule' is a preset name or a list of jobs")
    jobs = tuple(_job(set_name, item, f"{where}: schedule[{i}]") for i, item in enumerate(raw))
    names = [j.name for j in jobs]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{where}: the job {name} is given twice")
    return jobs


def zone(name: str) -> dt.tzinfo:
    """The time zone called *name* (``UTC``, ``Europe/Berlin``)."""
    return dt.UTC if name == "UTC" else ZoneInfo(name)


_FALSE = ("0", "false", "no", "off")


def enabled(env: Mapping[str, str]) -> bool:
    """``BACKUP_ENABLED=false`` turns every scheduled job off."""
    return env.get("BACKUP_ENABLED", "true").strip().lower() not in _FALSE


def auto_start(env: Mapping[str, str]) -> bool:
    """``AUTO_S3_BACKUP=true``: the server starts its scheduler when it starts."""
    return env.get("AUTO_S3_BACKUP", "").strip().lower() in ("1", "true", "yes", "on")
