"""The redis source against real redis-server processes on loopback ports."""

from __future__ import annotations

import contextlib
import io
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

import backupkit
from backupkit.errors import RestoreError, SourceError
from backupkit.plugin import RestoreContext, Source
from backupkit.sources.redis import RedisSource
from backupkit.sources.redis.connection import RedisConn
from backupkit.sources.redis.rdb import RdbError, max_rdb_version, walk
from backupkit.sources.redis.restore import restore_into_server
from backupkit.sources.redis.server import TempRedis
from backupkit.testing.source_suite import SourceConformance

pytestmark = pytest.mark.integration

Factory = Callable[..., TempRedis]


def populate(port: int, *, password: str | None = None, username: str | None = None, keys: int = 200) -> None:
    """Every common type, TTLs, and two databases."""
    c = redis.Redis(port=port, password=password, username=username)
    c.mset({f"str:{i}": f"value {i}" * (i % 5 + 1) for i in range(keys)})
    c.set("big", b"x" * (2 << 20) + bytes(range(256)))  # over one chunk; compressible (LZF)
    c.set("counter", 42)
    c.hset("hash", mapping={f"f{i}": f"v{i}" for i in range(50)})
    c.hset("bighash", mapping={f"f{i}": "v" * 100 for i in range(1000)})  # a real hash, not listpack
    c.rpush("list", *[f"item {i}" for i in range(300)])
    c.sadd("set", *[f"m{i}" for i in range(40)])
    c.sadd("intset", *range(100))
    c.zadd("zset", {f"z{i}": i / 3 for i in range(200)})
    for i in range(30):
        c.xadd("stream", {"n": str(i)})
    c.xgroup_create("stream", "workers", id="0")
    c.xreadgroup("workers", "w1", {"stream": ">"}, count=5)
    c.set("ttl:short", "soon", ex=3600)
    c.hset("ttl:hash", "a", "b")
    c.pexpire("ttl:hash", 7_200_000)
    other = redis.Redis(port=port, db=3, password=password, username=username)
    other.set("other-db", "three")
    other.lpush("other-list", "a", "b")


def read_value(r: redis.Redis, key: bytes, kind: str) -> Any:
    if kind == "string":
        return r.get(key)
    if kind == "hash":
        return sorted(r.hgetall(key).items())
    if kind == "list":
        return r.lrange(key, 0, -1)
    if kind == "set":
        return sorted(r.smembers(key))
    if kind == "zset":
        return r.zrange(key, 0, -1, withscores=True)
    return [(i, sorted(f.items())) for i, f in r.xrange(key)]


def snapshot(port: int, password: str | None = None) -> dict[str, Any] | None:
    """Every key of every database: type, value, and whether it has a TTL."""
    c = redis.Redis(port=port, password=password)
    dbs = [int(k[2:]) for k in c.info("keyspace")]
    if not dbs:
        return None
    out: dict[str, Any] = {}
    for db in dbs:
        r = redis.Redis(port=port, db=db, password=password)
        for key in sorted(r.scan_iter(count=1000)):
            kind = r.type(key).decode()
            value = read_value(r, key, kind)
            if kind == "stream":
                value = (value, [(g["name"], g["pending"]) for g in r.xinfo_groups(key)])
            out[f"{db}/{key.decode()}"] = (kind, value, r.pttl(key) > 0)
    return out


def engine_over(sink: Path, url: str, **params: Any) -> backupkit.Engine:
    return backupkit.Engine.from_config(
        {"sets": {"app": {"sources": [{"type": "redis", "name": "cache", "url": url, **params}],
                          "sink": str(sink)}}}, env={})


def manifests(sink: Path) -> list[Path]:
    return sorted(sink.rglob("*.manifest.json"))


class TestRedisSource(SourceConformance):
    @pytest.fixture
    def params(self, redis_server: TempRedis) -> dict[str, Any]:
        populate(redis_server.port)
        return {"type": "redis", "url": redis_server.url}

    @pytest.fixture
    def target(self, redis_factory: Factory) -> str:
        return redis_factory().url

    def expected(self, source: Source) -> Any:
        assert isinstance(source, RedisSource)
        return snapshot(source.conn().port)

    def restored(self, target: str) -> Any:
        return snapshot(RedisConn.resolve(target).port)


class TestRedisKeysMode(TestRedisSource):
    @pytest.fixture
    def params(self, redis_server: TempRedis) -> dict[str, Any]:
        populate(redis_server.port)
        return {"type": "redis", "url": redis_server.url, "mode": "keys"}


# -- the artifact is a plain RDB file --------------------------------------------------------
@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd program")
def test_a_stock_redis_server_loads_the_artifact_after_zstd_d(redis_server: TempRedis, tmp_path: Path) -> None:
    populate(redis_server.port)
    manifest = engine_over(tmp_path / "sink", redis_server.url).backup()
    artifact = manifest.artifact("cache")
    assert artifact.key.endswith(".cache.rdb.zst")
    facts = artifact.extra
    assert facts["rdb_version"] == 10 and facts["redis_version"].startswith("7.")
    assert facts["keys"] == {"0": 211, "3": 2} and facts["expires"] == {"0": 2, "3": 0}
    assert facts["keyspace_at_start"] == {"0": 211, "3": 2}

    rdb_file = tmp_path / "dump.rdb"
    subprocess.run(["zstd", "-d", "-q", str(tmp_path / "sink" / artifact.key), "-o", str(rdb_file)], check=True)
    assert rdb_file.read_bytes().startswith(b"REDIS0010")
    if shutil.which("redis-check-rdb"):
        check = subprocess.run(["redis-check-rdb", str(rdb_file)], capture_output=True, text=True, check=False)
        assert check.returncode == 0 and "RDB looks OK" in check.stdout, check.stdout
    with TempRedis().start(rdb_file) as loaded:
        assert snapshot(loaded.port) == snapshot(redis_server.port)


def test_restore_to_a_directory_writes_dump_rdb_and_keeps_an_existing_one(
    redis_server: TempRedis, tmp_path: Path
) -> None:
    populate(redis_server.port)
    engine = engine_over(tmp_path / "sink", redis_server.url)
    manifest = engine.backup()
    out = tmp_path / "out"
    result = engine.restore(manifest.id, to=out)
    assert result.checks["cache"]["keys"] == {"0": 211, "3": 2}
    with TempRedis().start(_copied(out / "dump.rdb", tmp_path)) as loaded:
        assert snapshot(loaded.port) == snapshot(redis_server.port)
    before = (out / "dump.rdb").read_bytes()
    with pytest.raises(RestoreError, match="already exists.*--overwrite"):
        engine.restore(manifest.id, to=out)
    assert (out / "dump.rdb").read_bytes() == before


def _copied(path: Path, tmp_path: Path) -> Path:
    copy = tmp_path / f"copy-{time.monotonic_ns()}.rdb"
    shutil.copy(path, copy)
    return copy


def test_keys_mode_keeps_the_time_each_key_had_left(redis_server: TempRedis, redis_factory: Factory,
                                                    tmp_path: Path) -> None:
    populate(redis_server.port)
    engine = engine_over(tmp_path / "sink", redis_server.url, mode="keys")
    manifest = engine.backup()
    assert manifest.artifact("cache").key.endswith(".cache.keys.zst")
    time.sleep(1.0)
    target = redis_factory()
    engine.restore(manifest.id, to=target.url)
    source, restored = redis.Redis(port=redis_server.port), redis.Redis(port=target.port)
    for key in ("ttl:short", "ttl:hash"):
        assert abs(restored.pttl(key) - source.pttl(key)) < 1000, key


def test_writes_during_a_backup_do_not_break_it_and_the_snapshot_is_one_point_in_time(
    redis_server: TempRedis, redis_factory: Factory, tmp_path: Path
) -> None:
    c = redis.Redis(port=redis_server.port)
    c.execute_command("DEBUG", "POPULATE", "200000", "k", "200")
    stop, writes = threading.Event(), [0]

    def writer() -> None:
        w = redis.Redis(port=redis_server.port)
        while not stop.is_set():
            w.set(f"late:{writes[0]}", "x")
            writes[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while writes[0] < 50:
            time.sleep(0.005)
        engine = engine_over(tmp_path / "sink", redis_server.url)
        manifest = engine.backup()
    finally:
        stop.set()
        thread.join()
    recorded = manifest.artifact("cache").extra["keys"]["0"]
    assert 200_050 <= recorded < 200_000 + writes[0] + 1
    target = redis_factory()
    result = engine.restore(manifest.id, to=target.url)
    assert result.checks["cache"]["keys"] == {"0": recorded}
    assert redis.Redis(port=target.port).dbsize() == recorded


# -- logins ----------------------------------------------------------------------------------
def test_an_acl_user_with_a_password_backs_up_and_the_password_goes_nowhere(
    redis_factory: Factory, tmp_path: Path, cli: Any
) -> None:
    server = redis_factory(password="admin-secret-1")
    admin = redis.Redis(port=server.port, password="admin-secret-1")
    admin.acl_setuser("backup", enabled=True, passwords=["+backup-secret-2"], keys=["*"], channels=["*"],
                      commands=["+@all"])
    populate(server.port, password="admin-secret-1")
    config = tmp_path / "backupkit.toml"
    url = f"redis://backup:backup-secret-2@127.0.0.1:{server.port}/0"
    config.write_text(f'[sets.app]\nsink = "{tmp_path / "sink"}"\n'
                      f'[[sets.app.sources]]\ntype = "redis"\nname = "cache"\nurl = "{url}"\n')
    result = cli("backup", "--config", config, "--json")
    assert result.returncode == 0, result.stderr
    for path in (tmp_path / "sink").rglob("*"):
        if path.is_file():
            assert b"backup-secret-2" not in path.read_bytes(), path
    assert "backup-secret-2" not in result.stdout + result.stderr
    target = redis_factory()
    restored = cli("restore", "--config", config, "latest", "--to", target.url)
    assert restored.returncode == 0, restored.stderr
    assert "cache: 213 keys, key counts match the backup" in restored.stdout
    assert snapshot(target.port) == snapshot(server.port, password="admin-secret-1")


def _config(tmp_path: Path, url: str, **params: Any) -> Path:
    config = tmp_path / "backupkit.toml"
    extra = "".join(f'{k} = "{v}"\n' for k, v in params.items())
    config.write_text(f'[sets.app]\nsink = "{tmp_path / "sink"}"\n'
                      f'[[sets.app.sources]]\ntype = "redis"\nname = "cache"\nurl = "{url}"\n{extra}')
    return config


@pytest.mark.parametrize("case", ["unreachable", "wrong password", "no password", "sync refused"])
def test_bad_logins_and_refusals_are_one_line_errors_and_nothing_is_stored(
    redis_factory: Factory, tmp_path: Path, cli: Any, case: str
) -> None:
    from backupkit.plugin.scratch import free_port

    server = redis_factory(password="right-secret")
    admin = redis.Redis(port=server.port, password="right-secret")
    admin.set("k", "v")
    admin.acl_setuser("nosync", enabled=True, passwords=["+nosync-secret"], keys=["*"],
                      commands=["+@all", "-sync", "-psync"])
    url, want = {
        "unreachable": (f"redis://:any-secret@127.0.0.1:{free_port()}", "cannot connect to Redis at 127.0.0.1"),
        "wrong password": (f"redis://:wrong-secret@127.0.0.1:{server.port}", "refused the login"),
        "no password": (f"redis://127.0.0.1:{server.port}", "requires a password"),
        "sync refused": (f"redis://nosync:nosync-secret@127.0.0.1:{server.port}", 'refused SYNC.*mode = "keys"'),
    }[case]
    result = cli("backup", "--config", _config(tmp_path, url))
    line = cli.error_line(result)
    import re

    assert re.search(want, line), line
    assert "secret" not in line
    assert manifests(tmp_path / "sink") == []
    if case == "sync refused":  # and mode keys is the way out
        keys = cli("backup", "--config", _config(tmp_path, url, mode="keys"))
        assert keys.returncode == 0, keys.stderr


def test_a_connection_dropped_mid_snapshot_stores_nothing(redis_server: TempRedis, tmp_path: Path) -> None:
    redis.Redis(port=redis_server.port).execute_command("DEBUG", "POPULATE", "100000", "k", "100")
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(1)

    def relay() -> None:  # passes everything through, and hangs up 500 kB into the snapshot
        client, _ = proxy.accept()
        upstream = socket.create_connection(("127.0.0.1", redis_server.port))

        def up() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    upstream.sendall(data)

        threading.Thread(target=up, daemon=True).start()
        sent = 0
        while sent < 500_000:
            data = upstream.recv(65536)
            if not data:
                break
            client.sendall(data)
            sent += len(data)
        for sock in (client, upstream):  # shutdown: a recv blocked in the other thread ends too
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    port = proxy.getsockname()[1]
    # INFO goes straight to the server; the snapshot through the proxy
    engine = engine_over(tmp_path / "sink", redis_server.url)
    source = RedisSource(url=f"redis://127.0.0.1:{port}")
    with pytest.raises(SourceError, match="broke during the snapshot"):
        from backupkit.sources.redis.replication import fetch_rdb

        fetch_rdb(source.conn(), lambda data: None)
    thread.join(timeout=10)
    proxy.close()
    assert manifests(tmp_path / "sink") == []
    del engine


def test_a_server_still_loading_its_dataset_says_so(redis_server: TempRedis, tmp_path: Path) -> None:
    c = redis.Redis(port=redis_server.port)
    c.execute_command("DEBUG", "POPULATE", "1000", "k", "10")
    c.config_set("key-load-delay", "3000")  # 3 ms per key while loading: about 3 s,
    c.config_set("loading-process-events-interval-bytes", "1024")  # answering clients meanwhile

    def reload() -> None:
        with contextlib.suppress(redis.exceptions.RedisError):
            redis.Redis(port=redis_server.port, socket_timeout=60).execute_command("DEBUG", "RELOAD")

    thread = threading.Thread(target=reload)
    thread.start()
    try:
        probe = redis.Redis(port=redis_server.port, socket_timeout=60)
        deadline = time.monotonic() + 5
        while not int(probe.info("persistence")["loading"]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert int(probe.info("persistence")["loading"]) == 1
        engine = engine_over(tmp_path / "sink", redis_server.url)
        with pytest.raises(SourceError, match="is loading its dataset into memory; try again"):
            engine.backup()
    finally:
        thread.join(timeout=30)
    assert manifests(tmp_path / "sink") == []


# -- restore's refusals -------------------------------------------------------------------
def test_a_target_holding_keys_is_refused_without_flush(
    redis_server: TempRedis, redis_factory: Factory, tmp_path: Path, cli: Any
) -> None:
    populate(redis_server.port)
    config = _config(tmp_path, redis_server.url)
    assert cli("backup", "--config", config).returncode == 0
    target = redis_factory()
    redis.Redis(port=target.port).set("precious", "1")
    refused = cli("restore", "--config", config, "latest", "--to", target.url)
    cli.error_line(refused, "holds keys", "--flush")
    assert redis.Redis(port=target.port).get("precious") == b"1"
    flushed = cli("restore", "--config", config, "latest", "--to", target.url, "--flush")
    assert flushed.returncode == 0, flushed.stderr
    assert snapshot(target.port) == snapshot(redis_server.port)


def test_an_rdb_newer_than_the_target_loads_is_refused_naming_both_versions(
    redis_server: TempRedis, redis_factory: Factory
) -> None:
    target = redis_factory()
    ctx = RestoreContext(artifact="cache", target=target.url, facts={"rdb_version": 12, "mode": "rdb",
                                                                      "keys": {"0": 1}})
    with pytest.raises(RestoreError, match=r"RDB version 12; Redis 7\.0\.\d+ at 127\.0\.0\.1:\d+ loads RDB 10"):
        restore_into_server(io.BytesIO(b"REDIS0012..."), RedisConn.resolve(target.url), ctx, mode="rdb")
    assert max_rdb_version("7.2.4") == 11 and max_rdb_version("6.2.1") == 9 and max_rdb_version("99.0") is None


# -- verify and the RDB reader ------------------------------------------------------------
def test_verify_walks_the_rdb_and_a_truncated_one_is_refused(redis_server: TempRedis, tmp_path: Path) -> None:
    populate(redis_server.port)
    engine = engine_over(tmp_path / "sink", redis_server.url, )
    manifest = engine.backup()
    assert engine.verify(manifest.id).ok
    out = io.BytesIO()
    from backupkit.sources.redis.replication import fetch_rdb

    fetch_rdb(RedisConn(port=redis_server.port), out.write)
    raw = out.getvalue()
    summary = walk(io.BytesIO(raw).read)
    assert summary.keys == {0: 211, 3: 2} and summary.announced == {0: 211, 3: 2}
    with pytest.raises(RdbError, match="ends early"):
        walk(io.BytesIO(raw[: len(raw) // 2]).read)
    ctx = RestoreContext(artifact="cache", target=None, facts={"mode": "rdb", "keys": {"0": 999}})
    with pytest.raises(RestoreError, match="its manifest says"):
        RedisSource().check(io.BytesIO(raw), ctx)


def test_the_url_gives_tls_user_password_and_database() -> None:
    conn = RedisConn.resolve("rediss://alice:p%40ss@cache.internal:6380/4")
    assert (conn.host, conn.port, conn.db, conn.username, conn.password, conn.tls) == (
        "cache.internal", 6380, 4, "alice", "p@ss", True)
    assert "p@ss" not in repr(conn) and conn.where() == "alice@cache.internal:6380"
    with pytest.raises(backupkit.errors.ConfigError, match="must start with redis://"):
        RedisConn.resolve("http://x")


def test_an_rdb_of_the_wrong_size_never_completes_the_sync_and_the_target_keeps_its_data(
    redis_server: TempRedis, redis_factory: Factory
) -> None:
    populate(redis_server.port)
    out = io.BytesIO()
    from backupkit.sources.redis.replication import fetch_rdb

    size = fetch_rdb(RedisConn(port=redis_server.port), out.write)
    target = redis_factory()
    redis.Redis(port=target.port).set("precious", "1")
    ctx = RestoreContext(artifact="cache", target=target.url, options={"flush": True},
                         facts={"rdb_version": 10, "rdb_bytes": size + 1, "keys": {"0": 211, "3": 2}})
    with pytest.raises(RdbError, match=f"is {size} bytes and should be {size + 1}"):
        restore_into_server(io.BytesIO(out.getvalue()), RedisConn.resolve(target.url), ctx, mode="rdb")
    client = redis.Redis(port=target.port)
    assert client.get("precious") == b"1" and client.dbsize() == 1
    assert client.info("replication")["role"] == "master"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make certificates")
def test_a_tls_server_is_backed_up_over_rediss_with_its_ca(tmp_path: Path) -> None:
    from backupkit.plugin.scratch import free_port

    def run(*args: str) -> None:
        subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "1", "-subj", "/CN=backupkit test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "1", "-extfile", "san.ext")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", "server.crt", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.crt",
         "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0",
         "--dir", str(tmp_path), "--requirepass", "tls-secret"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(tmp_path / "ca.crt"),
                             password="tls-secret")
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.mset({f"k{i}": str(i) for i in range(100)})
        sink = tmp_path / "sink"
        engine = engine_over(sink, f"rediss://:tls-secret@127.0.0.1:{port}", tls_ca_file=str(tmp_path / "ca.crt"))
        manifest = engine.backup()
        assert manifest.artifact("cache").extra["keys"] == {"0": 100}
        engine.restore(manifest.id, to=tmp_path / "out")
        with TempRedis().start(_copied(tmp_path / "out" / "dump.rdb", tmp_path)) as loaded:
            assert redis.Redis(port=loaded.port).mget("k0", "k99") == [b"0", b"99"]
        without_ca = engine_over(tmp_path / "sink2", f"rediss://:tls-secret@127.0.0.1:{port}")
        with pytest.raises(SourceError, match="certificate verify failed|TLS"):
            without_ca.backup()
    finally:
        server.kill()
        server.wait()


def test_an_rdb_backup_and_restore_run_without_importing_redis_py(
    redis_server: TempRedis, redis_factory: Factory, tmp_path: Path
) -> None:
    # redis-py costs ~170 ms to import: the rdb mode speaks the few commands it needs itself
    populate(redis_server.port)
    config = _config(tmp_path, redis_server.url)
    target = redis_factory()
    code = (
        "import sys\n"
        "from backupkit.cli import main\n"
        f"code = main(['backup', '--config', {str(config)!r}])\n"
        f"code = code or main(['restore', 'latest', '--config', {str(config)!r}, '--to', {target.url!r}])\n"
        "print('redis' in sys.modules)\n"
        "raise SystemExit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
    assert snapshot(target.port) == snapshot(redis_server.port)
