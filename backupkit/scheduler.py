"""An in-process scheduler: runs each configured job (:mod:`backupkit.core.schedule`)
at its slots, above the engine and through its verbs only.

``Scheduler(engine).start()`` runs in a thread of its own; host apps, the HTTP sidecar
and ``backupkit run`` use it. It runs one job at a time (so never two jobs of one set
at once), earliest slot first; a job that runs past its next slots skips them and
says so; a failed job is retried with backoff while its next slot is still ahead;
``stop()`` waits for a running job to finish, so no backup is left half-visible.
``run_due(now)`` runs what is due at *now* in the caller's thread, for tests and for
hosts with a loop of their own.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from backupkit.claims import Claims
from backupkit.core.drill import DrillRecord
from backupkit.core.schedule import Job, rpo_notice, zone
from backupkit.errors import DrillFailed
from backupkit.runs import RunWatcher, SetGuard

if TYPE_CHECKING:
    from backupkit.engine import Engine

log = logging.getLogger("backupkit.scheduler")

#: Seconds to wait before each retry of a failed job (while its next slot is ahead).
RETRY_BACKOFF: tuple[float, ...] = (30.0, 120.0, 600.0)


def iso_utc(t: dt.datetime) -> str:
    """*t* as ``2026-12-03T02:00:00Z``."""
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else iso_utc(t)


@attrs.define
class JobState:
    """What the scheduler knows of one job: when it runs next and how it last ended."""

    job: Job
    next_run: dt.datetime | None = None
    slot: dt.datetime | None = None  # the slot next_run belongs to (a retry keeps its slot)
    attempt: int = 0
    last_started: dt.datetime | None = None
    last_finished: dt.datetime | None = None
    last_result: str | None = None  # "ok" | "failed"
    last_error: str | None = None
    last_backup: str | None = None  # the backup made, or for a drill the backup drilled
    last_drill: str | None = None  # a drill job's last drill id (its record is in the sink)
    last_run_id: str | None = None
    last_log: str | None = None  # where the last run's log is: the sink, then the key
    runs: int = 0
    failures: int = 0
    skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output (the API's ``GET /api/backup/scheduler``)."""
        return {"job": self.job.name, "set": self.job.set_name, "kind": self.job.kind,
                "next_run": _iso(self.next_run), "last_started": _iso(self.last_started),
                "last_finished": _iso(self.last_finished), "last_result": self.last_result,
                "last_error": self.last_error, "last_backup": self.last_backup, "last_drill": self.last_drill,
                "last_run_id": self.last_run_id, "last_log": self.last_log, "runs": self.runs,
                "failures": self.failures, "skipped_slots": self.skipped}


class Scheduler:
    """Runs *jobs* (by default every set's ``schedule``) with *engine*."""

    def __init__(self, engine: Engine, jobs: Iterable[Job] | None = None, *,
                 retry_backoff: Sequence[float] = RETRY_BACKOFF, claims: Claims | None = None) -> None:
        self.engine = engine
        #: With claims, replicas running the same schedule run each slot once between them.
        self.claims = claims
        if jobs is None:
            jobs = [job for s in engine.config.sets.values() for job in s.schedule]
        self.states = {job.name: JobState(job) for job in jobs}
        self.retry_backoff = tuple(retry_backoff)
        self.tz = zone(engine.config.timezone)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one job at a time, also between run_due callers
        self.run_logs = RunWatcher.of(engine)
        SetGuard.of(engine)  # a request's backup of a set and a job's never overlap

    # -- state --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the scheduler's thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def now(self) -> dt.datetime:
        """The engine's clock (a test's clock, if it was given one)."""
        return self.engine.parts.clock().astimezone(dt.UTC)

    def status(self) -> dict[str, Any]:
        """Running or not, and every job's state."""
        return {"running": self.running, "jobs": [s.to_dict() for s in self.states.values()]}

    # -- planning -----------------------------------------------------------------------
    def prime(self, now: dt.datetime | None = None) -> None:
        """Set each job's first run: *now* for ``run_at_start`` jobs, else its next slot.
        (With claims, a start run belongs to the interval's current slot, which every
        replica computes alike.)"""
        now = now or self.now()
        for state in self.states.values():
            job = state.job
            if job.run_at_start:
                state.slot = now
                if self.claims is not None and job.every is not None:
                    state.slot = job.next_after(now - job.every, self.tz)
                state.next_run = now
            else:
                state.slot = state.next_run = job.next_after(now, self.tz)
            state.attempt = 0

    def rpo_notices(self, now: dt.datetime | None = None) -> list[str]:
        """For each set with an ``rpo``: a warning if its jobs here leave a gap between
        backups longer than the RPO over the next :data:`~backupkit.core.schedule.RPO_HORIZON`
        (see :func:`~backupkit.core.schedule.rpo_notice`)."""
        now = now or self.now()
        jobs = [s.job for s in self.states.values()]
        found = []
        for set_name in dict.fromkeys(j.set_name for j in jobs):
            set_cfg = self.engine.config.sets.get(set_name)
            if set_cfg is not None and set_cfg.rpo is not None:
                notice = rpo_notice(set_name, jobs, set_cfg.rpo, now, self.tz)
                if notice is not None:
                    found.append(notice)
        return found

    def due(self, now: dt.datetime) -> list[JobState]:
        """The jobs whose run is due at *now*, earliest first."""
        ready = [s for s in self.states.values() if s.next_run is not None and s.next_run <= now]
        return sorted(ready, key=lambda s: (s.next_run, s.job.name))

    # -- running ------------------------------------------------------------------------
    def run_due(self, now: dt.datetime | None = None) -> list[JobState]:
        """Run every job due at *now* (default: the clock), one after another."""
        if any(s.next_run is None for s in self.states.values()):
            self.prime(now)
        ran = []
        with self._lock:
            for state in self.due(now or self.now()):
                if self._stop.is_set():
                    break
                self._run(state)
                ran.append(state)
        return ran

    def _run(self, state: JobState) -> None:
        job, slot = state.job, state.slot or self.now()
        lease = None
        if self.claims is not None:
            lease = self.claims.claim(job.set_name, job.kind, slot)
            if lease is None:
                log.info("scheduled %s: slot %s is another replica's (or done)", job.name, _iso(slot))
                state.last_result = "another replica"
                self._plan_next(state, slot)
                return
            lease.keep_alive()
        state.last_started = self.now()
        state.runs += 1
        log.info("scheduled %s for slot %s started", job.name, _iso(slot))
        self.run_logs.take()
        try:
            result = self._call(state)
        except Exception as exc:  # reported in the state and the log; the scheduler goes on
            if isinstance(exc, DrillFailed) and isinstance(exc.record, DrillRecord):
                state.last_drill, state.last_backup = exc.record.drill_id, exc.record.backup_id
            self._note_run(state)
            state.failures += 1
            state.last_result, state.last_error = "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.error("scheduled %s for slot %s failed: %s%s", job.name, _iso(slot), state.last_error,
                      f" (its log: {state.last_log})" if state.last_log else "")
            state.last_finished = self.now()
            retrying = self._after_failure(state, slot)
            if lease is not None:
                lease.release() if retrying else lease.finish("failed")
            return
        self._note_run(state)
        if lease is not None:
            lease.finish("ok")
        state.last_result, state.last_error, state.last_backup = "ok", None, result
        state.last_finished = self.now()
        log.info("scheduled %s for slot %s finished%s", job.name, _iso(slot),
                 f"; its log: {state.last_log}" if state.last_log else "")
        self._plan_next(state, slot)

    def _note_run(self, state: JobState) -> None:
        """Record the run id and log location of the backup the job just ran (none for a
        prune, or a backup that failed before its run began)."""
        run = self.run_logs.take()
        state.last_run_id = run.run_id if run else None
        state.last_log = run.log_location if run else None

    def _call(self, state: JobState) -> str | None:
        """Run the job; return the backup it made (for a drill: the backup drilled). A
        failed drill raises :class:`DrillFailed`, which the engine's alerts see as any
        failed operation."""
        job = state.job
        if job.kind == "prune":
            self.engine.prune(set_name=job.set_name, dry_run=False)
            return None
        if job.kind == "drill":
            record = self.engine.drill(set_name=job.set_name)
            state.last_drill = record.drill_id
            return record.backup_id
        manifest = self.engine.backup(job.set_name, kind=job.kind, reason=job.reason)
        return manifest.id

    def _plan_next(self, state: JobState, slot: dt.datetime) -> None:
        finished = state.last_finished or self.now()
        upcoming = state.job.next_after(slot, self.tz)
        missed = 0
        while upcoming <= finished:  # slots that passed while this run was going
            missed += 1
            log.warning("scheduled %s skipped slot %s: the previous run was still going",
                        state.job.name, _iso(upcoming))
            upcoming = state.job.next_after(upcoming, self.tz)
        state.skipped += missed
        state.slot = state.next_run = upcoming
        state.attempt = 0

    def _after_failure(self, state: JobState, slot: dt.datetime) -> bool:
        """Plan a retry within the slot (True), or the next slot (False)."""
        if state.attempt < len(self.retry_backoff):
            retry = (state.last_finished or self.now()) + dt.timedelta(seconds=self.retry_backoff[state.attempt])
            if retry < state.job.next_after(slot, self.tz):
                state.attempt += 1
                state.next_run = retry  # the same slot, again
                log.info("scheduled %s will retry at %s", state.job.name, _iso(retry))
                return True
        self._plan_next(state, slot)
        return False

    # -- the thread ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the scheduler's thread (the first runs are planned now). With claims,
        each set's sink is checked first: one without exclusive creates is refused."""
        if self.running:
            return
        for set_name in sorted({s.job.set_name for s in self.states.values()}):
            if self.claims is not None:
                self.claims.check(set_name)  # writes, rewrites and dates a probe
            else:
                self.check_sink(set_name)
        self._stop.clear()
        self.prime()
        for notice in self.rpo_notices():
            log.warning("%s", notice)
        self._thread = threading.Thread(target=self._loop, name="backupkit-scheduler", daemon=True)
        self._thread.start()
        log.info("scheduler started with %d jobs", len(self.states))

    def check_sink(self, set_name: str) -> None:
        """Write and delete a probe in the set's sink now, so that missing credentials, a
        missing bucket or a denied write are a clear error at start, not at 02:00."""
        sink = self.engine.parts.sinks_of(set_name)[0]
        key = f"claims/{set_name}/.probe-{self.now():%Y%m%dT%H%M%S%f}"
        sink.put_standalone(key, b"backupkit start-up check\n")
        sink.delete([key])

    def stop(self, timeout: float | None = None) -> None:
        """Stop: no new job starts; a running one is waited for (it finishes, and its
        backup is either complete or not there at all)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        log.info("scheduler stopped")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            upcoming = [s.next_run for s in self.states.values() if s.next_run is not None]
            wait = 60.0 if not upcoming else (min(upcoming) - self.now()).total_seconds()
            self._stop.wait(min(max(wait, 0.05), 60.0))
