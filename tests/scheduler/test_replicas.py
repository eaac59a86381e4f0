"""Three replicas (real processes) sharing one schedule make one backup per slot."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import backupkit
from backupkit.claims import Claims, slot_key
from backupkit.errors import ConfigError
from backupkit.testing.fakes import MemorySink, MemoryStore

pytestmark = pytest.mark.integration

DRIVER = Path(__file__).with_name("replica_driver.py")
SLOTS = [(dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=i)).isoformat() for i in range(20)]


def write_config(tmp_path: Path, sink: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.txt").write_text("alpha")
    path = tmp_path / "backupkit.toml"
    path.write_text(f'[sets.app]\nsink = "{sink}"\n[[sets.app.sources]]\ntype = "filesystem"\npaths = ["{src}"]\n')
    return path


def replicas(path: Path, slots: list[str], n: int = 3, lease: float = 30.0) -> list[str]:
    procs = []
    for i in range(n):
        order = slots[:]
        random.Random(i).shuffle(order)
        procs.append(subprocess.Popen([sys.executable, str(DRIVER), str(path), str(lease), "run", *order],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=dict(os.environ)))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=600))
    finally:
        for proc in procs:  # a failure above must not leave the others' pipes to the next test
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    won: list[str] = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        won += json.loads(out.splitlines()[-1])
    return won


def reasons(engine: backupkit.Engine) -> list[str]:
    return sorted(m.reason for m in engine.catalog())


def test_three_processes_make_exactly_one_backup_per_slot_on_a_local_disk(tmp_path: Path) -> None:
    path = write_config(tmp_path, str(tmp_path / "sink"))
    won = replicas(path, SLOTS)
    engine = backupkit.Engine.from_config(path, env={})
    assert len(won) == 20 and len(set(won)) == 20
    assert reasons(engine) == sorted(f"slot {s}" for s in SLOTS)
    for text in SLOTS:
        base = slot_key("app", "full", dt.datetime.fromisoformat(text))
        assert (tmp_path / "sink" / base / "done").is_file()


def test_three_processes_make_exactly_one_backup_per_slot_in_s3(tmp_path: Path, s3: Any) -> None:
    s3.create_bucket("replicas")
    path = write_config(tmp_path, "s3://replicas/app")
    won = replicas(path, SLOTS)
    engine = backupkit.Engine.from_config(path)
    assert len(won) == 20 and reasons(engine) == sorted(f"slot {s}" for s in SLOTS)


def test_a_replica_killed_while_holding_a_claim_loses_it_after_the_lease(tmp_path: Path) -> None:
    path = write_config(tmp_path, str(tmp_path / "sink"))
    slot = SLOTS[0]
    holder = subprocess.Popen([sys.executable, str(DRIVER), str(path), "1.0", "hang", slot],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "claimed"
        early = replicas(path, [slot], n=1, lease=1.0)  # the claim is alive: skipped
        assert early == []
        holder.send_signal(signal.SIGKILL)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate(timeout=30)
    time.sleep(1.6)  # the lease (1 s) runs out by the store's clock
    late = replicas(path, [slot], n=2, lease=1.0)
    assert len(late) == 1
    base = tmp_path / "sink" / slot_key("app", "full", dt.datetime.fromisoformat(slot))
    assert (base / "g1").is_file() and (base / "done").is_file()
    assert replicas(path, [slot], n=1, lease=1.0) == []  # done: never again
    assert len(list(backupkit.Engine.from_config(path, env={}).catalog())) == 1


def test_a_store_that_ignores_conditional_writes_is_refused() -> None:
    store = MemoryStore()
    claims = Claims(lambda set_name: MemorySink(store.name))
    with pytest.raises(ConfigError, match="does not honour create-if-absent writes"):
        claims.check("app")


def test_cron_entries_on_several_hosts_make_one_backup_with_slot(tmp_path: Path, cli: Any) -> None:
    path = write_config(tmp_path, str(tmp_path / "sink"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "AWS_"))}
    procs = [subprocess.Popen([sys.executable, "-m", "backupkit", "full", "--config", str(path), "--slot",
                               "2026-12-03T02:00:00Z", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(3)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(1 for o in outs if "id" in o) == 1 and sum(1 for o in outs if o.get("ran") is False) == 2
    cli.error_line(cli("full", "--config", path, "--slot", "tomorrow"), "--slot", "UTC instant")


def test_installed_replica_crontab_lines_claim_their_slot_when_cron_runs_them(tmp_path: Path, cli: Any) -> None:
    path = write_config(tmp_path, str(tmp_path / "sink"))
    schedule = 'schedule = [{kind = "full", cron = "0 2 * * *"}]\n'
    path.write_text(path.read_text().replace("[sets.app]\n", "[sets.app]\n" + schedule))
    crontab = tmp_path / "crontab"
    assert cli("schedule", "install", "--config", path, "--crontab", crontab, "--replicas",
               "--cron-tz").returncode == 0  # whatever zone this machine keeps
    (line,) = [ln for ln in crontab.read_text().splitlines() if "-m backupkit" in ln]
    command = line.split(" ", 5)[5].replace("\\%", "%")  # what cron hands to sh
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKUP_", "AWS_"))}
    runs = [subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, check=False)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    if "nothing to do" not in runs[1].stdout:  # the two runs fell into different minutes
        pytest.skip("the minute changed between the two runs")
    assert len(list(backupkit.Engine.from_config(path, env={}).catalog())) == 1
