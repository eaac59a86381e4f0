"""``backupkit serve`` as a real process: it refuses to serve open, starts its scheduler
with AUTO_S3_BACKUP=true, and the Next.js sidecar's Node client drives it over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import backupkit
from backupkit.plugin.scratch import free_port

pytestmark = pytest.mark.integration

CLIENT = Path(__file__).parents[2] / "examples" / "nextjs-sidecar" / "backup-client.mjs"
TOKEN = "web-admin-token-0123456789"


def _config(tmp_path: Path, sink: str, schedule: str = "") -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_text("alpha" * 1000)
    path = tmp_path / "backupkit.toml"
    path.write_text(f'[sets.app]\nsink = "{sink}"\n{schedule}\n'
                    f'[[sets.app.sources]]\ntype = "filesystem"\npaths = ["{src}"]\n')
    return path


def test_serve_refuses_to_run_without_tokens(tmp_path: Path, cli: Any) -> None:
    path = _config(tmp_path, str(tmp_path / "sink"))
    line = cli.error_line(cli("serve", "--config", path, "--port", str(free_port())), "BACKUPKIT_API_TOKENS")
    assert "without tokens" in line
    line = cli.error_line(cli("serve", "--config", path, "--host", "0.0.0.0", "--port", str(free_port())),
                          "0.0.0.0", "not a loopback address")
    cli.env["BACKUPKIT_API_TOKENS"] = "ops:short:admin"
    cli.error_line(cli("serve", "--config", path), "shorter than 16")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_client_backs_up_and_downloads_through_a_real_server(tmp_path: Path, s3: Any) -> None:
    s3.create_bucket("web-backups")
    path = _config(tmp_path, "s3://web-backups/backups", 'schedule = "interval"')
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKUP")}
    env.update(s3.env(), BACKUPKIT_API_TOKENS=f"web:{TOKEN}:admin", AUTO_S3_BACKUP="true",
               BACKUP_INTERVAL_HOURS="24")
    server = subprocess.Popen([sys.executable, "-m", "backupkit", "serve", "--config", str(path),
                               "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
            state: dict[str, Any] = {}
            for _ in range(600):  # the server is up, and AUTO_S3_BACKUP's first backup has run
                assert server.poll() is None, server.communicate()[1]
                try:
                    state = client.get("/api/backup/scheduler").json()
                except httpx.TransportError:
                    state = {}
                if state.get("jobs") and state["jobs"][0]["last_result"] == "ok":
                    break
                time.sleep(0.1)
            assert state["running"] is True and state["jobs"][0]["runs"] == 1, state
        done = subprocess.run(["node", str(CLIENT)], env={**env, "BACKUPKIT_URL": url, "BACKUPKIT_TOKEN": TOKEN},
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["accepted"] == 202 and report["download_status"] == 200
        assert report["path"].startswith("s3://web-backups/backups/") and report["downloaded_bytes"] > 0
        wrong = subprocess.run(["node", str(CLIENT)], env={**env, "BACKUPKIT_URL": url, "BACKUPKIT_TOKEN": "x" * 20},
                               capture_output=True, text=True, timeout=120, check=False)
        assert wrong.returncode == 1 and "HTTP 401" in wrong.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert TOKEN not in out + err
    engine = backupkit.Engine.from_config(path, env=s3.env())
    manifests = sorted(engine.catalog(), key=lambda m: m.created_at)
    assert [m.reason for m in manifests] == ["scheduled", "manual"]
    assert manifests[1].id == report["backup_id"]
