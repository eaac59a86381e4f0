"""``backupkit run`` and ``backupkit schedule show`` in a subprocess, like a user at a shell."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import backupkit

pytestmark = pytest.mark.integration


def config(tmp_path: Path, schedule: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_text("alpha")
    path = tmp_path / "backupkit.toml"
    path.write_text(f'timezone = "Europe/Berlin"\n[sets.app]\nsink = "{tmp_path / "sink"}"\n{schedule}\n'
                    f'[[sets.app.sources]]\ntype = "filesystem"\npaths = ["{src}"]\n')
    return path


def test_schedule_show_lists_each_jobs_next_runs_in_the_configured_zone(tmp_path: Path, cli: Any) -> None:
    path = config(tmp_path, 'schedule = "daily-02:00+6h"')
    shown = cli("schedule", "show", "--config", path, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["enabled"] is True and data["timezone"] == "Europe/Berlin"
    full = next(j for j in data["jobs"] if j["kind"] == "full")
    assert full["job"] == "app/full@0 2 * * *" and len(full["next_runs"]) == 3
    text = cli("schedule", "show", "--config", path)
    assert "app/full@0 2 * * *: " in text.stdout and "02:00 CET" in text.stdout


def test_no_schedule_is_a_one_line_error(tmp_path: Path, cli: Any) -> None:
    cli.error_line(cli("run", "--config", config(tmp_path, "")), "no set has a schedule")


def test_backup_enabled_false_runs_nothing_and_says_so(tmp_path: Path, cli: Any) -> None:
    path = config(tmp_path, 'schedule = [{kind = "full", every = "1h", run_at_start = true}]')
    cli.env["BACKUP_ENABLED"] = "false"
    result = cli("run", "--config", path)
    assert result.returncode == 0 and "disabled (BACKUP_ENABLED=false)" in result.stderr
    assert not (tmp_path / "sink").exists()


def test_run_backs_up_at_start_and_sigterm_stops_it_cleanly(tmp_path: Path) -> None:
    path = config(tmp_path, 'schedule = [{kind = "full", every = "1h", run_at_start = true}]')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "AWS_"))}
    proc = subprocess.Popen([sys.executable, "-m", "backupkit", "run", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "sink").rglob("*.manifest.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "scheduled app/full@every 1h, next run" in err and "scheduler stopped" in out
    engine = backupkit.Engine.from_config(path, env={})
    (manifest,) = list(engine.catalog())
    assert manifest.reason == "scheduled" and engine.verify(manifest.id).ok


def test_seed_002s_full_and_incremental_commands(tmp_path: Path, cli: Any) -> None:
    path = config(tmp_path, "")
    full = cli("full", "--config", path, "--json")
    assert full.returncode == 0, full.stderr
    assert json.loads(full.stdout)["kind"] == "full"
    (tmp_path / "src" / "b.txt").write_text("beta")
    incremental = cli("incremental", "--config", path, "--json")
    assert incremental.returncode == 0, incremental.stderr
    manifest = json.loads(incremental.stdout)
    assert manifest["kind"] == "incremental" and manifest["parent_id"] == json.loads(full.stdout)["id"]


def test_restore_without_an_id_lists_what_can_be_restored(tmp_path: Path, cli: Any) -> None:
    path = config(tmp_path, "")
    made = json.loads(cli("full", "--config", path, "--json").stdout)
    listed = cli("restore", "--config", path)
    assert listed.returncode == 0, listed.stderr
    assert made["id"] in listed.stdout and "restore one with: backupkit restore ID --to TARGET" in listed.stderr
    cli.error_line(cli("restore", "--config", path, "latest"), "restore needs --to")
