"""What the HTTP API does, apart from HTTP frameworks: the FastAPI app
(:mod:`backupkit.server.app`) and the Django views (:mod:`backupkit.contrib.django.views`)
are thin layers over one :class:`Service`, so both serve the same routes with the same
bodies, errors and audit trail.

Each method calls one function of the engine, the scheduler or the background runs and
returns a JSON-ready mapping (a typed result's ``to_dict()``). Refusals a client can act
on are :class:`Refused` (status, one-line message, headers); backupkit's own errors map to
a status by :func:`status_of`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from backupkit import audit
from backupkit.core.schedule import enabled
from backupkit.engine.presign import catalogued_url, stored_backups
from backupkit.errors import BackupkitError, BusyError, ConfigError, NotFoundError
from backupkit.params import strip_userinfo
from backupkit.plugin import Operation
from backupkit.runs import BackgroundRuns
from backupkit.scheduler import Scheduler

if TYPE_CHECKING:
    from backupkit.engine import Engine
    from backupkit.server.auth import Tokens

#: Seconds a download URL stays valid unless the request or the server says otherwise.
URL_EXPIRES = 300
REALM = 'Bearer realm="backupkit"'


class Refused(Exception):
    """A request the API turns down: its HTTP status, message and headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, dict(headers or {})


def status_of(exc: BackupkitError) -> int:
    """The HTTP status for a backupkit error raised by a route."""
    if isinstance(exc, BusyError):
        return 409
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConfigError):
        return 400
    return 500


def error_body(exc: BaseException) -> dict[str, Any]:
    """The body of an error response: one line, with no password of a URL in it."""
    return {"error": strip_userinfo(str(exc))}


@attrs.frozen
class Caller:
    """Who makes a request, as the audit log names them: ``token ops``, ``user alice``."""

    who: str
    origin: str = ""


def check_token(tokens: Tokens, presented: str | None, scope: str, origin: str = "") -> Caller:
    """The caller presenting bearer token *presented* (None: no token) on a route that
    needs *scope*; :class:`Refused` (401 or 403, with ``WWW-Authenticate``) if not allowed."""
    if presented is None:
        raise Refused(401, "this API needs a bearer token (Authorization: Bearer <token>)",
                      {"WWW-Authenticate": REALM})
    token = tokens.check(presented)
    if token is None:
        raise Refused(401, "the bearer token is not a configured one",
                      {"WWW-Authenticate": f'{REALM}, error="invalid_token"'})
    if not token.allows(scope):
        raise Refused(403, f"token {token.id!r} has scope {token.scope!r}; this route needs {scope!r}",
                      {"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'})
    return Caller(f"token {token.id}", origin)


@attrs.frozen
class Started:
    """A backup started in the background: the 202 body and its status URL."""

    body: Mapping[str, Any]
    status_url: str


class Service:
    """The API's operations on an engine, its scheduler and its background runs."""

    def __init__(self, engine: Engine, *, scheduler: Scheduler | None = None,
                 url_expires: int = URL_EXPIRES, env: Mapping[str, str] | None = None) -> None:
        self.engine, self.url_expires = engine, url_expires
        self.env = os.environ if env is None else env
        has_jobs = any(s.schedule for s in engine.config.sets.values())
        self.scheduler = scheduler or (Scheduler(engine) if has_jobs else None)
        self.runs = BackgroundRuns(engine)
        self.audit = audit.log_of(engine)

    def record(self, caller: Caller, verb: str, result: str, details: Mapping[str, Any]) -> None:
        """An audit entry for an admin call that is no backup operation of its own."""
        with audit.acting(caller.who, caller.origin):
            self.audit.record(Operation(verb, f"api-{os.urandom(6).hex()}", self.engine.parts.clock()),
                              result, details)

    def backup(self, caller: Caller, set_name: str | None, kind: str, reason: str,
               run_url: Callable[[str], str]) -> Started:
        """Start a backup in the background; *run_url* gives the status URL of a run id.
        Refused (409) with ``BACKUP_ENABLED=false``, as ``backupkit backup`` is."""
        if not enabled(self.env) or not self.engine.config.backups_enabled:
            raise Refused(409, "backups are disabled (BACKUP_ENABLED=false); unset it to run them")
        if set_name is not None and set_name not in self.engine.config.sets:
            try:
                self.engine.config.get_set(set_name)
            except ConfigError as exc:
                raise Refused(404, str(exc)) from None
        with audit.acting(caller.who, caller.origin):
            ticket = self.runs.start(set_name, kind=kind, reason=reason)
        url = run_url(str(ticket.run_id))  # set once the run has begun
        return Started({**ticket.to_dict(), "status_url": url}, url)

    def run(self, run_id: str) -> dict[str, Any]:
        """One run this server started: running, finished or failed, with progress."""
        return self.runs.get(run_id).to_dict()

    def status(self) -> dict[str, Any]:
        """Per set: counts, sizes, the newest backup, the last drill and the health (ok, at risk,
        failing, with reasons); and the runs this server started."""
        return {**self.engine.status().to_dict(), "runs": [t.to_dict() for t in self.runs.tickets()]}

    def admin_status(self) -> dict[str, Any]:
        """The status, with every stored backup and its artifacts' paths."""
        return {**self.engine.status().to_dict(), "backups": stored_backups(self.engine.parts),
                "runs": [t.to_dict() for t in self.runs.tickets()]}

    def scheduler_state(self) -> dict[str, Any]:
        """The scheduler's state (or that there is nothing to schedule)."""
        if self.scheduler is None:
            return {"running": False, "enabled": enabled(self.env), "jobs": [],
                    "note": "no set has a schedule; add one to the configuration"}
        return {**self.scheduler.status(), "enabled": enabled(self.env)}

    def start_scheduler(self) -> None:
        """Start the scheduler (refused with BACKUP_ENABLED=false or no schedule)."""
        if self.scheduler is None:
            raise ConfigError("no set has a schedule; add one to the configuration to start the scheduler")
        if not enabled(self.env):
            raise ConfigError("scheduled jobs are disabled (BACKUP_ENABLED=false); unset it to start them")
        self.scheduler.start()

    def stop_scheduler(self) -> None:
        """Stop the scheduler, if there is one (a running backup finishes first)."""
        if self.scheduler is not None:
            self.scheduler.stop()

    def scheduler_action(self, caller: Caller, action: str) -> dict[str, Any]:
        """``start`` or ``stop`` the scheduler, audited; its state afterwards."""
        try:
            self.start_scheduler() if action == "start" else self.stop_scheduler()
        except BackupkitError as exc:
            self.record(caller, f"scheduler-{action}", "failed", {"error": str(exc)})
            raise
        self.record(caller, f"scheduler-{action}", "ok", {})
        return self.scheduler_state()

    def download_url(self, caller: Caller, path: str, expires: int | None) -> dict[str, Any]:
        """An expiring URL for an artifact of a catalogued backup (never another key), audited."""
        try:
            found = catalogued_url(self.engine.parts, path, expires=expires or self.url_expires)
        except BackupkitError as exc:
            self.record(caller, "download-url", "failed", {"path": strip_userinfo(path), "error": str(exc)})
            raise
        self.record(caller, "download-url", "ok", {"path": found.path, "backup_id": found.backup_id,
                                                    "expires_seconds": found.expires_seconds})
        return found.to_dict()

    def metrics(self) -> tuple[bytes, str]:
        """Prometheus metrics from the catalog in the sinks, and their content type."""
        exporter = importlib.import_module("backupkit.metrics")  # needs backupkit[metrics]
        found: tuple[bytes, str] = exporter.exposition(self.engine)
        return found
