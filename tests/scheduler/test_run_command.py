"""``backupkit run`` and ``backupkit schedule show`` in a subprocess, like a user at a shell."""

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

import pytest

import backupkit

pytestmark = pytest.mark.integration


def machine_zone_name() -> str:
    """The zone this machine's cron keeps time in, as the test reads /etc/localtime."""
    localtime = Path("/etc/localtime")
    return localtime.resolve().as_posix().partition("/zoneinfo/")[2] or "UTC" if localtime.exists() else "UTC"


def config(tmp_path: Path, schedule: str, tz: str = "Europe/Berlin") -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_text("alpha")
    path = tmp_path / "backupkit.toml"
    path.write_text(f'timezone = "{tz}"\n[sets.app]\nsink = "{tmp_path / "sink"}"\n{schedule}\n'
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


def test_schedule_install_twice_leaves_one_block_and_remove_takes_it_out(tmp_path: Path, cli: Any) -> None:
    path = config(tmp_path, 'schedule = "daily-02:00+6h"', tz=machine_zone_name())
    crontab = tmp_path / "crontab"
    crontab.write_text("MAILTO=ops@example.com\n15 4 * * * /usr/bin/other-job\n")
    for _ in range(2):
        done = cli("schedule", "install", "--config", path, "--crontab", crontab)
        assert done.returncode == 0, done.stderr
    text = crontab.read_text()
    assert text.count("# >>> backupkit schedule") == 1 and text.startswith("MAILTO=ops@example.com\n15 4 * * *")
    lines = [ln for ln in text.splitlines() if "-m backupkit" in ln]
    assert len(lines) == 3
    assert lines[0].startswith("0 2 * * * ") and f"full --reason scheduled --config {path} --set app" in lines[0]
    assert lines[2].startswith("30 2 * * * ") and "prune --yes" in lines[2]
    shown = cli("schedule", "show", "--config", path, "--crontab", crontab)
    assert "installed in" in shown.stdout and "0 8,14,20 * * *" in shown.stdout
    assert cli("schedule", "remove", "--config", path, "--crontab", crontab).returncode == 0
    assert crontab.read_text() == "MAILTO=ops@example.com\n15 4 * * * /usr/bin/other-job\n"


def test_schedule_install_as_systemd_units_with_the_time_zone(tmp_path: Path, cli: Any) -> None:
    path = config(tmp_path, 'schedule = [{kind = "full", cron = "0 2 * * 1-5"}, {kind = "incremental", every = "6h"}]')
    units = tmp_path / "units"
    units.mkdir()
    done = cli("schedule", "install", "--config", path, "--format", "systemd", "--unit-dir", units)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in units.iterdir()) == [
        "backupkit-app-full.service", "backupkit-app-full.timer",
        "backupkit-app-incremental.service", "backupkit-app-incremental.timer"]
    timer = (units / "backupkit-app-full.timer").read_text()
    assert "OnCalendar=Mon..Fri *-*-* 02:00:00 Europe/Berlin" in timer
    assert "OnCalendar=*-*-* 00/6:00:00 UTC" in (units / "backupkit-app-incremental.timer").read_text()
    assert "ExecStart=" in (units / "backupkit-app-full.service").read_text()
    if shutil.which("systemd-analyze"):  # systemd itself reads every OnCalendar
        for unit in units.glob("*.timer"):
            spec = next(ln for ln in unit.read_text().splitlines() if ln.startswith("OnCalendar="))
            check = subprocess.run(["systemd-analyze", "calendar", spec.partition("=")[2]],
                                   capture_output=True, text=True, check=False)
            assert check.returncode == 0, check.stderr
    odd = config(tmp_path, 'schedule = [{kind = "full", every = "7h"}]')
    cli.error_line(cli("schedule", "install", "--config", odd, "--crontab", tmp_path / "c2"), "no crontab or timer")


def test_a_crontab_for_another_zone_than_the_machines_is_refused_unless_cron_tz(tmp_path: Path, cli: Any) -> None:
    other = "Pacific/Chatham" if machine_zone_name() != "Pacific/Chatham" else "Asia/Kathmandu"
    path = config(tmp_path, 'schedule = "daily-02:00+6h"', tz=other)
    crontab = tmp_path / "crontab"
    crontab.write_text("15 4 * * * /usr/bin/other-job\n")
    line = cli.error_line(cli("schedule", "install", "--config", path, "--crontab", crontab), "time zone")
    assert other in line and "--cron-tz" in line and "--format systemd" in line
    assert crontab.read_text() == "15 4 * * * /usr/bin/other-job\n"  # nothing written
    done = cli("schedule", "install", "--config", path, "--crontab", crontab, "--cron-tz")
    assert done.returncode == 0, done.stderr
    block = crontab.read_text().split("# >>> backupkit schedule", 1)[1]
    assert f"\nCRON_TZ={other}\n" in block and block.index("CRON_TZ") < block.index("0 2 * * *")
    fast = config(tmp_path, 'schedule = [{kind = "incremental", every = "15min"}]', tz=other)
    assert cli("schedule", "install", "--config", fast, "--crontab", crontab).returncode == 0  # any zone


def test_zone_difference_finds_the_first_instant_two_zones_disagree() -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    from backupkit.install import zone_difference

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert zone_difference(ZoneInfo("Europe/Berlin"), ZoneInfo("Europe/Paris"), start) is None
    assert zone_difference(ZoneInfo("Etc/UTC"), dt.UTC, start) is None
    at, by = zone_difference(ZoneInfo("Europe/London"), dt.UTC, start) or (None, None)
    assert at is not None and at.month == 3 and by == dt.timedelta(hours=1)  # summer time begins
    at, by = zone_difference(ZoneInfo("Europe/Berlin"), dt.UTC, start) or (None, None)
    assert at == start and by == dt.timedelta(hours=1)


def test_schedule_show_warns_of_backups_further_apart_than_the_rpo_and_installs_drills(
    tmp_path: Path, cli: Any
) -> None:
    path = config(tmp_path, 'rpo = "6h"\nschedule = [{kind = "full", cron = "0 2 * * *"}, '
                            '{kind = "drill", cron = "0 4 1 * *"}]', tz=machine_zone_name())
    shown = cli("schedule", "show", "--config", path)
    assert shown.returncode == 0, shown.stderr
    assert "app/drill@0 4 1 * *: " in shown.stdout
    (warning,) = [ln for ln in shown.stdout.splitlines() if ln.startswith("warning: ")]
    assert warning.startswith("warning: set app: its scheduled backups leave 1 d between ")
    assert warning.endswith("longer than its RPO of 6 h; schedule backups more often or raise the rpo")
    data = json.loads(cli("schedule", "show", "--config", path, "--json").stdout)
    assert data["rpo_notices"] == [warning.removeprefix("warning: ")]
    crontab = tmp_path / "crontab"
    done = cli("schedule", "install", "--config", path, "--crontab", crontab, "--replicas")
    assert done.returncode == 0, done.stderr
    drill = next(ln for ln in crontab.read_text().splitlines() if ln.startswith("0 4 1 * * "))
    assert drill.endswith(f"-m backupkit drill --config {path} --set app")  # no --reason, no --slot
    fine = config(tmp_path, 'rpo = "6h"\nschedule = "daily-02:00+6h"')
    assert "warning" not in cli("schedule", "show", "--config", fine).stdout
