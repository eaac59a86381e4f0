"""``backupkit status``: health, RPO, RTO and storage per set, and an exit code that
follows the worst health (0 ok, 11 at risk, 12 failing), so that a monitor can call it.

Backups and drill records are made in the past by engines with a controlled clock; the
command reads them with the real one."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import backupkit
from backupkit.core.drill import ArtifactDrill, DrillRecord
from backupkit.engine import drillrecords

CONFIG = """\
[sets.app]
sink = "{root}/sink"
rpo = "6h"
rto = "1h"
sources = [{type = "filesystem", paths = ["{root}/src"]}]

[sets.plain]
sink = "{root}/sink"
sources = [{type = "filesystem", paths = ["{root}/src"]}]
"""


def setup(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("alpha" * 100)
    config = tmp_path / "backupkit.toml"
    config.write_text(CONFIG.replace("{root}", str(tmp_path)))
    return config


def engine_at(config: Path, ago: dt.timedelta) -> backupkit.Engine:
    at = dt.datetime.now(dt.UTC) - ago
    return backupkit.Engine.from_config(config, env={}, clock=lambda: at)


def store_drill(engine: backupkit.Engine, backup_id: str, seconds: float, ok: bool, n: int) -> DrillRecord:
    started = engine.clock()
    artifact = ArtifactDrill("files", "filesystem", seconds, 500, ok, target="a temporary directory",
                             error=None if ok else "files/a.txt: checksum differs from the manifest")
    record = DrillRecord(f"{started:%Y%m%dT%H%M%SZ}-drill{n}", "app", backup_id, started, seconds, ok,
                         (artifact,))
    drillrecords.store(engine.parts.sinks_of("app")[0], record)
    return record


def status(cli: Any, *args: str) -> tuple[int, dict[str, Any], str]:
    done = cli("status", "--set", "app", "--json", *args)
    text = cli("status", "--set", "app", *args)
    assert text.returncode == done.returncode and "Traceback" not in done.stderr + text.stderr
    return done.returncode, json.loads(done.stdout), text.stdout


def test_the_exit_code_follows_the_health_from_no_backup_to_failing_drills(tmp_path: Path, cli: Any) -> None:
    config = setup(tmp_path)
    code, data, text = status(cli)
    assert (code, data["health"]) == (12, "failing")
    assert "set app: failing\n  - no backup yet\n" in text

    old = engine_at(config, dt.timedelta(hours=7)).backup("app")  # older than the RPO of 6 h
    code, data, text = status(cli)
    assert code == 11 and data["sets"]["app"]["health"] == "at risk"
    assert data["sets"]["app"]["reasons"][0].startswith("the newest backup is 7 h old, older than the RPO of 6 h")
    assert "no restore drill yet" in data["sets"]["app"]["reasons"][1]

    recent = engine_at(config, dt.timedelta(hours=1))
    fresh = recent.backup("app")
    store_drill(recent, fresh.id, 600, True, 1)
    code, data, text = status(cli)
    app = data["sets"]["app"]
    assert (code, app["health"], app["reasons"]) == (0, "ok", [])
    assert app["latest_id"] == fresh.id and app["rpo_seconds"] == 6 * 3600 and app["rto_seconds"] == 3600
    assert app["last_drill"]["backup_id"] == fresh.id and app["last_drill"]["seconds"] == 600
    assert app["last_drill"]["ok"] is True
    assert app["storage"]["stored_bytes"] == old.stored_size + fresh.stored_size
    assert app["storage"]["added_bytes_per_day"] == app["storage"]["stored_bytes"] / 7
    (disk,) = app["storage"]["disks"]
    assert disk["location"] == str(tmp_path / "sink") and disk["free_bytes"] > 0
    assert "set app: ok\n" in text and "; RPO 6 h)" in text and ": ok in 10 min (RTO 1 h)" in text

    store_drill(engine_at(config, dt.timedelta(minutes=30)), fresh.id, 3900, True, 2)
    code, data, _ = status(cli)
    assert code == 11 and data["sets"]["app"]["reasons"] == [
        "the last drill took 1 h 5 min, longer than the RTO of 1 h"]

    store_drill(engine_at(config, dt.timedelta(minutes=10)), fresh.id, 60, False, 3)
    code, data, text = status(cli)
    assert code == 12 and data["health"] == "failing"
    assert "checksum differs" in data["sets"]["app"]["reasons"][0] and "FAILED in 1 min" in text


def test_without_objectives_a_set_reports_only_what_applies_and_all_sets_give_the_worst(
    tmp_path: Path, cli: Any
) -> None:
    config = setup(tmp_path)
    engine_at(config, dt.timedelta(days=400)).backup("plain")  # no RPO: any age is fine
    done = cli("status", "--set", "plain", "--json")
    plain = json.loads(done.stdout)["sets"]["plain"]
    assert (done.returncode, plain["health"], plain["last_drill"], plain["rpo_seconds"]) == (0, "ok", None, None)
    assert "last drill" not in cli("status", "--set", "plain").stdout
    everything = cli("status", "--json")  # app has no backup: the report is failing
    assert everything.returncode == 12 and json.loads(everything.stdout)["health"] == "failing"
