"""The HTTP API against a real uvicorn server on loopback: auth on every route, backups
in the background, 409 for a busy set, the scheduler, download URLs, the audit trail."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx
import pytest

import backupkit
from backupkit.audit import entries
from backupkit.plugin import Operation, hookimpl
from backupkit.server import Tokens
from backupkit.testing.apiserver import ADMIN, READ, ROUTES, serve
from backupkit.testing.fakes import engine_for

pytestmark = pytest.mark.integration
__all__ = ["serve"]  # the fixture



class Hold:
    """Holds every backup open until released."""

    def __init__(self) -> None:
        self.inside, self.release = threading.Event(), threading.Event()

    @hookimpl(wrapper=True)
    def backupkit_operation(self, operation: Operation) -> Generator[None, object, object]:
        result = yield
        if operation.verb == "backup":
            self.inside.set()
            assert self.release.wait(60)
        return result


def _engine(tmp_path: Path, *plugins: object, **kwargs: Any) -> backupkit.Engine:
    src = tmp_path / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "a.txt").write_text("alpha")
    return engine_for(src, sink=tmp_path / "sink", plugins=plugins, **kwargs)


def _wait(client: httpx.Client, run_id: str) -> dict[str, Any]:
    for _ in range(600):
        body: dict[str, Any] = client.get(f"/api/backup/runs/{run_id}").json()
        if body["state"] in ("finished", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end")


def test_every_route_needs_a_token_of_the_right_scope(tmp_path: Path, serve: Any) -> None:
    api = serve(_engine(tmp_path))
    anonymous, wrong = api.client(None), api.client("not-a-token-at-all!")
    viewer, ops = api.client(READ), api.client(ADMIN)
    for method, path, body, scope in [*ROUTES, ("GET", "/metrics", None, "read")]:
        for client, expected in ((anonymous, 401), (wrong, 401)):
            r = client.request(method, path, json=body)
            assert r.status_code == expected, (method, path, r.text)
            assert r.headers["WWW-Authenticate"].startswith('Bearer realm="backupkit"')
            assert ADMIN not in r.text and READ not in r.text
        r = viewer.request(method, path, json=body)
        if scope == "admin":
            assert r.status_code == 403 and "insufficient_scope" in r.headers["WWW-Authenticate"], path
        else:
            assert r.status_code not in (401, 403), (path, r.text)
        assert ops.request(method, path, json=body).status_code not in (401, 403), path


def test_a_backup_runs_in_the_background_and_a_second_one_of_the_set_gets_409(tmp_path: Path, serve: Any) -> None:
    hold = Hold()
    engine = _engine(tmp_path, hold)
    api = serve(engine)
    ops = api.client()
    started = ops.post("/api/backup", json={"reason": "manual"})
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["state"] == "running" and body["status_url"] == f"/api/backup/runs/{body['run_id']}"
    assert started.headers["Location"] == body["status_url"]
    assert hold.inside.wait(30)
    busy = ops.post("/api/admin/backup", json={"type": "incremental"})
    assert busy.status_code == 409 and "already being backed up" in busy.json()["error"]
    assert ops.get(body["status_url"]).json()["state"] == "running"
    hold.release.set()
    done = _wait(ops, body["run_id"])
    assert done["state"] == "finished" and done["backup_id"] == body["run_id"]
    assert done["progress"]["done_bytes"] > 0 and Path(done["log"]).is_file()
    (manifest,) = engine.catalog()
    assert manifest.id == body["run_id"] and manifest.reason == "manual"
    status = api.client(READ).get("/api/backup/status").json()
    assert status["sets"]["app"]["latest_id"] == manifest.id and status["runs"][0]["run_id"] == manifest.id
    assert status["health"] == status["sets"]["app"]["health"] == "ok" and status["sets"]["app"]["reasons"] == []
    assert status["sets"]["app"]["storage"]["disks"][0]["location"] == str(tmp_path / "sink")
    again = ops.post("/api/admin/backup", json={"type": "full"})  # the set is free again
    assert again.status_code == 202
    assert _wait(ops, again.json()["run_id"])["state"] == "finished"
    backups = [e for e in entries(engine.sink_for(str(tmp_path / "sink"))) if e["operation"] == "backup"]
    assert [e["who"] for e in backups] == ["token ops", "token ops"] and backups[0]["from"] == "127.0.0.1"


def test_a_failing_backup_reports_failed_and_bad_requests_get_one_line_errors(tmp_path: Path, serve: Any) -> None:
    engine = _engine(tmp_path)
    api = serve(engine)
    ops = api.client()
    assert ops.post("/api/backup", json={"set": "nope"}).json()["error"].startswith("unknown backup set")
    assert ops.post("/api/backup", json={"set": "nope"}).status_code == 404
    assert ops.post("/api/admin/backup", json={"type": "weekly"}).status_code == 422
    garbled = ops.post("/api/backup", content=b"{not json", headers={"Content-Type": "application/json"})
    assert garbled.status_code == 422
    shutil.rmtree(tmp_path / "src")
    r = ops.post("/api/backup", json={})
    if r.status_code == 202:  # it began, then failed reading the source
        failed = _wait(ops, r.json()["run_id"])
        assert failed["state"] == "failed" and "does not exist" in failed["error"]
    else:
        assert r.status_code == 500 and "does not exist" in r.json()["error"]
    assert ops.get("/api/backup/runs/20200101T000000Z-abcdef").status_code == 404


def test_the_scheduler_starts_and_stops_over_the_api(tmp_path: Path, serve: Any) -> None:
    engine = _engine(tmp_path, schedule=[{"kind": "full", "every": "1h", "run_at_start": True}])
    api = serve(engine, env={})
    ops = api.client()
    state = api.client(READ).get("/api/backup/scheduler").json()
    assert state["running"] is False and state["enabled"] is True and state["jobs"][0]["kind"] == "full"
    assert ops.post("/api/backup/scheduler", json={"action": "start"}).json()["running"] is True
    for _ in range(600):  # run_at_start: the first backup right away
        if api.client(READ).get("/api/backup/scheduler").json()["jobs"][0]["last_result"] == "ok":
            break
        time.sleep(0.05)
    assert ops.post("/api/backup/scheduler", json={"action": "stop"}).json()["running"] is False
    assert len(list(engine.catalog())) == 1
    assert ops.post("/api/backup/scheduler", json={"action": "pause"}).status_code == 422
    off = serve(_engine(tmp_path / "b", schedule=[{"kind": "full", "every": "1h"}]), env={"BACKUP_ENABLED": "false"})
    refused = off.client().post("/api/backup/scheduler", json={"action": "start"})
    assert refused.status_code == 400 and "BACKUP_ENABLED=false" in refused.json()["error"]
    refused = off.client().post("/api/backup", json={"reason": "manual"})
    assert refused.status_code == 409 and "BACKUP_ENABLED=false" in refused.json()["error"]
    actions = [e["operation"] for e in entries(engine.sink_for(str(tmp_path / "sink")))]
    assert "scheduler-start" in actions and "scheduler-stop" in actions


def test_download_urls_only_for_catalogued_artifacts_and_they_expire(tmp_path: Path, serve: Any, s3: Any) -> None:
    s3.create_bucket("questboard-backups")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("alpha" * 1000)
    engine = backupkit.Engine.from_config({"sets": {"app": {
        "sources": [{"type": "filesystem", "paths": [str(src)]}],
        "sink": "s3://questboard-backups/prod"}}}, env=dict(s3.env()))
    manifest = engine.backup()
    api = serve(engine)
    ops = api.client()
    listed = ops.get("/api/admin/backup/status").json()["backups"]
    (artifact,) = listed[0]["artifacts"]
    assert artifact["path"].startswith("s3://questboard-backups/prod/") and listed[0]["id"] == manifest.id
    got = ops.post("/api/admin/backup/download-url", json={"backupPath": artifact["path"]})
    assert got.status_code == 200, got.text
    url = got.json()["url"]
    assert got.json()["expires_seconds"] == 300 and got.json()["backup_id"] == manifest.id
    fetched = subprocess.run(["curl", "-sf", url], capture_output=True, check=False, timeout=60)
    assert fetched.returncode == 0
    stored = manifest.artifacts[0]
    assert hashlib.sha256(fetched.stdout).hexdigest() == stored.stored_sha256
    # S3 refuses a signed URL after X-Amz-Expires seconds from X-Amz-Date (moto does not
    # enforce it, so the test reads what the URL says to S3)
    short = ops.post("/api/admin/backup/download-url", json={"backupPath": artifact["path"], "expires": 60}).json()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(short["url"]).query)
    assert query["X-Amz-Expires"] == ["60"]
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Expires"] == ["300"]
    signed_at = dt.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert dt.datetime.fromisoformat(short["expires_at"]) - signed_at <= dt.timedelta(seconds=62)
    assert ops.post("/api/admin/backup/download-url",
                    json={"backupPath": artifact["path"], "expires": 8 * 24 * 3600}).status_code == 422
    for path, code in (("s3://other-bucket/prod/x.tar.zst", 404),          # not a configured sink
                       ("s3://questboard-backups/other/x", 404),          # the bucket, not the sink
                       ("s3://questboard-backups/prod/audit/x.json", 404),  # the sink, not an artifact
                       (artifact["path"] + ".manifest.json", 404)):
        r = ops.post("/api/admin/backup/download-url", json={"backupPath": path})
        assert r.status_code == code, (path, r.text)
        assert "url" not in r.json() and path in r.json()["error"]


def test_a_token_file_may_hold_hashes_and_bad_entries_are_one_line_errors(tmp_path: Path, serve: Any) -> None:
    secret = "a-long-random-token-value"
    file = tmp_path / "tokens"
    file.write_text(f"# ops\nops:sha256:{hashlib.sha256(secret.encode()).hexdigest()}:admin\n")
    tokens = Tokens.from_env({}, str(file))
    api = serve(_engine(tmp_path), tokens)
    assert api.client(secret).get("/api/backup/status").status_code == 200
    hashed = f"sha256:{hashlib.sha256(secret.encode()).hexdigest()}"
    assert api.client(hashed).get("/api/backup/status").status_code == 401  # the hash is no token
    for bad, named in (("ops:short:admin", "shorter than"), ("ops:a-long-random-token-value:root", "scope"),
                       ("o p:a-long-random-token-value:read", "token id")):
        with pytest.raises(backupkit.errors.ConfigError, match=named) as info:
            Tokens.parse([bad], "BACKUPKIT_API_TOKENS")
        assert "a-long-random-token-value" not in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(backupkit.errors.ConfigError, match="twice"):
        Tokens.parse([f"a:{secret}:read", f"a:{secret}x:admin"], "x")


def test_openapi_describes_every_route(tmp_path: Path, serve: Any) -> None:
    api = serve(_engine(tmp_path))
    doc = api.client(None).get("/openapi.json").json()
    paths = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert {(m, p.replace("nope", "{run_id}")) for m, p, _, _ in ROUTES} <= paths
    assert json.dumps(doc).count("HTTPBearer") >= len(ROUTES)


def test_metrics_are_served_from_the_catalog(tmp_path: Path, serve: Any) -> None:
    engine = _engine(tmp_path)
    manifest = engine.backup()
    api = serve(engine)
    r = api.client(READ).get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(s.name, s.labels.get("set"), s.labels.get("kind")): s.value
               for family in text_string_to_metric_families(r.text) for s in family.samples}
    assert samples[("backup_last_success_timestamp_seconds", "app", "full")] == manifest.created_at.timestamp()
    assert samples[("backup_size_bytes", "app", "full")] == manifest.stored_size
