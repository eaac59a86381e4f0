"""Installing the configured schedules outside the process (seed 002's ``backup-cron.sh
setup|show``): crontab lines, or systemd service and timer units, that run ``backupkit
full|incremental|prune|drill`` for each job with the configuration's absolute path.

A crontab gets one marked block (``# >>> backupkit ... <<<``), replaced on every install
and removed by ``schedule remove``; lines outside it are kept as they are. systemd gets
``backupkit-<set>-<kind>.service`` and ``.timer`` per job; the timers' ``OnCalendar``
carries the configuration's time zone. Pure text in, text out; :mod:`backupkit.cli_run`
reads and writes the files.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from collections.abc import Iterable, Sequence

from backupkit.core.schedule import Job
from backupkit.errors import ConfigError

BEGIN = "# >>> backupkit schedule (installed by `backupkit schedule install`; do not edit) >>>"
END = "# <<< backupkit schedule <<<"
_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def cron_of(job: Job) -> str:
    """The job's cron expression; an interval that divides an hour or a day evenly as one."""
    if job.cron is not None:
        return job.cron
    assert job.every is not None
    minutes = int(job.every.total_seconds() // 60)
    if job.every % dt.timedelta(minutes=1) == dt.timedelta(0):
        if minutes < 60 and 60 % minutes == 0:
            return f"*/{minutes} * * * *" if minutes > 1 else "* * * * *"
        if minutes % 60 == 0 and 24 % (minutes // 60) == 0:
            hours = minutes // 60
            return f"0 */{hours} * * *" if hours > 1 else "0 * * * *"
        if minutes == 24 * 60:
            return "0 0 * * *"
    raise ConfigError(f"job {job.name}: an interval of {job.every} is no crontab or timer schedule; "
                      "use backupkit run, or give the job a cron expression")


#: The command of the job kinds that make no backup (and take no ``--reason``).
_VERBS = {"prune": ["prune", "--yes"], "drill": ["drill"]}


def command(job: Job, python: str, config: str) -> list[str]:
    """The command line that runs *job* once."""
    verb = _VERBS.get(job.kind) or [job.kind, "--reason", job.reason]
    return [python, "-m", "backupkit", *verb, "--config", config, "--set", job.set_name]


#: What a crontab line adds so that the same line on N hosts makes one backup: the slot is
#: the minute it runs, in UTC (cron needs its ``%`` escaped).
SLOT_ARG = "--slot $(date -u +\\%Y-\\%m-\\%dT\\%H:\\%M:00Z)"


def crontab_block(jobs: Sequence[Job], python: str, config: str, tz: str, *, replicas: bool = False,
                  cron_tz: bool = False) -> str:
    """The marked block of crontab lines for *jobs* (with *replicas*, each backup line
    claims its slot, see :mod:`backupkit.claims`; with *cron_tz*, a ``CRON_TZ`` line
    for crons that honour it)."""
    if cron_tz:
        lines = [BEGIN, f"# times are in {tz} for a cron that honours CRON_TZ (cronie)", f"CRON_TZ={tz}"]
    else:
        lines = [BEGIN, f"# times are this machine's local time, checked to be the configuration's ({tz})"]
    for job in jobs:
        line = f"{cron_of(job)} {shlex.join(command(job, python, config))}"
        if replicas and job.kind not in _VERBS:  # backups claim their slot
            line += f" {SLOT_ARG}"
        lines.append(line)
    lines.append(END)
    return "\n".join(lines) + "\n"


def zone_difference(configured: dt.tzinfo, machine: dt.tzinfo, start: dt.datetime,
                    *, years: int = 2) -> tuple[dt.datetime, dt.timedelta] | None:
    """The first instant within *years* from *start* at which the two zones' clocks differ,
    and by how much; ``None`` when they agree throughout (a crontab written for one then
    runs on the other's times)."""
    at, end = start.astimezone(dt.UTC), start + dt.timedelta(days=366 * years)
    while at < end:
        a, b = at.astimezone(configured).utcoffset(), at.astimezone(machine).utcoffset()
        if a != b:
            assert a is not None and b is not None
            return at, a - b
        at += dt.timedelta(hours=6)
    return None


def replace_block(crontab: str, block: str | None) -> str:
    """*crontab* with its backupkit block replaced by *block* (or removed for None)."""
    kept, inside = [], False
    for line in crontab.splitlines():
        if line == BEGIN:
            inside = True
            continue
        if line == END:
            inside = False
            continue
        if not inside:
            kept.append(line)
    text = "\n".join(kept).rstrip("\n")
    text = (text + "\n") if text else ""
    return text + (block or "")


def installed_block(crontab: str) -> str | None:
    """The backupkit block of *crontab*, if any."""
    match = re.search(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", crontab, re.S)
    return match.group(0) if match else None


def _field(text: str, *, days: bool = False) -> str:
    parts = []
    for item in text.split(","):
        step = ""
        if "/" in item:
            item, n = item.split("/", 1)
            step = f"/{n}"
            item = "0" if item == "*" else item
        if item == "*":
            parts.append("*")
            continue
        if days:
            lo, _, hi = item.partition("-")
            names = [_DAYS[int(x) % 7] for x in (lo, hi) if x]
            parts.append("..".join(names) if hi else names[0])
            continue
        parts.append("..".join(x.zfill(2) for x in item.split("-")) + step)
    return ",".join(parts)


def on_calendar(cron: str, tz: str) -> str:
    """A 5-field cron expression as systemd's ``OnCalendar`` (in time zone *tz*)."""
    fields = cron.split()
    if len(fields) != 5 or any(c.isalpha() for c in cron.replace("/", "")):
        raise ConfigError(f"cron {cron!r}: only numeric 5-field expressions convert to systemd timers")
    minute, hour, dom, month, dow = fields
    date = f"*-{_field(month)}-{_field(dom)}"
    weekday = "" if dow == "*" else _field(dow, days=True) + " "
    return f"{weekday}{date} {_field(hour)}:{_field(minute)}:00 {tz}"


def systemd_units(jobs: Iterable[Job], python: str, config: str, tz: str) -> dict[str, str]:
    """``{file name: contents}`` of a service and a timer per job."""
    units = {}
    for job in jobs:
        name = f"backupkit-{job.set_name}-{job.kind}"
        units[f"{name}.service"] = (
            f"[Unit]\nDescription=backupkit {job.kind} of set {job.set_name}\n\n"
            f"[Service]\nType=oneshot\nExecStart={shlex.join(command(job, python, config))}\n")
        units[f"{name}.timer"] = (
            f"[Unit]\nDescription=backupkit {job.kind} of set {job.set_name} ({job.name})\n\n"
            # intervals are slots in UTC (as backupkit run counts them), cron times local to tz
            f"[Timer]\nOnCalendar={on_calendar(cron_of(job), tz if job.cron else 'UTC')}\nPersistent=true\n\n"
            "[Install]\nWantedBy=timers.target\n")
    return units
