"""Durations as config spells them: ``'7d'``, ``'1y 6m'``, ``'1d12h'``, ``'90min'``.

Units: ``y`` (years), ``m`` or ``mo`` (months, as restic and borg read ``m``), ``w``,
``d``, ``h``, ``min``, ``s``; whole numbers, in any order, spaces allowed, each unit once.
Years and months are calendar arithmetic on the wall clock in a time zone (the last day of
a shorter month stands in for a day it lacks: one month before March 31 is February 29 in
2024); weeks, days, hours, minutes and seconds are elapsed time (``1d`` is 24 hours, also
across a day that daylight saving time makes 23 or 25 hours long).

Two readings of one text are never guessed between: a bare number (``'7'``) has no unit
and is refused, and ``m`` is months everywhere. Intervals (how often a job runs, how long
a lease holds) are exact, so :func:`parse_interval` refuses months and years and names
``min`` for minutes, the unit earlier backupkit builds spelled ``m``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

import attrs

from backupkit.errors import ConfigError

_TERM = re.compile(r"\s*(\d+)\s*(min|mo|[ymwdhs])(?![a-z])\s*")
_EXACT = {"w": 604800, "d": 86400, "h": 3600, "min": 60, "s": 1}
_MONTHS = {"y": 12, "mo": 1, "m": 1}
_UNITS = "units y m w d h min s"
_BARE_M = re.compile(r"(\d\s*)m(?![a-z])")


@attrs.frozen
class Duration:
    """A span of calendar months (years are 12) and exact time, both >= 0.

    ``Duration(months=1)`` is one month; ``Duration.of(timedelta(days=7))`` is seven days.
    Two durations are equal when they have the same months and the same exact time, so
    ``'1y'`` equals ``'12m'`` and ``'1w'`` equals ``'7d'``, but ``'1m'`` is not ``'30d'``.
    """

    months: int = 0
    exact: dt.timedelta = dt.timedelta(0)

    @classmethod
    def of(cls, value: dt.timedelta) -> Duration:
        """The exact duration *value*."""
        return cls(exact=value)

    @property
    def positive(self) -> bool:
        """Longer than zero, and no part negative."""
        return (
            self.months >= 0 and self.exact >= dt.timedelta(0)
            and (self.months > 0 or self.exact > dt.timedelta(0))
        )

    def before(self, anchor: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
        """The instant this long before *anchor* (aware): months on the wall clock in *tz*
        first, then the exact part. A wall-clock time that daylight saving time skips or
        repeats is read as the earlier of its readings, so a window ending at *anchor* is
        never the shorter one."""
        return _shift(anchor, -self.months, tz, earliest=True) - self.exact

    def after(self, start: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
        """The instant this long after *start* (aware): months on the wall clock in *tz*
        first (January 31 + 1 month is the end of February), then the exact part; a
        skipped or repeated wall-clock time is read as the later of its readings."""
        return _shift(start, self.months, tz, earliest=False) + self.exact

    def __str__(self) -> str:
        return format_duration(self)


def _shift(when: dt.datetime, months: int, tz: dt.tzinfo, *, earliest: bool) -> dt.datetime:
    if months == 0:
        return when.astimezone(dt.UTC)  # in UTC, so that adding the exact part is elapsed time
    local = when.astimezone(tz)
    year, month0 = divmod(local.year * 12 + local.month - 1 + months, 12)
    day = min(local.day, calendar.monthrange(year, month0 + 1)[1])
    wall = local.replace(tzinfo=None, year=year, month=month0 + 1, day=day)
    readings = [wall.replace(tzinfo=tz, fold=fold).astimezone(dt.UTC) for fold in (0, 1)]
    return min(readings) if earliest else max(readings)


def parse_duration(text: str) -> Duration:
    """*text* (``'7d'``, ``'1y 6m'``, ``'2w3d'``, ``'90min'``) as a :class:`Duration`.

    Raises a one-line :class:`ConfigError` for anything else, naming the units.
    """
    if not isinstance(text, str):
        raise ConfigError(f"duration {text!r} is not text like '7d' or '1m' ({_UNITS})")
    stripped = text.strip()
    if stripped.isdigit():
        raise ConfigError(
            f"duration {text!r} has no unit: write '{stripped}d' for days, '{stripped}h' for "
            f"hours or '{stripped}min' for minutes ({_UNITS}); a bare number is never guessed"
        )
    position, months, seconds, seen = 0, 0, 0, set()
    while position < len(stripped):
        match = _TERM.match(stripped, position)
        if match is None:
            raise ConfigError(
                f"duration {text!r} is not like '7d', '1y 6m', '1d12h' or '90min' "
                f"({_UNITS}; m is months, min minutes)"
            )
        number, unit = int(match.group(1)), match.group(2)
        key = "m" if unit == "mo" else unit
        if key in seen:
            raise ConfigError(f"duration {text!r} gives {unit} twice; give each unit once")
        seen.add(key)
        months += number * _MONTHS.get(unit, 0)
        seconds += number * _EXACT.get(unit, 0)
        position = match.end()
    if not seen:
        raise ConfigError(f"duration {text!r} is empty; write e.g. '7d' ({_UNITS})")
    if months == 0 and seconds == 0:
        raise ConfigError(f"duration {text!r} must be longer than zero")
    return Duration(months=months, exact=dt.timedelta(seconds=seconds))


def says_months_as_m(text: str) -> bool:
    """Whether *text* spells months with a bare ``m``, which earlier backupkit builds read
    as minutes (``'1m'``, ``'1d 12m'``; not ``'1mo'`` or ``'90min'``)."""
    return any(m.group(2) == "m" for m in _TERM.finditer(text)) if isinstance(text, str) else False


def months_as_mo(text: str) -> str:
    """*text* with each bare ``m`` unit spelled ``mo``: ``'1y 6m'`` -> ``'1y 6mo'``."""
    return _BARE_M.sub(r"\1mo", text)


def parse_interval(text: str) -> dt.timedelta:
    """An exact interval (``'6h'``, ``'1d'``, ``'90min'``, ``'1h 30min'``): no months or years.

    ``'90m'`` is refused with a message naming ``min``: ``m`` is a month in backupkit
    durations, and earlier builds read it as a minute here, so no reading is guessed.
    """
    value = parse_duration(text)
    if value.months:
        stripped = text.strip()
        if says_months_as_m(stripped):
            minutes = _BARE_M.sub(r"\1min", stripped)
            raise ConfigError(
                f"interval {text!r}: 'm' is months, and an interval takes w, d, h, min or s; "
                f"write {minutes!r} for minutes"
            )
        raise ConfigError(
            f"interval {text!r} has months or years, which are not a fixed length; "
            "write it in w, d, h, min or s"
        )
    return value.exact


def format_duration(value: Duration | dt.timedelta) -> str:
    """The ``parse_duration`` spelling of *value*, largest units first and without
    ambiguity: ``7d``, ``13d23h``, ``1h30min``, ``1y6mo``, ``45s``."""
    if isinstance(value, dt.timedelta):
        value = Duration.of(value)
    years, months = divmod(value.months, 12)
    parts = [f"{years}y"] if years else []
    if months:
        parts.append(f"{months}mo")
    exact = value.exact
    if exact % dt.timedelta(seconds=1):
        return "".join(parts) + f"{exact.total_seconds():g}s"
    seconds = exact // dt.timedelta(seconds=1)
    for suffix in ("d", "h", "min", "s"):  # days, not weeks: '14d' reads better than '2w'
        count, seconds = divmod(seconds, _EXACT[suffix])
        if count:
            parts.append(f"{count}{suffix}")
    return "".join(parts) or "0s"
