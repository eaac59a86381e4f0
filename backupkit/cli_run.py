"""The scheduler's commands: ``backupkit run`` (the configured jobs, in the foreground,
until SIGTERM or Ctrl-C) and ``backupkit schedule show`` (each job's next runs)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from backupkit.errors import ConfigError
from backupkit.scheduler import Scheduler

_FALSE = ("0", "false", "no", "off")


def add_parsers(sub: Any, common: Callable[..., None]) -> None:
    """Add ``run`` and ``schedule`` to the ``backupkit`` parser."""
    p = sub.add_parser("run", help="run the configured schedules in the foreground until stopped")
    common(p, sink=False)
    p = sub.add_parser("schedule", help="the configured schedules: each job's next runs")
    common(p, sink=False)
    p.add_argument("action", choices=["show"], help="show: each job and its next run times")
    p.add_argument("--count", type=int, default=3, metavar="N", help="next runs to show per job (default 3)")


def enabled(env: dict[str, str] | os._Environ[str]) -> bool:
    """``BACKUP_ENABLED=false`` turns every scheduled job off."""
    return env.get("BACKUP_ENABLED", "true").strip().lower() not in _FALSE


def _scheduler(args: argparse.Namespace, engine_for: Callable[..., Any]) -> Scheduler:
    engine = engine_for(args)
    jobs = [j for s in engine.config.sets.values() for j in s.schedule
            if args.set_name is None or j.set_name == args.set_name]
    if not jobs:
        raise ConfigError("no set has a schedule; add e.g. schedule = \"daily-02:00+6h\" to a set "
                          "(see docs/scheduling.md)")
    return Scheduler(engine, jobs)


def cmd_schedule(args: argparse.Namespace, *, engine_for: Callable[..., Any], emit: Callable[..., None]) -> int:
    """``backupkit schedule show``."""
    sched = _scheduler(args, engine_for)
    now = sched.now()
    rows: list[dict[str, Any]] = []
    for state in sched.states.values():
        at, runs = now, []
        for _ in range(max(args.count, 1)):
            at = state.job.next_after(at, sched.tz)
            runs.append(at)
        rows.append({"job": state.job.name, "set": state.job.set_name, "kind": state.job.kind,
                     "reason": state.job.reason, "run_at_start": state.job.run_at_start,
                     "next_runs": [r.isoformat().replace("+00:00", "Z") for r in runs]})
    tz = sched.tz
    lines = []
    for state, row in zip(sched.states.values(), rows):
        at, shown = now, []
        for _ in row["next_runs"]:
            at = state.job.next_after(at, tz)
            shown.append(at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z"))
        lines.append(f"{row['job']}: {', '.join(shown)}")
    text = "\n".join(lines)
    if not enabled(os.environ):
        text += "\nscheduled jobs are disabled (BACKUP_ENABLED=false): backupkit run does not run them"
    emit(args, {"enabled": enabled(os.environ), "timezone": str(tz), "jobs": rows}, text)
    return 0


def cmd_run(args: argparse.Namespace, *, engine_for: Callable[..., Any], emit: Callable[..., None]) -> int:
    """``backupkit run``: the scheduler until SIGTERM/SIGINT; a running backup finishes first."""
    if not enabled(os.environ):
        print("backupkit: scheduled jobs are disabled (BACKUP_ENABLED=false); nothing to run", file=sys.stderr)
        return 0
    sched = _scheduler(args, engine_for)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda signum, frame: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        sched.start()
        for state in sched.states.values():
            print(f"backupkit: scheduled {state.job.name}, next run {state.to_dict()['next_run']}",
                  file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            pass
        print("backupkit: stopping (waiting for a running job to finish)", file=sys.stderr, flush=True)
        sched.stop()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    emit(args, sched.status(), "backupkit: scheduler stopped")
    return 0
