"""``backupkit status``: per set its backups, the newest one against the RPO, the last
drill against the RTO, the room on local sinks and the health; the exit code is the
worst health, so that a monitor can call it."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any

from backupkit.cli_checks import check_not_nested, check_set_known
from backupkit.core.status import AT_RISK, FAILING, GROWTH_WINDOW, OK, SetStatus, StatusReport
from backupkit.core.units import format_bytes, format_span

#: The exit code of ``backupkit status`` for the worst health among the sets it shows.
EXIT_CODES = {OK: 0, AT_RISK: 11, FAILING: 12}


def _latest(s: SetStatus) -> str:
    if s.latest_id is None or s.latest_age_seconds is None:
        return "  newest: none"
    age = s.latest_age_seconds
    when = f"{format_span(age)} ago" if age >= 0 else f"{format_span(-age)} in the future: check clocks"
    rpo = f"; RPO {format_span(s.objectives.rpo)}" if s.objectives.rpo else ""
    return f"  newest: {s.latest_id} ({when}{rpo})"


def _drill(s: SetStatus) -> str | None:
    rto = f" (RTO {format_span(s.objectives.rto)})" if s.objectives.rto else ""
    d = s.last_drill
    if d is None:
        return f"  last drill: none{rto}" if rto else None
    result = "ok" if d.ok else "FAILED"
    started = d.started_at.astimezone(dt.UTC)
    return (f"  last drill: {started:%Y-%m-%d %H:%M}Z ({format_span(d.age_seconds)} ago), backup "
            f"{d.backup_id}: {result} in {format_span(d.seconds)}{rto}")


def render(report: StatusReport) -> str:
    """The status as text: a block per set, its health first."""
    lines = [f"sink: {', '.join(report.sinks)}"]
    for s in report.sets:
        lines.append(f"set {s.name}: {s.health}")
        lines += [f"  - {reason}" for reason in s.reasons]
        lines.append(f"  backups: {s.backups}, {format_bytes(s.stored_bytes)} stored, "
                     f"{format_bytes(s.added_bytes_per_day)} a day added over the last {format_span(GROWTH_WINDOW)}")
        lines.append(_latest(s))
        drill = _drill(s)
        if drill:
            lines.append(drill)
        for disk in s.disks:
            lines.append(f"  disk of {disk.location}: {format_bytes(disk.free_bytes)} free of "
                         f"{format_bytes(disk.total_bytes)}" + (" (nearly full)" if disk.nearly_full else ""))
    for p in report.problems:
        lines.append(f"problem: {p.message}")
    lines += _leftovers(report)
    return "\n".join(lines)


def _leftovers(report: StatusReport) -> list[str]:
    """A line per sink and kind of leftover: how many, how big, what becomes of them."""
    lines = []
    for sink in dict.fromkeys(x.sink for x in report.leftovers):
        mine = [x for x in report.leftovers if x.sink == sink]
        groups = [("open upload", "open multipart upload(s) (aborted by the next backup after 2 days, or by "
                   "the bucket rule of backupkit s3 lifecycle)", [x for x in mine if x.kind == "open upload"]),
                  ("collectible", "object(s) without a manifest, deleted by the next prune",
                   [x for x in mine if x.kind == "no manifest" and x.collectible]),
                  ("waiting", "object(s) without a manifest in their grace period (a run that died recently)",
                   [x for x in mine if x.kind == "no manifest" and not x.collectible])]
        for _, what, items in groups:
            if items:
                size = sum(x.bytes or 0 for x in items)
                lines.append(f"leftovers in {sink}: {len(items)} {what}, {format_bytes(size)}")
    return lines


def cmd_status(args: argparse.Namespace, *, engine_for: Callable[..., Any], emit: Callable[..., None]) -> int:
    """``backupkit status [--set NAME] [--json]``: 0 when every set shown is ok, 11 when
    one is at risk, 12 when one is failing."""
    engine = engine_for(args)
    full: StatusReport = engine.status()
    if not full.sets and not full.problems:
        check_not_nested(engine)
    check_set_known(args.set_name, [*engine.config.sets, *(s.name for s in full.sets)], ", ".join(full.sinks))
    report = full.for_set(args.set_name)  # the JSON too
    emit(args, report.to_dict(), render(report))
    return EXIT_CODES[report.health]
