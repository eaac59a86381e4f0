"""The HTTP API as an ASGI app (FastAPI): thin routes over :class:`~.service.Service`,
each calling one of its methods and returning the mapping it gives.

``create_app(engine)`` is what ``backupkit serve`` runs and what a host mounts. Every
route needs a bearer token (:mod:`backupkit.server.auth`); admin calls are recorded in
the audit log under the token's id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backupkit.errors import BackupkitError
from backupkit.scheduler import Scheduler
from backupkit.server.auth import Tokens
from backupkit.server.models import (
    AdminBackupRequest,
    BackupRequest,
    DownloadUrlRequest,
    Problem,
    SchedulerRequest,
)
from backupkit.server.service import (
    URL_EXPIRES,
    Caller,
    Refused,
    Service,
    Started,
    check_token,
    error_body,
    status_of,
)

if TYPE_CHECKING:
    from backupkit.engine import Engine

_bearer = HTTPBearer(auto_error=False, description="a token from BACKUPKIT_API_TOKENS or the token file")
Responses = dict[int | str, dict[str, Any]]
_ERRORS: Responses = {401: {"model": Problem, "description": "no token, or not a configured one"},
           403: {"model": Problem, "description": "the token's scope does not allow this route"}}


def _started(started: Started) -> JSONResponse:
    return JSONResponse(dict(started.body), status_code=202, headers={"Location": started.status_url})


def create_app(engine: Engine, tokens: Tokens, *, scheduler: Scheduler | None = None,
               url_expires: int = URL_EXPIRES, env: Mapping[str, str] | None = None) -> FastAPI:
    """The API for *engine*, guarded by *tokens* (none: every route answers 401)."""
    from backupkit import __version__

    api = Service(engine, scheduler=scheduler, url_expires=url_expires, env=env)
    app = FastAPI(title="backupkit", version=__version__, docs_url=None, redoc_url=None,
                  description="Backups, their status, the scheduler, download URLs and metrics.")
    app.state.api = api

    def require(scope: str) -> Callable[..., Awaitable[Caller]]:
        async def caller(request: Request,
                         credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
            origin = request.client.host if request.client else ""
            return check_token(tokens, credentials.credentials if credentials else None, scope, origin)
        return caller

    # Defaults, not local Annotated aliases: FastAPI resolves string annotations in this
    # module's globals only.
    reader, admin = Depends(require("read")), Depends(require("admin"))

    def run_url(run_id: str) -> str:
        return f"/api/backup/runs/{run_id}"

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(BackupkitError)
    async def failed(request: Request, exc: BackupkitError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=status_of(exc))

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

    @app.post("/api/backup", status_code=202, responses=started)
    def backup(body: BackupRequest, caller: Caller = admin) -> JSONResponse:
        """Start a backup (seed 000: ``{"reason": "manual"}``)."""
        return _started(api.backup(caller, body.set, body.kind, body.reason, run_url))

    @app.post("/api/admin/backup", status_code=202, responses=started)
    def admin_backup(body: AdminBackupRequest, caller: Caller = admin) -> JSONResponse:
        """Start a full or incremental backup (seed 002: ``{"type": "full"}``)."""
        return _started(api.backup(caller, body.set, body.type, body.reason, run_url))

    @app.get("/api/backup/status", responses=_ERRORS)
    def status(caller: Caller = reader) -> dict[str, Any]:
        """Per set: counts, sizes, the newest backup, the last drill and the health (ok, at risk,
        failing, with reasons); and the runs this server started."""
        return api.status()

    @app.get("/api/backup/runs/{run_id}", responses={404: {"model": Problem}, **_ERRORS})
    def run(run_id: str, caller: Caller = reader) -> dict[str, Any]:
        """One run this server started: running, finished or failed, with progress."""
        return api.run(run_id)

    @app.get("/api/admin/backup/status", responses=_ERRORS)
    def admin_status(caller: Caller = admin) -> dict[str, Any]:
        """What can be restored: every backup with its artifacts' paths, and the status."""
        return api.admin_status()

    @app.get("/api/backup/scheduler", responses=_ERRORS)
    def scheduler_state(caller: Caller = reader) -> dict[str, Any]:
        """Running or not, enabled or not, and each job's next run and last result."""
        return api.scheduler_state()

    @app.post("/api/backup/scheduler", responses={400: {"model": Problem}, **_ERRORS})
    def scheduler_action(body: SchedulerRequest, caller: Caller = admin) -> dict[str, Any]:
        """Start or stop the scheduler (a running backup finishes first)."""
        return api.scheduler_action(caller, body.action)

    @app.post("/api/admin/backup/download-url",
              responses={400: {"model": Problem}, 404: {"model": Problem}, **_ERRORS})
    def download_url(body: DownloadUrlRequest, caller: Caller = admin) -> dict[str, Any]:
        """An expiring URL for an artifact of a catalogued backup (never another key)."""
        return api.download_url(caller, body.backupPath, body.expires)

    @app.get("/metrics", responses=_ERRORS, response_class=Response)
    def metrics(caller: Caller = reader) -> Response:
        """Prometheus metrics, from the catalog in the sinks (the same on every replica)."""
        body, content_type = api.metrics()
        return Response(body, media_type=content_type)

    return app
