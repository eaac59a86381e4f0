"""Redis backup and restore: backupkit's redis source against ``redis-cli --rdb | zstd``.

Starts a source ``redis-server`` (``backupkit.sources.redis.server.TempRedis`` with
``--enable-debug-command local``), fills it with ``--keys`` keys of ~100 bytes
(``DEBUG POPULATE N key 100``: ``key:0`` ... with ``value:0`` ... padded to 100 bytes),
then runs, per round, interleaved and in alternating order:

* backup:  ``python -m backupkit backup --config CONFIG`` (one redis source, zstd level 3,
  a local sink) against ``redis-cli -p PORT --rdb - | zstd -3 -T1 -q -o OUT``
* restore: ``python -m backupkit restore latest --config CONFIG --to redis://127.0.0.1:PORT2``
  into a fresh empty ``redis-server`` (started before, not timed; backupkit serves the
  artifact's RDB as the target's master for one full sync and compares key counts; before
  f48a2d5 it loaded the artifact into a temporary server and replicated from that) against
  ``zstd -d`` of OUT into a new server's directory as ``dump.rdb`` and starting that server
  until it answers ``PING`` with ``PONG`` (not ``LOADING``), the decompression and the start
  timed together.

After every restore each database's key count is checked (``INFO keyspace``). Then, with
``--multi-rounds`` (default 1), the same again with the keys split over databases 0 and 1:
backupkit then walks every record of the RDB (``rdb.walk``) instead of reading only the
first ``RESIZEDB`` record; reported in a table of its own.

Every command runs under GNU ``time`` (``bench_filesystem.run``): wall, user + sys CPU and
peak RSS; every exit status is checked, as ``set -o pipefail`` would. GNU time's peak RSS of
a process includes its reaped children (the temporary server of a restore before f48a2d5), so a
watcher thread also samples the backupkit process itself in ``/proc`` every 20 ms: its own
peak RSS (``VmHWM``), its own CPU, each thread's CPU and its children's lifetimes. Server CPU
(the source's for backups: its fork that writes the snapshot; the target's for backupkit's
restore: the replica's load) is read from ``/proc``. The sink, the pipeline's files and the
servers this script starts live in ``/dev/shm`` when it has room.

    python benchmarks/bench_redis.py --keys 100000 --rounds 1   # quick, ~15 s
    python benchmarks/bench_redis.py --rev HEAD                 # 1M keys, 3 rounds + 1, ~2 minutes

Targets: backup at most 1.1x and restore at most 1.2x the pipeline's wall time; peak RSS of
the backupkit process at most 120 MB. Rewrites the ``bench-redis`` block of
docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
from bench_filesystem import GNU_TIME, Measured, _machine, _rm, run, stored_bytes

TARGETS = {"backup": 1.1, "restore": 1.2}
TARGET_RSS_MB = 120
VALUE_SIZE = 100
LABELS = {
    "bk_backup": ("backup", "backupkit"),
    "ref_backup": ("backup", "redis-cli --rdb + zstd"),
    "bk_restore": ("restore", "backupkit"),
    "ref_restore": ("restore", "zstd -d + redis-server start"),
}
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- /proc ----------------------------------------------------------------------------------------
def _stat(pid: int | str, tid: int | str | None = None) -> list[str]:
    """The fields of ``/proc/PID[/task/TID]/stat`` after the command name (state is [0])."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    return Path(path).read_text().rsplit(")", 1)[1].split()


def cpu_of(pid: int, *, children: bool = True) -> float:
    """CPU seconds of *pid*, with its reaped children (a redis-server's snapshot forks)."""
    f = _stat(pid)  # utime(11) stime(12) cutime(13) cstime(14)
    return sum(int(x) for x in f[11:15 if children else 13]) / TICK


def hwm_kib(pid: int | str) -> int:
    """Peak RSS so far (``VmHWM``) of *pid*, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _children(pid: int | str) -> list[int]:
    """The child processes of every thread of *pid*."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return out


def _cmdline(pid: int | str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


class Watch:
    """Samples the ``python -m backupkit`` process a measured command starts (a child of
    GNU time, itself this process's child): own peak RSS, own CPU, each thread's CPU, and
    when each child process (the temporary redis-server of a restore) was first and last
    seen, with its last CPU and RSS figures. Sampling every *interval* seconds."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.t0 = time.perf_counter()
        self.wall0 = time.time()
        self.pid: int | None = None
        self.hwm = 0
        self.cpu = 0.0
        self.threads: dict[int, float] = {}
        self.kids: dict[int, dict[str, Any]] = {}
        self.end = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)
        self._thread.start()

    def _find(self) -> int | None:
        for child in _children(os.getpid()):
            cmd = _cmdline(child)
            if cmd[1:3] == ["-m", "backupkit"]:
                return child
            if GNU_TIME and cmd[:1] == [GNU_TIME]:
                for grandchild in _children(child):
                    if _cmdline(grandchild)[1:3] == ["-m", "backupkit"]:
                        return grandchild
        return None

    def _sample(self, pid: int) -> None:
        now = time.perf_counter() - self.t0
        self.hwm = max(self.hwm, hwm_kib(pid))
        self.cpu = cpu_of(pid, children=False)
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                f = _stat(pid, tid)
                self.threads[int(tid)] = (int(f[11]) + int(f[12])) / TICK
        for kid in _children(pid):
            with contextlib.suppress(OSError):
                program = Path(_cmdline(kid)[0]).name  # "" before its exec, and as a zombie
                info = self.kids.setdefault(kid, {"program": program, "first": now, "hwm_kib": 0})
                info["program"] = program or info["program"]
                info.update(last=now, cpu=cpu_of(kid), hwm_kib=max(info["hwm_kib"], hwm_kib(kid)))
        self.end = now

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.pid is None:
                    self.pid = self._find()
                if self.pid is not None:
                    self._sample(self.pid)
            except (OSError, IndexError, ValueError):
                if self.pid is not None and not Path(f"/proc/{self.pid}").exists():
                    return  # it exited
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        threads = [round(self.threads[t], 2) for t in sorted(self.threads)]  # main thread first
        return {"python_hwm_kib": self.hwm, "python_cpu": round(self.cpu, 2), "thread_cpu": threads,
                "children": [{k: round(v, 2) if isinstance(v, float) else v for k, v in info.items()}
                             for info in self.kids.values()],
                "last_sample": round(self.end, 2), "wall0": self.wall0}


# -- servers --------------------------------------------------------------------------------------
def client(server: Any, db: int = 0) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=server.port, db=db, socket_timeout=600)


def keyspace(server: Any) -> dict[str, int]:
    """``{"0": keys, ...}`` of a running server."""
    info = client(server).info("keyspace")
    return {k[2:]: int(v["keys"]) for k, v in info.items() if k.startswith("db")}


def populate(source: Any, keys: int, dbs: int) -> dict[str, int]:
    """Empty *source*, then ``DEBUG POPULATE`` *keys* keys split over databases 0..dbs-1."""
    t0 = time.perf_counter()
    client(source).flushall()
    for db in range(dbs):
        n = keys // dbs + (keys % dbs if db == 0 else 0)
        client(source, db).execute_command("DEBUG", "POPULATE", str(n), "key", str(VALUE_SIZE))
    space = keyspace(source)
    mem = client(source).info("memory")["used_memory"]
    print(f"source: {space} ({mem / 1e6:.0f} MB used) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return space


_LOG_TIME = re.compile(r"^\d+:\w (\d\d \w{3} \d{4} \d\d:\d\d:\d\d\.\d{3}) . (.*)$")
#: Lines of a replica's log that mark the phases of a sync, by what they start.
REPLICA_PHASES = {"Connecting to MASTER": "connect", "MASTER <-> REPLICA sync: receiving": "transfer",
                  "MASTER <-> REPLICA sync: Loading DB in memory": "load",
                  "MASTER <-> REPLICA sync: Finished with success": "done"}
#: The same in the source's log during a backup (disk-based or diskless snapshot).
SOURCE_PHASES = {"Replica 127.0.0.1:<unknown-replica-port> asks for synchronization": "SYNC",
                 "Starting BGSAVE for SYNC with target: disk": "fork, RDB to the server's disk",
                 "Starting BGSAVE for SYNC with target: replicas sockets": "fork, RDB to the socket",
                 "DB saved on disk": "RDB on disk", "Background saving terminated": "fork reaped, sending",
                 "RDB transfer completed": "sent",
                 "Diskless rdb transfer, done reading from pipe": "sent"}


def log_phases(log: Path, wall0: float, phases: dict[str, str]) -> dict[str, float]:
    """When (seconds after *wall0*) a server's log first shows each of *phases* (lines that
    start with a key) after *wall0*."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            m = _LOG_TIME.match(line)
            if not m:
                continue
            for prefix, name in phases.items():
                if m.group(2).startswith(prefix) and name not in out:
                    at = dt.datetime.strptime(m.group(1), "%d %b %Y %H:%M:%S.%f").timestamp() - wall0
                    if at > -0.002:  # the log has millisecond times
                        out[name] = round(at, 3)
    return out


def forkless(server: Any, timeout: float = 60) -> None:
    """Wait until *server* has reaped its snapshot fork (its CPU is then in its cutime)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client(server).info("persistence")
        if not int(info.get("rdb_bgsave_in_progress", 0)) and not int(info.get("current_fork_perc", 0)):
            time.sleep(0.15)  # serverCron reaps children every 100 ms; INFO may answer first
            if not int(client(server).info("persistence").get("rdb_bgsave_in_progress", 0)):
                return
        time.sleep(0.05)


# -- measuring ------------------------------------------------------------------------------------
def ref_restore(dump: Path, scratch: Path, display: dict[str, str]) -> tuple[Measured, Any, dict[str, float]]:
    """``zstd -d`` into a new server's directory, then start it until it answers PONG."""
    from backupkit.sources.redis.server import TempRedis

    rdb = scratch / "ref-restore.rdb"  # renamed into the server's directory (same tmpfs)
    os.sync()
    t0 = time.perf_counter()
    z = run("ref_restore", [["zstd", "-d", "-q", "-o", str(rdb), str(dump)]], cwd=scratch, display=display)
    t1 = time.perf_counter()
    server = TempRedis().start(rdb)
    wall = time.perf_counter() - t0
    assert server.proc is not None
    procs = [*z.procs, ("redis-server", cpu_of(server.proc.pid), hwm_kib(server.proc.pid))]
    shell = (f"{z.shell}; redis-server --dir DIR --dbfilename dump.rdb ... (until PING answers PONG), "
             "DIR/dump.rdb renamed from that file")
    return Measured("ref_restore", shell, wall, procs), server, {"zstd": t1 - t0, "start": wall - (t1 - t0)}


def measure_round(r: int, rounds: int, ctx: dict[str, Any], results: dict[str, list[Measured]],
                  extra: dict[str, list[dict[str, Any]]], expected: dict[str, int]) -> None:
    """One round: the two backups, then the two restores, each pair in alternating order."""
    from backupkit.sources.redis.server import TempRedis

    source, scratch, display = ctx["source"], ctx["scratch"], ctx["display"]
    python, config, dump = ctx["python"], ctx["config"], ctx["dump"]
    order = (lambda keys: keys) if r % 2 == 0 else (lambda keys: list(reversed(keys)))
    backup = {
        "bk_backup": [[python, "-m", "backupkit", "backup", "--config", str(config)]],
        "ref_backup": [["redis-cli", "-p", str(source.port), "--rdb", "-"],
                       ["zstd", "-3", "-T1", "-q", "-o", str(dump)]],
    }
    _rm(dump)
    for key in order(list(backup)):
        forkless(source)
        before = cpu_of(source.proc.pid)
        dumped = source.root / "dump.rdb"
        stamp = dumped.stat().st_mtime_ns if dumped.exists() else None
        watch = Watch() if key.startswith("bk") else None
        wall0 = time.time()
        m = run(key, backup[key], cwd=scratch, display=display)
        info = watch.stop() if watch else {}
        info.pop("wall0", None)
        forkless(source)
        info["server_cpu"] = round(cpu_of(source.proc.pid) - before, 2)
        info["source"] = log_phases(source.root / "redis.log", wall0, SOURCE_PHASES)
        info["wrote_dump_rdb"] = dumped.exists() and dumped.stat().st_mtime_ns != stamp
        results[key].append(m)
        extra[key].append(info)
        log(r, rounds, key, m, info)
    for key in order(["bk_restore", "ref_restore"]):
        if key == "bk_restore":
            target = TempRedis().start()
            assert target.proc is not None and target.root is not None
            argv = [[python, "-m", "backupkit", "restore", "latest", "--config", str(config),
                     "--to", target.url]]
            before = cpu_of(target.proc.pid)
            watch = Watch()
            m = run(key, argv, cwd=scratch, display={**display, target.url: "redis://127.0.0.1:PORT2"})
            info = watch.stop()
            info["server_cpu"] = round(cpu_of(target.proc.pid) - before, 2)
            info["replica"] = log_phases(target.root / "redis.log", info.pop("wall0"), REPLICA_PHASES)
        else:
            m, target, phases = ref_restore(dump, scratch, display)
            info = {"phases": {k: round(v, 3) for k, v in phases.items()}}
        try:
            got = keyspace(target)
        finally:
            target.stop()
        ok = got == expected
        info["keyspace"] = got
        info["keys_ok"] = ok
        results[key].append(m)
        extra[key].append(info)
        log(r, rounds, key, m, info)
        if not ok:
            raise SystemExit(f"{key}: the restored server holds {got}, the source {expected}")
    ctx["stored"] = {"backupkit": stored_bytes(ctx["sink"], "**/*.manifest.json"),
                     "pipeline": dump.stat().st_size, "rdb_bytes": rdb_bytes(ctx["sink"])}
    _rm(ctx["sink"], dump)


def rdb_bytes(sink: Path) -> int:
    """The ``rdb_bytes`` fact of the backup in *sink*."""
    for manifest in sink.glob("**/*.manifest.json"):
        for artifact in json.loads(manifest.read_text())["artifacts"]:
            if "rdb_bytes" in (artifact.get("extra") or {}):
                return int(artifact["extra"]["rdb_bytes"])
    raise SystemExit(f"no rdb_bytes fact in the manifest in {sink}")


def log(r: int, rounds: int, key: str, m: Measured, info: dict[str, Any]) -> None:
    procs = ", ".join(f"{n} {c:.2f} s {rss / 1024:.0f} MB" for n, c, rss in m.procs)
    more = "".join(f"; {k} {info[k]}" for k in ("server_cpu", "python_hwm_kib", "python_cpu", "thread_cpu",
                                                "children", "source", "wrote_dump_rdb", "replica", "phases", "keyspace")
                   if k in info)
    print(f"  round {r + 1}/{rounds} {key:<12} {m.wall:7.2f} s  cpu {m.cpu:6.2f} s ({procs}){more}",
          file=sys.stderr)


def bench(ctx: dict[str, Any], keys: int, dbs: int, rounds: int) -> dict[str, Any]:
    """*rounds* rounds on *keys* keys in *dbs* databases of the source."""
    expected = populate(ctx["source"], keys, dbs)
    mem = int(client(ctx["source"]).info("memory")["used_memory"])
    results: dict[str, list[Measured]] = {k: [] for k in LABELS}
    extra: dict[str, list[dict[str, Any]]] = {k: [] for k in LABELS}
    for r in range(rounds):
        measure_round(r, rounds, ctx, results, extra, expected)
    return {"keys": keys, "dbs": dbs, "keyspace": expected, "used_memory": mem, "results": results,
            "extra": extra, "stored": dict(ctx["stored"])}


# -- reporting ------------------------------------------------------------------------------------
def _med(values: Sequence[float]) -> float:
    return statistics.median(values)


def section(res: dict[str, Any], title: str) -> list[str]:
    results, extra, stored = res["results"], res["extra"], res["stored"]
    space = ", ".join(f"db{k} {v:,}" for k, v in res["keyspace"].items())
    out = [f"### {title}: {res['keys']:,} keys ({space})", "",
           f"`used_memory` {res['used_memory'] / 1e6:.0f} MB; RDB {stored['rdb_bytes'] / 1e6:.1f} MB "
           f"(`rdb_bytes` of the backup). MB/s = RDB bytes per median second.", ""]
    server = {k: f"{_med([e['server_cpu'] for e in extra[k]]):.2f}" for k in ("bk_backup", "ref_backup",
                                                                            "bk_restore")}
    server["ref_restore"] = "(in CPU)"
    out += common.rows(results, LABELS, stored["rdb_bytes"], extra=server,
                       extra_head="server CPU s (median)")
    out.append("")
    for step in ("backup", "restore"):
        bk, ref, target = results[f"bk_{step}"], results[f"ref_{step}"], TARGETS[step]
        wall = common.per_round(bk, ref)
        med = _med(wall)
        best = min(m.wall for m in bk) / min(m.wall for m in ref)
        walls = lambda ms: ", ".join(f"{m.wall:.2f}" for m in ms)  # noqa: E731
        out.append(f"- **{step}, backupkit / pipeline, wall time**: per round {common.fmt_ratios(wall)}; "
                   f"median **{med:.3f}** (best / best {best:.3f}); target <= {target}: "
                   f"{common.verdict(med <= target)}. Wall s, backupkit {walls(bk)}; pipeline {walls(ref)}")
    # where the CPU goes
    bb, rb = extra["bk_backup"], results["ref_backup"]
    threads = [e["thread_cpu"] for e in bb]
    width = max(len(t) for t in threads)
    per_thread = ", ".join(f"{_med([t[i] for t in threads if len(t) > i]):.2f}" for i in range(width))
    parts = " + ".join(f"{n} {_med([p.procs[i][1] for p in rb]):.2f} s" for i, (n, *_r) in enumerate(rb[0].procs))
    out.append(f"  - backup CPU (median): backupkit {_med([m.cpu for m in results['bk_backup']]):.2f} s "
               f"(per thread, main first, in order of creation: {per_thread}); pipeline {parts}; the source "
               f"server (its snapshot fork) {_med([e['server_cpu'] for e in bb]):.2f} s against "
               f"{_med([e['server_cpu'] for e in extra['ref_backup']]):.2f} s")
    br, rr = extra["bk_restore"], results["ref_restore"]
    temp = [temp_server(e).get("cpu", 0.0) for e in br]
    temp_mb = max(temp_server(e).get("hwm_kib", 0) for e in br)
    has_temp = any(temp_server(e) for e in br)  # backupkit before f48a2d5: a temporary server
    parts = " + ".join(f"{n} {_med([p.procs[i][1] for p in rr]):.2f} s" for i, (n, *_r) in enumerate(rr[0].procs))
    out.append(f"  - restore CPU (median): backupkit {_med([m.cpu for m in results['bk_restore']]):.2f} s "
               + (f"(Python ~{_med([e['python_cpu'] for e in br]):.2f} s, its temporary redis-server "
                  f"~{_med(temp):.2f} s)" if has_temp else "(no child process)")
               + f" + the target server {_med([e['server_cpu'] for e in br]):.2f} s "
               f"(its load of the replicated RDB); pipeline {parts}")
    out.append("  - backup timeline (median s from the start; the source server's log): "
               + backup_timeline(extra["bk_backup"], extra["ref_backup"], results))
    wrote = {k: sum(e["wrote_dump_rdb"] for e in extra[k]) for k in ("bk_backup", "ref_backup")}
    out.append(f"  - the source server wrote its `dump.rdb` during {wrote['bk_backup']} of "
               f"{len(extra['bk_backup'])} backupkit backups and {wrote['ref_backup']} of "
               f"{len(extra['ref_backup'])} redis-cli ones")
    out.append("  - restore timeline (median s from the start): " + timeline(br, extra["ref_restore"]))
    rss = max(e["python_hwm_kib"] for k in ("bk_backup", "bk_restore") for e in extra[k]) / 1024
    gnu = {k: max(m.rss_mb for m in results[k]) for k in ("bk_backup", "bk_restore")}
    pipe = "; ".join(f"{LABELS[k][1]}: " + " / ".join(
        f"{n} {max(p.procs[i][2] for p in results[k]) / 1024:.0f}" for i, (n, *_r) in enumerate(results[k][0].procs))
        for k in ("ref_backup", "ref_restore"))
    out.append(f"- **peak RSS of the backupkit process**: {rss:.0f} MB (`VmHWM` of the Python process: backup "
               f"{max(e['python_hwm_kib'] for e in bb) / 1024:.0f}, restore "
               f"{max(e['python_hwm_kib'] for e in br) / 1024:.0f}); target <= {TARGET_RSS_MB} MB: "
               f"{common.verdict(rss <= TARGET_RSS_MB)}. GNU time's figure, which includes reaped children: "
               f"backup {gnu['bk_backup']:.0f}, restore {gnu['bk_restore']:.0f}"
               + (f" (the temporary redis-server {temp_mb / 1024:.0f})" if has_temp else "")
               + f". Pipeline, MB: {pipe}")
    out.append(f"- stored: backupkit {stored['backupkit'] / 1e6:.1f} MB (every artifact of the backup), "
               f"pipeline {stored['pipeline'] / 1e6:.1f} MB")
    ok = all(e["keys_ok"] for k in ("bk_restore", "ref_restore") for e in extra[k])
    out.append("- key counts after every restore (`INFO keyspace`): " + (
        f"{space}, as in the source ✅" if ok else "DIFFERENT ❌"))
    return out


def temp_server(info: dict[str, Any]) -> dict[str, Any]:
    """The temporary redis-server among a restore's children (the longest-lived: the
    other one is ``redis-server --version``); ``{}`` if none was seen."""
    servers = [c for c in info["children"] if c["program"].startswith("redis-server")]
    return max(servers, key=lambda c: c["last"] - c["first"], default={})


def backup_timeline(bk: list[dict[str, Any]], ref: list[dict[str, Any]], results: dict[str, Any]) -> str:
    def marks(infos: list[dict[str, Any]], ms: list[Measured]) -> str:
        names: dict[str, list[float]] = {}
        for e in infos:
            for name, at in e["source"].items():
                names.setdefault(name, []).append(at)
        end = _med([m.wall for m in ms])
        return ", ".join(f"{n} {_med(v):.2f}" for n, v in names.items()) + f", exit {end:.2f}"

    return (f"backupkit: {marks(bk, results['bk_backup'])}; "
            f"redis-cli + zstd: {marks(ref, results['ref_backup'])}")


def timeline(bk: list[dict[str, Any]], ref: list[dict[str, Any]]) -> str:
    """When backupkit's restore started its temporary server, when the target connected,
    received, loaded and finished, when the temporary server was gone; and the pipeline's
    two parts."""
    marks: dict[str, list[float]] = {}
    for e in bk:
        temp = temp_server(e)
        if temp:
            marks.setdefault("temporary server started", []).append(temp["first"])
        for name, at in e["replica"].items():
            marks.setdefault(f"target: {name}", []).append(at)
        if temp:
            marks.setdefault("temporary server gone", []).append(temp["last"])
        marks.setdefault("backupkit exits", []).append(e["last_sample"])
    label = {"target: connect": "target connects to it" if any(temp_server(e) for e in bk)
             else "target connects to backupkit", "target: transfer": "target receives the RDB",
             "target: load": "target loads it", "target: done": "sync finished"}
    text = "backupkit: " + ", ".join(f"{label.get(k, k)} {_med(v):.2f}" for k, v in marks.items())
    phases = [e["phases"] for e in ref]
    return (text + f"; pipeline: zstd -d {_med([p['zstd'] for p in phases]):.2f} s, then the server's start "
            f"until PONG {_med([p['start'] for p in phases]):.2f} s")


def report(benches: list[tuple[str, dict[str, Any]]], machine: dict[str, str], argv: Sequence[str],
           load: tuple[Any, Any], out_note: str) -> str:
    out = [*common.header("bench_redis.py", argv, machine, load)]
    out += [f"`$W` = {out_note}. The source is a `TempRedis` (`--save ''`, `--repl-diskless-sync-delay 0`, "
            "`--enable-debug-command local`) filled by `DEBUG POPULATE N key 100`; each restore goes into a "
            "fresh empty server. CPU = user + sys of the measured processes (backupkit's restore: its own "
            "process, which serves the RDB as the target's master; the pipeline's restore includes the "
            "started server up to PONG); server CPU = the source server's for backups (the fork that writes the "
            "snapshot), the target server's for backupkit's restore (not in CPU). Python figures "
            "(own CPU, threads, `VmHWM`) sampled from `/proc` every 20 ms.", ""]
    for title, res in benches:
        out += section(res, title)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _quiet_tree_options(parser: argparse.ArgumentParser) -> None:
    """``--size``, ``--seed`` and ``--no-verify`` of the tree benchmarks do not apply here
    (key counts are checked after every restore)."""
    for action in parser._actions:
        if action.dest in ("size", "seed", "no_verify"):
            action.help = argparse.SUPPRESS


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.tree_parser(__doc__ or "")
    _quiet_tree_options(parser)
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys of ~100 bytes (default 1000000)")
    parser.add_argument("--multi-rounds", type=int, default=1,
                        help="rounds with the keys in two databases (default 1; 0 skips them)")
    parser.add_argument("--out", type=Path,
                        help="sink, pipeline files and servers (default /dev/shm/bkbench-redis when it "
                             "has room, else WORK/scratch-redis)")
    args = parser.parse_args(argv)
    backupkit = common.use_rev(args)
    common.check_tools(parser, ("zstd", "redis-server", "redis-cli"), args.python)
    from backupkit.sources.redis.server import TempRedis

    out_dir = args.out
    if out_dir is None:
        shm = Path("/dev/shm")
        room = shm.is_dir() and shutil.disk_usage(shm).free > args.keys * 2000 + (1 << 30)
        out_dir = shm / "bkbench-redis" if room else args.work / "scratch-redis"
    tmpfs = str(out_dir).startswith("/dev/shm")
    out_note = (f"`{out_dir}` ({'tmpfs' if tmpfs else 'disk'}: the sink, the pipeline's files and the "
                "directories of the servers this script starts)")
    _rm(out_dir)
    scratch = out_dir
    (scratch / "servers").mkdir(parents=True)
    tempfile.tempdir = str(scratch / "servers")  # TempRedis directories (this process only)

    load0 = os.getloadavg()
    machine = {**_machine(), "redis": common.tool_version(["redis-server", "--version"]),
               "redis-py": __import__("redis").__version__, "backupkit": backupkit}
    machine.pop("tar", None)
    benches: list[tuple[str, dict[str, Any]]] = []
    with TempRedis(args=("--enable-debug-command", "local")) as source:
        print(f"source redis-server on port {source.port}", file=sys.stderr)
        sink, dump = scratch / "sink", scratch / "dump.rdb.zst"
        config = scratch / "backupkit.toml"
        config.write_text(
            f'[sets.bench]\nsink = "{sink}"\ntransforms = [{{ type = "zstd", level = 3 }}]\n'
            f'[[sets.bench.sources]]\ntype = "redis"\nname = "cache"\nurl = "{source.url}"\n'
        )
        ctx = {"source": source, "scratch": scratch, "python": args.python, "config": config, "dump": dump,
               "sink": sink, "display": {str(scratch): "$W", str(source.port): "PORT"}}
        plan = [("One database", 1, args.rounds)] + (
            [("Two databases (backupkit walks every record)", 2, args.multi_rounds)] if args.multi_rounds else [])
        for title, dbs, rounds in plan:
            print(f"{title}: {args.keys} keys, {rounds} round(s)", file=sys.stderr)
            res = bench(ctx, args.keys, dbs, rounds)
            benches.append((title, res))
    _rm(scratch)
    load = (load0, os.getloadavg())
    text = report(benches, machine, argv, load, out_note)
    results = {f"{dbs}db_{k}": v for (_t, res), dbs in zip(benches, (1, 2)) for k, v in res["results"].items()}
    common.publish(args, text, "redis", "## Redis backup and restore", machine, argv, load, results,
                   runs={t: {k: v for k, v in res.items() if k != "results"} for t, res in benches})
    return 0


if __name__ == "__main__":
    sys.exit(main())
