"""The scheduler's commands: ``backupkit run`` (the configured jobs, in the foreground,
until SIGTERM or Ctrl-C) and ``backupkit schedule show`` (each job's next runs, and a
warning for a set whose scheduled backups leave gaps longer than its RPO)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backupkit import install
from backupkit.core.durations import parse_interval
from backupkit.core.schedule import enabled
from backupkit.errors import ConfigError

# The scheduler, claims and installers load with the commands that use them, not with
# every ``backupkit`` command (this module builds the parser's ``run`` and ``schedule``).
if TYPE_CHECKING:
    from backupkit.scheduler import Scheduler


def add_parsers(sub: Any, common: Callable[..., None]) -> None:
    """Add ``run`` and ``schedule`` to the ``backupkit`` parser."""
    p = sub.add_parser("run", help="run the configured schedules in the foreground until stopped")
    common(p, sink=False)
    p.add_argument("--replicas", action="store_true",
                   help="several processes or hosts run this schedule: claim each slot in the sink first")
    p.add_argument("--lease", default="5min", help="with --replicas: how long a silent claim holds (default 5min)")
    p = sub.add_parser("schedule", help="the configured schedules: each job's next runs")
    common(p, sink=False)
    p.add_argument("action", choices=["show", "install", "remove"],
                   help="show: each job's next runs (and what is installed); install: write crontab "
                        "lines or systemd units that run the jobs; remove: take them out again")
    p.add_argument("--count", type=int, default=3, metavar="N", help="next runs to show per job (default 3)")
    p.add_argument("--format", choices=["crontab", "systemd"], default="crontab")
    p.add_argument("--crontab", metavar="FILE", help="a crontab file to edit (default: the user's, via crontab -)")
    p.add_argument("--unit-dir", metavar="DIR", default="/etc/systemd/system", help="where systemd units go")
    p.add_argument("--cron-tz", action="store_true",
                   help="install: put CRON_TZ=<the configuration's zone> in the block (for crons that "
                        "honour it, like cronie) instead of requiring the machine's zone to match")
    p.add_argument("--dry-run", action="store_true", help="print what would be written, write nothing")
    p.add_argument("--replicas", action="store_true",
                   help="install: the same lines run on several hosts; each backup claims its slot (--slot)")


def _scheduler(args: argparse.Namespace, engine_for: Callable[..., Any]) -> Scheduler:
    from backupkit.claims import for_engine  # noqa: PLC0415
    from backupkit.scheduler import Scheduler  # noqa: PLC0415

    engine = engine_for(args)
    jobs = [j for s in engine.config.sets.values() for j in s.schedule
            if args.set_name is None or j.set_name == args.set_name]
    if not jobs:
        raise ConfigError("no set has a schedule; add e.g. schedule = \"daily-02:00+6h\" to a set "
                          "(see docs/scheduling.md)")
    replicas = args.command == "run" and args.replicas  # schedule install's --replicas is for its lines
    claims = for_engine(engine, _lease(args.lease)) if replicas else None
    return Scheduler(engine, jobs, claims=claims)


def _lease(text: str) -> dt.timedelta:
    try:
        return parse_interval(text)
    except ConfigError as exc:
        raise ConfigError(f"--lease: {exc}") from None


def claimed(args: argparse.Namespace, engine: Any, run: Callable[[], int], emit: Callable[..., None]) -> int:
    """Run *run* (one backup) for ``--slot`` under the slot's claim; skip a taken slot."""
    try:
        slot = dt.datetime.fromisoformat(args.slot.replace("Z", "+00:00"))
    except ValueError:
        slot = None
    if slot is None or slot.tzinfo is None:
        raise ConfigError(f"--slot {args.slot!r} is not a UTC instant like 2026-12-03T02:00:00Z")
    sets = list(engine.config.sets)
    set_name = args.set_name or (sets[0] if len(sets) == 1 else None)
    if set_name is None:
        raise ConfigError("--slot needs --set NAME: the configuration has several sets")
    from backupkit.claims import for_engine  # noqa: PLC0415

    claims = for_engine(engine, _lease(args.lease))
    claims.check(set_name)
    lease = claims.claim(set_name, args.kind, slot)
    if lease is None:
        emit(args, {"slot": args.slot, "ran": False},
             f"slot {args.slot} of set {set_name} is another replica's or done; nothing to do")
        return 0
    lease.keep_alive()
    try:
        code = run()
    except BaseException:
        lease.finish("failed")
        raise
    lease.finish("ok")
    return code


def _read_crontab(path: str | None) -> str:
    if path:
        return Path(path).read_text() if Path(path).exists() else ""
    try:
        done = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""  # no crontab program here: nothing is installed in it
    return done.stdout if done.returncode == 0 else ""


def _write_crontab(path: str | None, text: str) -> None:
    if path:
        tmp = Path(f"{path}.backupkit-tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        return
    try:
        done = subprocess.run(["crontab", "-"], input=text, capture_output=True, text=True, check=False, timeout=30)
    except OSError:
        raise ConfigError("there is no crontab program here; pass --crontab FILE or --format systemd") from None
    if done.returncode != 0:
        raise ConfigError(f"crontab - failed: {done.stderr.strip() or done.returncode}")


def machine_zone(localtime: Path = Path("/etc/localtime")) -> dt.tzinfo:
    """The zone the cron daemon keeps time in: the system's ``/etc/localtime`` (UTC if
    there is none), whatever ``TZ`` the installing shell has."""
    try:
        with open(localtime, "rb") as f:
            name = localtime.resolve().as_posix().partition("/zoneinfo/")[2] or str(localtime)
            return zoneinfo.ZoneInfo.from_file(f, key=name)
    except (OSError, ValueError):
        return dt.UTC


def _check_cron_zone(sched: Scheduler) -> None:
    """Refuse a crontab whose times the machine's cron would read in another zone."""
    if not any(s.job.cron is not None or (s.job.every or dt.timedelta(0)) >= dt.timedelta(hours=1)
               for s in sched.states.values()):
        return  # sub-hour intervals run at the same instants in any zone
    machine = machine_zone()
    differ = install.zone_difference(sched.tz, machine, sched.now())
    if differ is not None:
        at, by = differ
        side = "ahead of" if by > dt.timedelta(0) else "behind"
        raise ConfigError(
            f"the configuration's time zone is {sched.tz}, but this machine's cron keeps {machine} time "
            f"({sched.tz} is {abs(by.total_seconds()) / 3600:g} h {side} it on {at:%Y-%m-%d}), so the "
            f"crontab would run at other times; set timezone = \"{machine}\" in the configuration, use "
            "--format systemd (timers carry the zone), or --cron-tz for a cron that honours CRON_TZ")


def _install(args: argparse.Namespace, sched: Scheduler, emit: Callable[..., None]) -> int:
    config = os.path.abspath(args.config or "backupkit.toml")
    jobs = [s.job for s in sched.states.values()]
    tz = str(sched.engine.config.timezone)
    if args.format == "systemd":
        units = install.systemd_units(jobs, sys.executable, config, tz)
        if not args.dry_run and args.action == "install":
            for name, text in units.items():
                (Path(args.unit_dir) / name).write_text(text)
        elif not args.dry_run:
            for name in units:
                (Path(args.unit_dir) / name).unlink(missing_ok=True)
        what = "\n".join(f"# {n}\n{t}" for n, t in units.items())
        emit(args, {"units": units, "dir": args.unit_dir, "written": not args.dry_run}, what if args.dry_run else
             f"{args.action}ed {len(units)} systemd units in {args.unit_dir}"
             + ("; run systemctl daemon-reload and enable the timers" if args.action == "install" else ""))
        return 0
    block = (install.crontab_block(jobs, sys.executable, config, tz, replicas=args.replicas,
                                   cron_tz=args.cron_tz)
             if args.action == "install" else None)
    if block is not None and not args.cron_tz:
        _check_cron_zone(sched)
    new = install.replace_block(_read_crontab(args.crontab), block)
    if not args.dry_run:
        _write_crontab(args.crontab, new)
    emit(args, {"crontab": new, "written": not args.dry_run},
         new if args.dry_run else f"{args.action}ed the backupkit block in {args.crontab or 'your crontab'}")
    return 0


def cmd_schedule(args: argparse.Namespace, *, engine_for: Callable[..., Any], emit: Callable[..., None]) -> int:
    """``backupkit schedule show|install|remove``."""
    from backupkit.scheduler import iso_utc  # noqa: PLC0415

    sched = _scheduler(args, engine_for)
    if args.action in ("install", "remove"):
        return _install(args, sched, emit)
    tz, rows, lines = sched.tz, list[dict[str, Any]](), list[str]()
    for state in sched.states.values():
        at, runs = sched.now(), []
        for _ in range(max(args.count, 1)):
            at = state.job.next_after(at, tz)
            runs.append(at)
        rows.append({"job": state.job.name, "set": state.job.set_name, "kind": state.job.kind,
                     "reason": state.job.reason, "run_at_start": state.job.run_at_start,
                     "next_runs": [iso_utc(r) for r in runs]})
        lines.append(f"{state.job.name}: " + ", ".join(r.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") for r in runs))
    notices = sched.rpo_notices()
    text = "\n".join([*lines, *(f"warning: {n}" for n in notices)])
    if not enabled(os.environ):
        text += "\nscheduled jobs are disabled (BACKUP_ENABLED=false): backupkit run does not run them"
    block = install.installed_block(_read_crontab(args.crontab)) if args.format == "crontab" else None
    if block:
        text += "\ninstalled in " + (args.crontab or "your crontab") + ":\n" + block.rstrip("\n")
    emit(args, {"enabled": enabled(os.environ), "timezone": str(tz), "jobs": rows, "installed": block,
                "rpo_notices": notices}, text)
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
