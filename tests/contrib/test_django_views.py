"""backupkit.contrib.django's JSON views, served by the test project's ``manage.py
runserver`` (a real HTTP server on loopback): the routes of ``backupkit serve`` with
bearer tokens and with Django's logged-in users, backups in the background, the audit."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from django_site import Manage

from backupkit.audit import entries
from backupkit.sinks.local import LocalSink
from backupkit.testing.apiserver import ROUTES as API_ROUTES

pytestmark = pytest.mark.integration

READ, ADMIN, ENV_ADMIN = (f"{n}-{secrets.token_hex(12)}" for n in ("read", "admin", "env"))
ROUTES = [*API_ROUTES, ("GET", "/metrics", None, "read")]


@pytest.fixture
def manage(tmp_path: Path) -> Manage:
    """The test project on SQLite, a file in MEDIA_ROOT, tokens in BACKUPKIT_API and the env."""
    site = Manage(tmp_path)
    (site.media / "photo.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    site.env["TEST_BACKUPKIT_API"] = json.dumps({"tokens": [f"viewer:{READ}:read", f"ops:{ADMIN}:admin"]})
    site.env["BACKUPKIT_API_TOKENS"] = f"deploy:{ENV_ADMIN}:admin"
    site.ok("migrate", "--noinput")
    return site


def _client(url: str, token: str | None = None, *, authorization: str | None = None, **kwargs: Any) -> httpx.Client:
    authorization = authorization or (f"Bearer {token}" if token else None)
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60, **kwargs)


def _wait(client: httpx.Client, status_url: str) -> dict[str, Any]:
    for _ in range(600):
        body: dict[str, Any] = client.get(status_url).json()
        if body["state"] in ("finished", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"{status_url} did not end")


def test_every_view_needs_a_token_of_the_right_scope(manage: Manage) -> None:
    with manage.runserver() as url, _client(url) as anonymous, _client(url, "not-a-token-at-all!") as wrong, \
            _client(url, READ) as viewer, _client(url, ADMIN) as ops, \
            _client(url, authorization=f"Basic {ADMIN}") as basic:
        for method, path, body, scope in ROUTES:
            for client in (anonymous, wrong, basic):
                r = client.request(method, path, json=body)
                assert r.status_code == 401, (method, path, r.text)
                assert r.headers["WWW-Authenticate"].startswith('Bearer realm="backupkit"')
                assert ADMIN not in r.text
            r = viewer.request(method, path, json=body)
            if scope == "admin":
                assert r.status_code == 403, (method, path, r.text)
                assert "'viewer'" in r.json()["error"] and 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
            else:
                assert r.status_code not in (401, 403), (method, path, r.text)
            assert ops.request(method, path, json=body).status_code not in (401, 403), (method, path)
        assert ops.put("/api/backup/scheduler", json={}).status_code == 405
        assert ops.get("/api/backup").status_code == 405


def test_a_backup_started_by_a_view_is_listed_restorable_and_audited(manage: Manage, tmp_path: Path) -> None:
    with manage.runserver() as url, _client(url, ENV_ADMIN) as deploy, _client(url, READ) as viewer:
        r = deploy.post("/api/backup", json={"reason": "manual"})
        assert r.status_code == 202, r.text
        started = r.json()
        assert r.headers["Location"] == started["status_url"] == f"/api/backup/runs/{started['run_id']}"
        done = _wait(viewer, started["status_url"])
        assert done["state"] == "finished" and done["backup_id"] == started["run_id"], done
        status = viewer.get("/api/backup/status").json()
        assert status["sets"]["site"]["latest_id"] == done["backup_id"]
        listed = deploy.get("/api/admin/backup/status").json()["backups"]
        assert [b["id"] for b in listed] == [done["backup_id"]]
        incremental = deploy.post("/api/admin/backup", json={"type": "incremental"})
        assert incremental.status_code == 202 and _wait(viewer, incremental.json()["status_url"])["state"] == "finished"
        assert viewer.get("/api/backup/runs/no-such-run").status_code == 404
        refused = deploy.post("/api/admin/backup/download-url", json={"backupPath": "s3://elsewhere/secret"})
        assert refused.status_code in (400, 404) and "elsewhere" in refused.json()["error"]
        bad = deploy.post("/api/admin/backup", json={"type": "weekly"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "type"]
        assert deploy.post("/api/backup", content=b"{not json").status_code == 422
        unknown = deploy.post("/api/backup", json={"set": "nope"})
        assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
        scheduler = viewer.get("/api/backup/scheduler").json()
        assert scheduler["running"] is False and scheduler["jobs"] == []
        start = deploy.post("/api/backup/scheduler", json={"action": "start"})
        assert start.status_code == 400 and "schedule" in start.json()["error"]
        metrics = viewer.get("/metrics")
        assert metrics.status_code == 200 and 'set="site"' in metrics.text
    (manage.media / "photo.jpg").unlink()
    manage.ok("backupkit_restore", "latest", "--artifact", "media", "--noinput", "--clean")
    assert (manage.media / "photo.jpg").read_bytes() == b"\xff\xd8 not really a jpeg"
    audited = list(entries(LocalSink(manage.sink)))
    backups = [e for e in audited if e["operation"] == "backup"]
    assert [e["who"] for e in backups] == ["token deploy", "token deploy"] and backups[0]["from"] == "127.0.0.1"
    assert [(e["operation"], e["result"], e["who"]) for e in audited if e["operation"] != "backup"] == [
        ("download-url", "failed", "token deploy"), ("scheduler-start", "failed", "token deploy")]


def _session(manage: Manage, username: str, *, staff: bool, superuser: bool) -> str:
    """A user of Django's auth and the key of a logged-in session of theirs."""
    code = (
        "from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model\n"
        "from django.contrib.sessions.backends.db import SessionStore\n"
        f"u = get_user_model().objects.create_user({username!r}, password='pw-0123456789abcdef', "
        f"is_staff={staff}, is_superuser={superuser})\n"
        "s = SessionStore()\n"
        "s[SESSION_KEY] = str(u.pk)\n"
        "s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
        "s[HASH_SESSION_KEY] = u.get_session_auth_hash()\n"
        "s.create()\n"
        "print(s.session_key)\n")
    return manage.ok("shell", "-c", code).strip().splitlines()[-1]  # Django 5.2 says what it imported first


def test_logged_in_staff_read_and_superusers_act_with_a_csrf_token(tmp_path: Path) -> None:
    manage = Manage(tmp_path)
    manage.env["TEST_AUTH"] = "1"
    manage.ok("migrate", "--noinput")
    staff = _session(manage, "alice", staff=True, superuser=False)
    root = _session(manage, "root", staff=True, superuser=True)
    plain = _session(manage, "bob", staff=False, superuser=False)
    csrf = secrets.token_hex(16)  # a 32-character secret: Django takes it as cookie and header
    with manage.runserver() as url:
        with _client(url, cookies={"sessionid": staff}) as alice:
            assert alice.get("/api/backup/status").status_code == 200
            alice.cookies.set("csrftoken", csrf)
            denied = alice.post("/api/backup", json={}, headers={"X-CSRFToken": csrf})
            assert denied.status_code == 403 and "'alice'" in denied.json()["error"]
        with _client(url, cookies={"sessionid": plain}) as bob:
            assert bob.get("/api/backup/status").status_code == 403
        with _client(url, cookies={"sessionid": root}) as admin:
            forged = admin.post("/api/backup", json={"reason": "from a page"})
            assert forged.status_code == 403 and "CSRF" in forged.json()["error"]
            admin.cookies.set("csrftoken", csrf)
            r = admin.post("/api/backup", json={"reason": "from a page"}, headers={"X-CSRFToken": csrf})
            assert r.status_code == 202, r.text
            assert _wait(admin, r.json()["status_url"])["state"] == "finished"
        with _client(url) as nobody:
            assert nobody.get("/api/backup/status").status_code == 401  # no tokens configured, no session
    assert [e["who"] for e in entries(LocalSink(manage.sink)) if e["operation"] == "backup"] == [
        "user root"]
