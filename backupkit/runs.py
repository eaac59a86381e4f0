"""Backups in the background, above the engine: what the HTTP API and host apps use to
start a backup and come back for its outcome, and what keeps one set to one backup at a
time inside a process.

- :class:`SetGuard`, a plugin on the operation hook: a second backup of a set while one
  runs in this process is refused with :class:`~backupkit.errors.BusyError` (the API's
  409), whoever started either (the scheduler, a request, the host's own code).
- :class:`RunWatcher`, a plugin that notes, per thread, the run each backup became (its
  id and where its log goes), for callers that only hold the thread.
- :class:`BackgroundRuns`: ``start()`` runs a backup in a thread of its own and returns
  once the run has begun (so the caller has its id) or has already failed (so the caller
  gets the error); ``get(id)`` gives its :class:`RunTicket` while it runs and after.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import attrs

from backupkit.errors import BusyError, NotFoundError
from backupkit.params import strip_userinfo
from backupkit.plugin import Operation, RunInfo, hookimpl

if TYPE_CHECKING:
    from backupkit.engine import Engine
    from backupkit.engine.results import Progress

#: How many finished runs :class:`BackgroundRuns` remembers (the catalog keeps the rest).
KEEP_FINISHED = 100


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class SetGuard:
    """Refuses a backup of a set that already has one running in this process."""

    def __init__(self) -> None:
        self._running: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def of(cls, engine: Engine) -> SetGuard:
        """The guard of *engine* (one per engine, shared by the scheduler and the API)."""
        return engine.plugins.instance(cls, "backupkit.runs.guard")

    def refuse_if_busy(self, set_name: str) -> None:
        """Raise :class:`BusyError` if *set_name* has a backup running now (a caller can ask
        before starting one, so that a refused start is no failed backup to other plugins)."""
        with self._lock:
            self._refuse(set_name)

    def _refuse(self, set_name: str) -> None:
        if set_name in self._running:
            raise BusyError(f"set {set_name!r} is already being backed up; wait for that backup to end")

    @hookimpl(wrapper=True)
    def backupkit_operation(self, operation: Operation) -> Generator[None, object, object]:
        """Hold the set for the length of a backup; refuse if it is held."""
        name = operation.set_name
        if operation.verb != "backup" or name is None:
            return (yield)
        with self._lock:
            self._refuse(name)
            self._running.add(name)
        try:
            return (yield)
        finally:
            with self._lock:
                self._running.discard(name)


class RunWatcher:
    """Notes, per thread, the backup run that began or ended there last."""

    def __init__(self) -> None:
        self._seen = threading.local()

    @classmethod
    def of(cls, engine: Engine) -> RunWatcher:
        """The watcher of *engine*."""
        return engine.plugins.instance(cls, "backupkit.runs.watcher")

    def take(self) -> RunInfo | None:
        """The run this thread saw since the last call, if any."""
        run: RunInfo | None = getattr(self._seen, "run", None)
        self._seen.run = None
        return run

    @hookimpl
    def backupkit_before_run(self, run: RunInfo) -> None:
        """Note the run that is beginning, and tell who waits for it."""
        self._seen.run = run
        began = getattr(self._seen, "began", None)
        if began is not None:
            began(run)

    @hookimpl
    def backupkit_after_run(self, run: RunInfo) -> None:
        """Note the run that just ended."""
        self._seen.run = run

    @hookimpl
    def backupkit_on_failure(self, run: RunInfo) -> None:
        """Note the run that just failed (its log is stored too)."""
        self._seen.run = run

    def on_begin(self, callback: Any) -> None:
        """Call *callback(run)* when a run begins in this thread (``None``: stop)."""
        self._seen.began = callback


@attrs.define
class RunTicket:
    """A backup started in the background: its state while it runs and how it ended."""

    set_name: str
    kind: str
    reason: str
    started_at: dt.datetime
    run_id: str | None = None
    state: str = "starting"  # starting | running | finished | failed
    finished_at: dt.datetime | None = None
    backup_id: str | None = None
    error: str | None = None
    log: str | None = None
    progress: dict[str, Any] = attrs.field(factory=dict)
    began: threading.Event = attrs.field(factory=threading.Event, repr=False)
    ended: threading.Event = attrs.field(factory=threading.Event, repr=False)
    failure: BaseException | None = attrs.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        return {"run_id": self.run_id, "set": self.set_name, "kind": self.kind, "reason": self.reason,
                "state": self.state, "started_at": _iso(self.started_at),
                "finished_at": _iso(self.finished_at), "backup_id": self.backup_id,
                "error": self.error, "log": self.log, "progress": dict(self.progress)}


class BackgroundRuns:
    """Backups of *engine* run in threads of their own; tickets by run id."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.guard = SetGuard.of(engine)
        self.watcher = RunWatcher.of(engine)
        self._tickets: OrderedDict[str, RunTicket] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, set_name: str | None = None, *, kind: str = "full", reason: str = "manual",
              timeout: float = 60.0) -> RunTicket:
        """Start a backup; return its ticket once it runs. An error before it began (an
        unknown set, a busy one, a source that cannot be opened) is raised here."""
        set_cfg = self.engine.config.get_set(set_name)  # an unknown set fails now, not later
        self.guard.refuse_if_busy(set_cfg.name)
        ticket = RunTicket(set_cfg.name, kind, reason, self.engine.parts.clock())
        context = contextvars.copy_context()  # who asked (the audit log's actor) goes along
        thread = threading.Thread(target=context.run, args=(self._run, ticket),
                                  name=f"backupkit-backup-{set_cfg.name}", daemon=True)
        thread.start()
        ticket.began.wait(timeout)
        if ticket.failure is not None and ticket.run_id is None:
            raise ticket.failure  # it never began: the caller's error
        return ticket

    def _run(self, ticket: RunTicket) -> None:
        def began(run: RunInfo) -> None:
            ticket.run_id, ticket.state = run.run_id, "running"
            ticket.log = run.log_location
            with self._lock:
                self._tickets[run.run_id] = ticket
                finished = [k for k, t in self._tickets.items() if t.ended.is_set()]
                for key in finished[:max(0, len(finished) - KEEP_FINISHED)]:
                    del self._tickets[key]
            ticket.began.set()

        def progress(p: Progress) -> None:
            ticket.progress = {"artifact": p.artifact, "done_bytes": p.done_bytes,
                               "stored_bytes": p.stored_bytes, "current": p.current,
                               "elapsed_seconds": round(p.elapsed, 3)}

        self.watcher.on_begin(began)
        try:
            manifest = self.engine.backup(ticket.set_name, kind=ticket.kind, reason=ticket.reason,
                                          progress=progress)
        except BaseException as exc:  # the ticket reports it; this thread has no one to raise to
            ticket.state, ticket.failure = "failed", exc
            ticket.error = strip_userinfo(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        else:
            ticket.state, ticket.backup_id, ticket.kind = "finished", manifest.id, manifest.kind
        finally:
            self.watcher.on_begin(None)
            ticket.finished_at = self.engine.parts.clock()
            ticket.ended.set()
            ticket.began.set()

    def get(self, run_id: str) -> RunTicket:
        """The ticket of run *run_id* (started here, and not forgotten yet)."""
        with self._lock:
            ticket = self._tickets.get(run_id)
        if ticket is None:
            raise NotFoundError(f"no backup run {run_id!r} was started by this server (recently); "
                                "see the catalog for older ones")
        return ticket

    def tickets(self) -> list[RunTicket]:
        """Every remembered run, the newest first."""
        with self._lock:
            return list(reversed(self._tickets.values()))
