"""The HTTP API as an ASGI app (FastAPI): thin routes, each calling one function of the
engine, the scheduler or the background runs, and returning its result's ``to_dict()``.

``create_app(engine)`` is what ``backupkit serve`` runs and what a host mounts. Every
route needs a bearer token (:mod:`backupkit.server.auth`); admin calls are recorded in
the audit log under the token's id.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backupkit import audit
from backupkit.core.schedule import enabled
from backupkit.engine.presign import catalogued_url, stored_backups
from backupkit.errors import BackupkitError, BusyError, ConfigError, NotFoundError
from backupkit.params import strip_userinfo
from backupkit.plugin import Operation
from backupkit.runs import BackgroundRuns
from backupkit.scheduler import Scheduler
from backupkit.server.auth import Token, Tokens
from backupkit.server.models import (
    AdminBackupRequest,
    BackupRequest,
    DownloadUrlRequest,
    Problem,
    SchedulerRequest,
)

if TYPE_CHECKING:
    from backupkit.engine import Engine

#: Seconds a download URL stays valid unless the request or the server says otherwise.
URL_EXPIRES = 300

_bearer = HTTPBearer(auto_error=False, description="a token from BACKUPKIT_API_TOKENS or the token file")
Responses = dict[int | str, dict[str, Any]]
_ERRORS: Responses = {401: {"model": Problem, "description": "no token, or not a configured one"},
           403: {"model": Problem, "description": "the token's scope does not allow this route"}}


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, dict(headers or {})


def _status_of(exc: BackupkitError) -> int:
    if isinstance(exc, BusyError):
        return 409
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConfigError):
        return 400
    return 500


class Api:
    """What the routes call: the engine, its scheduler and its background runs."""

    def __init__(self, engine: Engine, tokens: Tokens, *, scheduler: Scheduler | None = None,
                 url_expires: int = URL_EXPIRES, env: Mapping[str, str] | None = None) -> None:
        self.engine, self.tokens, self.url_expires = engine, tokens, url_expires
        self.env = os.environ if env is None else env
        has_jobs = any(s.schedule for s in engine.config.sets.values())
        self.scheduler = scheduler or (Scheduler(engine) if has_jobs else None)
        self.runs = BackgroundRuns(engine)
        self.audit = audit.log_of(engine)

    def require(self, scope: str) -> Callable[..., Awaitable[Token]]:
        """A dependency: the request's token, which must allow *scope*."""
        async def check(request: Request,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Token:
            realm = 'Bearer realm="backupkit"'
            if credentials is None:
                raise _Refused(401, "this API needs a bearer token (Authorization: Bearer <token>)",
                               {"WWW-Authenticate": realm})
            token = self.tokens.check(credentials.credentials)
            if token is None:
                raise _Refused(401, "the bearer token is not a configured one",
                               {"WWW-Authenticate": f'{realm}, error="invalid_token"'})
            if not token.allows(scope):
                raise _Refused(403, f"token {token.id!r} has scope {token.scope!r}; this route needs {scope!r}",
                               {"WWW-Authenticate": f'{realm}, error="insufficient_scope", scope="{scope}"'})
            request.state.actor = (f"token {token.id}", request.client.host if request.client else "")
            return token
        return check

    def record(self, request: Request, verb: str, result: str, details: Mapping[str, Any]) -> None:
        """An audit entry for an admin call that is no backup operation of its own."""
        who, origin = request.state.actor
        with audit.acting(who, origin):
            self.audit.record(Operation(verb, f"api-{os.urandom(6).hex()}", self.engine.parts.clock()),
                              result, details)

    def backup(self, request: Request, set_name: str | None, kind: str, reason: str) -> JSONResponse:
        """Start a backup in the background: 202 with its run id and status URL."""
        if set_name is not None and set_name not in self.engine.config.sets:
            try:
                self.engine.config.get_set(set_name)
            except ConfigError as exc:
                raise _Refused(404, str(exc)) from None
        with audit.acting(*request.state.actor):
            ticket = self.runs.start(set_name, kind=kind, reason=reason)
        body = {**ticket.to_dict(), "status_url": f"/api/backup/runs/{ticket.run_id}"}
        return JSONResponse(body, status_code=202, headers={"Location": body["status_url"]})

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


def create_app(engine: Engine, tokens: Tokens, *, scheduler: Scheduler | None = None,
               url_expires: int = URL_EXPIRES, env: Mapping[str, str] | None = None) -> FastAPI:
    """The API for *engine*, guarded by *tokens* (none: every route answers 401)."""
    from backupkit import __version__

    api = Api(engine, tokens, scheduler=scheduler, url_expires=url_expires, env=env)
    app = FastAPI(title="backupkit", version=__version__, docs_url=None, redoc_url=None,
                  description="Backups, their status, the scheduler, download URLs and metrics.")
    app.state.api = api
    read, admin = Depends(api.require("read")), Depends(api.require("admin"))

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(BackupkitError)
    async def failed(request: Request, exc: BackupkitError) -> JSONResponse:
        return JSONResponse({"error": strip_userinfo(str(exc))}, status_code=_status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"error": "the request body is not what this route takes", "detail": detail},
                            status_code=422)

    started: Responses = {202: {"description": "the backup runs; poll status_url"},
               409: {"model": Problem, "description": "the set is being backed up already"},
               400: {"model": Problem, "description": "an unknown set, or a configuration error"},
               404: {"model": Problem, "description": "no such set"},
               500: {"model": Problem, "description": "the backup could not start"}, **_ERRORS}

    @app.post("/api/backup", status_code=202, responses=started, dependencies=[admin])
    def backup(body: BackupRequest, request: Request) -> JSONResponse:
        """Start a backup (seed 000: ``{"reason": "manual"}``)."""
        return api.backup(request, body.set, body.kind, body.reason)

    @app.post("/api/admin/backup", status_code=202, responses=started, dependencies=[admin])
    def admin_backup(body: AdminBackupRequest, request: Request) -> JSONResponse:
        """Start a full or incremental backup (seed 002: ``{"type": "full"}``)."""
        return api.backup(request, body.set, body.type, body.reason)

    @app.get("/api/backup/status", responses=_ERRORS, dependencies=[read])
    def status() -> dict[str, Any]:
        """Per set: the newest backup, counts and sizes; and the runs this server started."""
        return {**engine.status().to_dict(), "runs": [t.to_dict() for t in api.runs.tickets()]}

    @app.get("/api/backup/runs/{run_id}", responses={404: {"model": Problem}, **_ERRORS}, dependencies=[read])
    def run(run_id: str) -> dict[str, Any]:
        """One run this server started: running, finished or failed, with progress."""
        return api.runs.get(run_id).to_dict()

    @app.get("/api/admin/backup/status", responses=_ERRORS, dependencies=[admin])
    def admin_status() -> dict[str, Any]:
        """What can be restored: every backup with its artifacts' paths, and the status."""
        return {**engine.status().to_dict(), "backups": stored_backups(engine.parts),
                "runs": [t.to_dict() for t in api.runs.tickets()]}

    @app.get("/api/backup/scheduler", responses=_ERRORS, dependencies=[read])
    def scheduler_state() -> dict[str, Any]:
        """Running or not, enabled or not, and each job's next run and last result."""
        return api.scheduler_state()

    @app.post("/api/backup/scheduler", responses={400: {"model": Problem}, **_ERRORS}, dependencies=[admin])
    def scheduler_action(body: SchedulerRequest, request: Request) -> dict[str, Any]:
        """Start or stop the scheduler (a running backup finishes first)."""
        try:
            if body.action == "start":
                api.start_scheduler()
            elif api.scheduler is not None:
                api.scheduler.stop()
        except BackupkitError as exc:
            api.record(request, f"scheduler-{body.action}", "failed", {"error": str(exc)})
            raise
        api.record(request, f"scheduler-{body.action}", "ok", {})
        return api.scheduler_state()

    @app.post("/api/admin/backup/download-url",
              responses={400: {"model": Problem}, 404: {"model": Problem}, **_ERRORS}, dependencies=[admin])
    def download_url(body: DownloadUrlRequest, request: Request) -> dict[str, Any]:
        """An expiring URL for an artifact of a catalogued backup (never another key)."""
        try:
            found = catalogued_url(engine.parts, body.backupPath, expires=body.expires or api.url_expires)
        except BackupkitError as exc:
            api.record(request, "download-url", "failed", {"path": strip_userinfo(body.backupPath),
                                                           "error": str(exc)})
            raise
        api.record(request, "download-url", "ok", {"path": found.path, "backup_id": found.backup_id,
                                                   "expires_seconds": found.expires_seconds})
        return found.to_dict()

    @app.get("/metrics", responses=_ERRORS, dependencies=[read],
             response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics, from the catalog in the sinks (the same on every replica)."""
        exporter = importlib.import_module("backupkit.metrics")  # needs backupkit[metrics]
        body, content_type = exporter.exposition(engine)
        return Response(body, media_type=content_type)

    return app
