"""The HTTP API as Django views: the routes of ``backupkit serve`` (same paths, bodies,
errors and audit trail), served by the host's Django under its own URL prefix.

``path("", include("backupkit.contrib.django.urls"))`` serves ``/api/backup``... Each view
checks who calls (:func:`caller`), then calls one method of the
:class:`~backupkit.server.service.Service` of the ``BACKUPKIT`` engine and returns the
mapping it gives as JSON. Request bodies are checked by the same models the FastAPI app
uses (pydantic). Who may call:

- a bearer token (``Authorization: Bearer ...``) from ``BACKUPKIT_API["tokens"]``, the
  token file, or ``BACKUPKIT_API_TOKENS`` — what a script or a sidecar sends;
- a logged-in Django user: staff users may read, superusers may do everything (or what
  the ``BACKUPKIT_API["access"]`` callable says: ``access(request) -> "read" | "admin" |
  None``). A POST by session needs Django's CSRF token, as any form of the site does.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

import backupkit.contrib.django as site
from backupkit.errors import BackupkitError
from backupkit.server.models import (
    AdminBackupRequest,
    BackupRequest,
    DownloadUrlRequest,
    SchedulerRequest,
)
from backupkit.server.service import (
    REALM,
    Caller,
    Refused,
    Service,
    check_token,
    error_body,
    status_of,
)

__all__ = ["admin_backup", "admin_status", "backup", "download_url", "metrics", "run", "scheduler", "status"]

View = Callable[..., Any]


def _django(module: str) -> Any:
    """A module of Django (which has no type hints)."""
    return importlib.import_module(f"django.{module}")


def _http() -> Any:
    return _django("http")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    return _http().JsonResponse(body, status=status, headers=headers, safe=False)


def _logged_in(request: Any) -> Any:
    """The logged-in user of *request*, or None (also without Django's auth app)."""
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def _scope_of(request: Any, user: Any) -> str | None:
    """What *user* may do: ``BACKUPKIT_API["access"]``'s answer, or by default read for
    staff and admin for superusers (None: nothing)."""
    access = site.api_settings().access
    if access is not None:
        scope: str | None = access(request)
        return scope
    return "admin" if user.is_superuser else "read" if user.is_staff else None


def _enforce_csrf(request: Any) -> None:
    class Check(_django("middleware.csrf").CsrfViewMiddleware):  # type: ignore[misc]
        def _reject(self, request: Any, reason: str) -> str:
            return reason

    check = Check(lambda r: None)
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        raise Refused(403, f"CSRF check failed ({reason}); send the csrftoken as X-CSRFToken, "
                           "or call with a bearer token")


def caller(request: Any, scope: str) -> Caller:
    """Who calls with *request* on a route that needs *scope*: a bearer token, or else the
    logged-in user; :class:`Refused` (401/403) if neither may."""
    origin = request.META.get("REMOTE_ADDR", "")
    header = request.headers.get("Authorization")
    if header is not None:
        kind, _, credentials = header.partition(" ")
        if kind.lower() != "bearer" or not credentials.strip():
            raise Refused(401, "the Authorization header must be 'Bearer <token>'", {"WWW-Authenticate": REALM})
        return check_token(site.api_settings().tokens, credentials.strip(), scope, origin)
    user = _logged_in(request)
    if user is None:
        return check_token(site.api_settings().tokens, None, scope, origin)  # 401
    name, user_scope = user.get_username(), _scope_of(request, user)
    if user_scope not in ("admin", scope):
        allowed = f"has scope {user_scope!r}" if user_scope else "may not call this API"
        raise Refused(403, f"user {name!r} {allowed}; this route needs {scope!r} (staff read, superusers admin)")
    if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
        _enforce_csrf(request)
    return Caller(f"user {name}", origin)


def _body(request: Any, model: type[BaseModel]) -> Any:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise Refused(422, "the request body is not JSON; send a JSON object") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        detail = [{"loc": ["body", *e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()]
        raise _Invalid(detail) from None


class _Invalid(Exception):
    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("the request body is not what this route takes")
        self.detail = detail


def _route(method: str, scope: str, call: Callable[..., Any]) -> View:
    """A view for *method* that checks the caller's *scope*, runs *call*, and answers its
    mapping as JSON (or its response as it is) and errors as the FastAPI app does."""
    def view(request: Any, **kwargs: Any) -> Any:
        if request.method != method:
            return _json({"error": f"this route takes {method}"}, 405, {"Allow": method})
        try:
            who = caller(request, scope)
            found = call(request, site.service(), who, **kwargs)
        except Refused as exc:
            return _json({"error": str(exc)}, exc.status, exc.headers)
        except _Invalid as exc:
            return _json({"error": str(exc), "detail": exc.detail}, 422)
        except BackupkitError as exc:
            return _json(error_body(exc), status_of(exc))
        return found if isinstance(found, _http().HttpResponse) else _json(found)

    view.__doc__ = call.__doc__
    view.__name__ = call.__name__
    # Session callers are checked in caller(); tokens need no CSRF.
    exempt: View = _django("views.decorators.csrf").csrf_exempt(view)
    return exempt


def _run_url(run_id: str) -> str:
    return str(_django("urls").reverse("backupkit:run", kwargs={"run_id": run_id}))


def _started(request: Any, api: Service, who: Caller, set_name: str | None, kind: str, reason: str) -> Any:
    started = api.backup(who, set_name, kind, reason, _run_url)
    return _json(dict(started.body), 202, {"Location": started.status_url})


def _backup(request: Any, api: Service, who: Caller) -> Any:
    """Start a backup (seed 000: ``{"reason": "manual"}``)."""
    body = _body(request, BackupRequest)
    return _started(request, api, who, body.set, body.kind, body.reason)


def _admin_backup(request: Any, api: Service, who: Caller) -> Any:
    """Start a full or incremental backup (seed 002: ``{"type": "full"}``)."""
    body = _body(request, AdminBackupRequest)
    return _started(request, api, who, body.set, body.type, body.reason)


def _scheduler(request: Any, api: Service, who: Caller) -> Any:
    """GET: the scheduler's state; POST ``{"action": "start"|"stop"}`` (admin)."""
    if request.method == "GET":
        return api.scheduler_state()
    return api.scheduler_action(who, _body(request, SchedulerRequest).action)


def _download_url(request: Any, api: Service, who: Caller) -> Any:
    """An expiring URL for an artifact of a catalogued backup (never another key)."""
    body = _body(request, DownloadUrlRequest)
    return api.download_url(who, body.backupPath, body.expires)


def _metrics(request: Any, api: Service, who: Caller) -> Any:
    """Prometheus metrics, from the catalog in the sinks."""
    body, content_type = api.metrics()
    return _http().HttpResponse(body, content_type=content_type)


backup = _route("POST", "admin", _backup)
admin_backup = _route("POST", "admin", _admin_backup)
status = _route("GET", "read", lambda request, api, who: api.status())
run = _route("GET", "read", lambda request, api, who, run_id: api.run(run_id))
admin_status = _route("GET", "admin", lambda request, api, who: api.admin_status())
_scheduler_get = _route("GET", "read", _scheduler)
_scheduler_post = _route("POST", "admin", _scheduler)
download_url = _route("POST", "admin", _download_url)
metrics = _route("GET", "read", _metrics)


def scheduler(request: Any) -> Any:
    """``GET /api/backup/scheduler`` (read) and ``POST`` (admin)."""
    if request.method not in ("GET", "POST"):
        return _json({"error": "this route takes GET or POST"}, 405, {"Allow": "GET, POST"})
    return (_scheduler_post if request.method == "POST" else _scheduler_get)(request)


scheduler.csrf_exempt = True  # type: ignore[attr-defined]  # checked in caller(), as above
