"""Restore drills of a set with files, PostgreSQL and Redis on real servers: a drill passes
and records its times; a tampered backup fails with the artifact named; nothing is left
behind (scratch databases, temporary servers, directories), also when the drill process
is killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import backupkit
from backupkit.core.drill import DrillRecord
from backupkit.errors import DrillFailed
from backupkit.sources.redis.server import TempRedis
from backupkit.testing.postgres import Database, admin

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch_base(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp dir for the drill's scratch (and the postgres user may enter it), checked
    empty by the tests."""
    base = Path(tempfile.mkdtemp(prefix="drill-test-", dir="/tmp"))
    base.chmod(0o755)
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _fill(pg: Database, server: TempRedis, src: Path) -> None:
    with pg.connect() as conn:
        conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, total numeric, note text)")
        conn.execute("INSERT INTO orders (total, note) SELECT i * 1.5, repeat('n', i % 50) "
                     "FROM generate_series(1, 2000) i")
        conn.execute("CREATE TABLE users (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 30) i")
    client = redis.Redis(port=server.port)
    for db in (0, 3):
        c = redis.Redis(port=server.port, db=db)
        c.mset({f"k{db}:{i}": f"v{i}" for i in range(500)})
        c.hset("h", mapping={"a": "1", "b": "2"})
    client.close()
    (src / "media").mkdir(parents=True)
    (src / "media" / "logo.png").write_bytes(os.urandom(5000))


def _config(pg: Database, server: TempRedis, tmp_path: Path, **drill: Any) -> dict[str, Any]:
    return {"sets": {"app": {
        "sources": [{"type": "filesystem", "name": "files", "paths": [str(tmp_path / "src")]},
                    {"type": "postgres", "name": "db", "url": pg.url},
                    {"type": "redis", "name": "cache", "url": server.url}],
        "sink": str(tmp_path / "sink"), "drill": drill}}}


def _drill_databases(pg: Database) -> list[str]:
    with admin(pg.cluster) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'backupkit_drill_%'")]


def _port_open(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_drill_of_files_postgres_and_redis_passes_and_records_its_times(
        pg: Database, redis_server: TempRedis, tmp_path: Path, scratch_base: Path) -> None:
    _fill(pg, redis_server, tmp_path / "src")
    engine = backupkit.Engine.from_config(_config(
        pg, redis_server, tmp_path, postgres_url=pg.cluster.url(),
        sql=["SELECT count(*) = 2000 FROM orders", "SELECT max(total) = 3000 FROM orders"]))
    manifest = engine.backup()
    record = engine.drill()
    assert record.ok and record.backup_id == manifest.id
    by_name = {a.name: a for a in record.artifacts}
    assert set(by_name) == {"files", "db", "cache"}
    assert all(a.ok and a.seconds > 0 and a.bytes > 0 for a in record.artifacts)
    assert by_name["db"].checks["row_counts_match"] is True and by_name["db"].checks["tables_checked"] == 2
    assert by_name["db"].target.startswith("postgresql://") and "backupkit_drill_" in by_name["db"].target
    assert by_name["cache"].checks["key_counts_match"] is True
    assert by_name["cache"].checks["keys"] == {"0": 501, "3": 501}
    assert by_name["files"].checks["files_checked"] == 1
    assert [(c.name, c.ok) for c in record.checks] == [
        ("sql on db: SELECT count(*) = 2000 FROM orders", True),
        ("sql on db: SELECT max(total) = 3000 FROM orders", True)]
    assert record.seconds >= max(a.seconds for a in record.artifacts)
    assert engine.drills() == [record]
    assert _drill_databases(pg) == [] and not _port_open(by_name["cache"].target)
    assert list(scratch_base.iterdir()) == []
    # the CLI lists it, from the sink alone
    listed = subprocess.run([sys.executable, "-m", "backupkit", "drills", "--json", "--sink", str(tmp_path / "sink")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr
    assert [d["drill_id"] for d in json.loads(listed.stdout)] == [record.drill_id]


def test_a_tampered_backup_fails_its_drill_naming_the_artifact_and_leaves_nothing(
        pg: Database, redis_server: TempRedis, tmp_path: Path, scratch_base: Path) -> None:
    _fill(pg, redis_server, tmp_path / "src")
    config = _config(pg, redis_server, tmp_path)  # its own temporary cluster, where the roles go too
    config["sets"]["app"]["sources"][1]["globals"] = True
    engine = backupkit.Engine.from_config(config)
    manifest = engine.backup()
    stored = tmp_path / "sink" / manifest.artifact("cache").key
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x55
    stored.write_bytes(bytes(data))
    with pytest.raises(DrillFailed, match=r"artifact cache: ") as caught:
        engine.drill()
    record = caught.value.record
    assert isinstance(record, DrillRecord) and not record.ok
    by_name = {a.name: a for a in record.artifacts}
    assert {n: a.ok for n, a in by_name.items()} == {"files": True, "db": True, "db.globals": True,
                                                       "cache": False}
    assert by_name["db.globals"].checks["part"] == "globals"
    assert manifest.artifact("cache").key in str(by_name["cache"].error)
    assert engine.drills() == [record]
    assert list(scratch_base.iterdir()) == []  # the temporary cluster and redis-server with it
    assert not _port_open(by_name["cache"].target)


def test_a_killed_drill_leaves_no_scratch_database_server_or_directory(
        pg: Database, redis_server: TempRedis, tmp_path: Path, scratch_base: Path) -> None:
    _fill(pg, redis_server, tmp_path / "src")
    marker = tmp_path / "restored"
    config = _config(pg, redis_server, tmp_path, postgres_url=pg.cluster.url(),
                     command=["sh", "-c", f'echo "$BACKUPKIT_DRILL_CACHE" > {marker}; exec sleep 600'])
    (tmp_path / "backupkit.toml").write_text(_toml(config))
    backupkit.Engine.from_config(config).backup()
    env = {**os.environ, "TMPDIR": str(scratch_base)}
    proc = subprocess.Popen([sys.executable, "-m", "backupkit", "drill", "--config", str(tmp_path / "backupkit.toml")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text().strip()) and proc.poll() is None:
            assert time.monotonic() < deadline, "the drill did not reach its checks"
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert _drill_databases(pg) and any(scratch_base.iterdir())  # mid-drill: scratch targets exist
        redis_url = marker.read_text().strip()
        assert _port_open(redis_url)
        proc.kill()  # SIGKILL: no cleanup of its own
        proc.wait(30)
        deadline = time.monotonic() + 60
        while (_drill_databases(pg) or any(scratch_base.iterdir()) or _port_open(redis_url)) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _drill_databases(pg) == [] and list(scratch_base.iterdir()) == [] and not _port_open(redis_url)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the check's `sleep`, which nobody waits for
        except (ProcessLookupError, PermissionError):
            pass
        if proc.stderr:
            proc.stderr.close()


def _toml(config: dict[str, Any]) -> str:
    body = config["sets"]["app"]
    lines = ["[sets.app]", f"sink = {json.dumps(body['sink'])}", "sources = ["]
    for s in body["sources"]:
        lines.append("  {" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in s.items()) + "},")
    lines += ["]", "[sets.app.drill]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in body["drill"].items()]
    return "\n".join(lines) + "\n"
