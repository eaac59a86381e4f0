"""Disaster recovery on a fresh machine, as docs/disaster-recovery.md walks it: a new HOME
and working directory holding only the configuration file and the key, the installed
``backupkit`` command, the S3 bucket (a real loopback endpoint), and new, empty
PostgreSQL and Redis servers. ``restore latest`` of every source brings the data back."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from backupkit.sources.redis.server import TempRedis
from backupkit.testing.postgres import Database

pytestmark = pytest.mark.integration

CONFIG = """\
timezone = "UTC"
key_file = "backupkit.key"

[sets.questboard]
sink = "s3://questboard-backups/prod-server"
encrypt = true
rpo = "6h"
rto = "1h"
sources = [
  {{type = "filesystem", name = "files", paths = ["{files}"]}},
  {{type = "postgres", name = "db", url = "{pg_url}"}},
  {{type = "redis", name = "cache", url = "{redis_url}"}},
]
"""


def _backupkit() -> str:
    found = Path(sys.executable).parent / "backupkit"  # the console script pip installed
    assert found.exists(), f"{found}: the CLI is not installed (pip install -e .)"
    return str(found)


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_backupkit(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _keys(server: TempRedis) -> dict[int, dict[bytes, Any]]:
    found = {}
    for db in (0, 2):
        with redis.Redis(port=server.port, db=db) as c:
            found[db] = {k: (c.type(k), c.dump(k)) for k in c.scan_iter()}
    return found


def test_a_fresh_machine_restores_everything_from_the_bucket_with_only_config_and_key(
        tmp_path: Path, s3: Any, pg: Database, redis_factory: Any) -> None:
    # -- the production machine: data, a configuration, a key, a backup into the bucket
    s3.create_bucket("questboard-backups")
    prod = tmp_path / "prod"
    files = prod / "srv" / "questboard" / "uploads"
    (files / "2026").mkdir(parents=True)
    for i in range(20):
        (files / "2026" / f"quest-{i}.png").write_bytes(os.urandom(1000 + i))
    with pg.connect() as conn:
        conn.execute("CREATE TABLE quests (id serial PRIMARY KEY, title text, reward numeric(12,2))")
        conn.execute("INSERT INTO quests (title, reward) SELECT 'quest ' || i, i * 10.5 FROM generate_series(1, 500) i")
        conn.execute("CREATE TABLE guilds (id int PRIMARY KEY, name text UNIQUE)")
        conn.execute("INSERT INTO guilds VALUES (1, 'red'), (2, 'blue')")
    live = redis_factory()
    for db in (0, 2):
        with redis.Redis(port=live.port, db=db) as c:
            c.mset({f"session:{db}:{i}": f"user-{i}" for i in range(300)})
            c.zadd("leaderboard", {"alice": 30, "bob": 20})
            c.set("expiring", "soon", ex=3600)
    config = CONFIG.format(files=files, pg_url=pg.url, redis_url=live.url)
    (prod / "backupkit.toml").write_text(config)
    base_env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **s3.env()}
    prod_env = {**base_env, "HOME": str(prod)}
    key = _run(["keys", "generate"], prod, prod_env)
    assert key.returncode == 0, key.stderr
    (prod / "backupkit.key").write_text(key.stdout)
    backup = _run(["backup"], prod, prod_env)
    assert backup.returncode == 0, backup.stderr
    expected_files, expected_keys = _digests(files), _keys(live)

    # -- the new machine: nothing but the configuration and the key, and empty servers
    fresh = tmp_path / "fresh"
    (fresh / "home").mkdir(parents=True)
    work = fresh / "work"
    work.mkdir()
    shutil.copy(prod / "backupkit.toml", work / "backupkit.toml")
    shutil.copy(prod / "backupkit.key", work / "backupkit.key")
    empty_pg = pg.sibling("questboard")  # a new database on a server the backup never saw
    empty_redis = redis_factory()
    env = {**base_env, "HOME": str(fresh / "home")}
    assert sorted(p.name for p in work.iterdir()) == ["backupkit.key", "backupkit.toml"]

    listed = _run(["list"], work, env)
    assert listed.returncode == 0 and "questboard" in listed.stdout, listed.stderr
    verified = _run(["verify", "latest"], work, env)
    assert verified.returncode == 0, verified.stderr
    restored = _run(["restore", "latest", "--to", f"files={fresh / 'srv'}", "--to", f"db={empty_pg.url}",
                     "--create", "--to", f"cache={empty_redis.url}"], work, env)
    assert restored.returncode == 0, restored.stdout + restored.stderr

    # -- check: every file, every row, every key
    assert _digests(fresh / "srv" / "uploads") == expected_files
    with empty_pg.connect() as conn:
        assert conn.execute("SELECT count(*), sum(reward) FROM quests").fetchone() == (500, 1315125)
        assert conn.execute("SELECT name FROM guilds ORDER BY id").fetchall() == [("red",), ("blue",)]
    assert _keys(empty_redis) == expected_keys
    with redis.Redis(port=empty_redis.port) as c:
        assert 3000 < c.ttl("expiring") <= 3600
    assert not (fresh / "home").exists() or list((fresh / "home").rglob("*")) == []  # nothing needed there
