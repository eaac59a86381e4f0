"""The ``drill`` and ``drills`` commands: restore a backup into scratch targets and check
it, and list the drills' records."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from backupkit.core.drill import DrillRecord
from backupkit.errors import DrillFailed


def add_parsers(sub: Any, common: Callable[..., None]) -> None:
    """Add ``drill`` and ``drills`` to the ``backupkit`` parser."""
    p = sub.add_parser("drill", help="restore a backup into scratch targets and check it (a restore drill)",
                       description="Restores every artifact into a throwaway target (a temp directory, a "
                                   "scratch database, a temporary redis-server), checks it against the "
                                   "manifest and the set's drill checks, removes the targets, and stores "
                                   "the drill's record in the sink. Exits 10 when the drill fails.")
    common(p)
    p.add_argument("backup", metavar="ID|latest", nargs="?", default="latest",
                   help="backup id, unique id prefix, 'latest' (default), or a time with a zone")
    p = sub.add_parser("drills", help="list the restore drills' records, oldest first")
    common(p)


def _line(record: DrillRecord) -> str:
    when = record.started_at.strftime("%Y-%m-%d %H:%M:%SZ")
    result = "ok" if record.ok else "FAILED"
    return (f"{record.drill_id}  {record.set_name}  {record.backup_id}  {when}  {result:6}  "
            f"{record.seconds:8.1f} s")


def _report(record: DrillRecord, human: Callable[[float], str]) -> str:
    lines = [f"drill {record.drill_id} of backup {record.backup_id} (set {record.set_name}): "
             + ("passed" if record.ok else "FAILED") + f" in {record.seconds:.1f} s, {human(record.bytes)} read"]
    for a in record.artifacts:
        found = ", ".join(f"{k} {v}" for k, v in a.checks.items() if not isinstance(v, dict | list))
        lines.append(f"  {a.name}: " + ("ok" if a.ok else "FAILED") + f" in {a.seconds:.1f} s into {a.target}"
                     + (f" ({found})" if found and a.ok else "") + (f": {a.error}" if a.error else ""))
    for c in record.checks:
        lines.append(f"  check {c.name}: " + ("ok" if c.ok else "FAILED") + (f": {c.detail}" if c.detail else ""))
    return "\n".join(lines)


def cmd_drill(args: argparse.Namespace, *, engine_for: Callable[..., Any], emit: Callable[..., None],
              human: Callable[[float], str]) -> int:
    """``backupkit drill``: exit 0 when the drill passed, 10 when it failed."""
    engine = engine_for(args)
    try:
        record = engine.drill(args.backup, set_name=args.set_name)
    except DrillFailed as failed:
        if not isinstance(failed.record, DrillRecord):
            raise
        emit(args, failed.record.to_dict(), _report(failed.record, human))
        return failed.exit_code
    emit(args, record.to_dict(), _report(record, human))
    return 0


def cmd_drills(args: argparse.Namespace, *, engine_for: Callable[..., Any], emit: Callable[..., None]) -> int:
    """``backupkit drills``: one line per drill record."""
    records = engine_for(args).drills(args.set_name)
    text = "\n".join(_line(r) for r in records) if records else "no drills recorded yet; run backupkit drill"
    emit(args, [r.to_dict() for r in records], text)
    return 0
