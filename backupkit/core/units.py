"""Sizes and spans of time as people read them: ``1.5 GiB``, ``7 h 5 min``.

Pure; for messages and command output, never for anything parsed back
(configuration durations are :func:`backupkit.core.retention.parse_duration`'s).
"""

from __future__ import annotations

import datetime as dt

_SPAN_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def format_bytes(n: float) -> str:
    """``512 B``, ``1.5 KiB`` ... ``3.2 TiB`` (binary units, one decimal)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_span(value: dt.timedelta | float) -> str:
    """A span (a timedelta or seconds) in its two largest units, rounded down:
    ``0.4 s``, ``45 s``, ``12 min 3 s``, ``7 h``, ``3 d 4 h``; a negative one gets a ``-``."""
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    sign, whole = ("-" if seconds < 0 else ""), int(abs(seconds))
    if whole < 1:
        return f"{sign}{abs(seconds):.1f} s"
    for i, (suffix, unit) in enumerate(_SPAN_UNITS):
        if whole >= unit:
            text = f"{whole // unit} {suffix}"
            if i + 1 < len(_SPAN_UNITS):
                next_suffix, next_unit = _SPAN_UNITS[i + 1]
                rest = whole % unit // next_unit
                text += f" {rest} {next_suffix}" if rest else ""
            return sign + text
    raise AssertionError("unreachable: a whole second or more is at least 1 s")
