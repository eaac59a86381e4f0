"""Restore drill of a whole stack: ``backupkit drill`` against restoring the same backup by hand.

Builds the stack of issue #17 once: a generated PostgreSQL database (``--pg-size``, the
tables of ``bench_postgres.py``), a ``redis-server`` with ``--keys`` keys (``DEBUG POPULATE``,
as ``bench_redis.py``) and a files tree (``--size``, ``make_tree.py``), backs the three up with
one ``python -m backupkit backup`` (zstd level 3) to S3 on a loopback moto server
(``bench_s3.py``'s, in its own process), then runs, per round, in alternating order:

* drill: ``python -m backupkit drill --config CONFIG --json``: every artifact restored side by
  side into scratch targets (a temp directory with every file's sha256 checked against the
  index, a database on a temporary cluster the drill starts, with every table's row count
  checked, a temporary ``redis-server`` with its key counts checked), then removed;
* by hand, one step after another as a person's script would (docs/restore-without-backupkit.md):
  for each artifact ``aws s3 cp`` (or boto3's ``download_file``, ``--download boto3``) to a file,
  then ``zstd -d -c | tar -x`` of the files, ``createdb`` + ``zstd -d -c | pg_restore`` into a
  fresh database on the running source cluster, ``zstd -d`` to ``dump.rdb`` and a fresh
  ``redis-server`` started on it until it answers ``PING`` with ``PONG``.

Every process runs under GNU ``time`` (``bench_filesystem.run``): wall, user + sys CPU, peak
RSS, every exit status checked. PostgreSQL servers' CPU (their backends) is read from
``/proc`` (the drill's temporary cluster is sampled while it lives); a watcher samples the
drill's Python process and its threads (``bench_redis.Watch``). The hand path is checked
too: the key counts and row counts every round, and in the first round the tree
(``diff -r`` plus modes and mtimes) and every table's row hash.

    python benchmarks/bench_drill.py --quick        # 100M + 100k keys + 100M, 2 rounds, ~3 minutes
    python benchmarks/bench_drill.py --rev HEAD     # 1G + 1M keys + 1G, 3 rounds, ~15 minutes

Target: the drill at most 1.0x the hand path's wall time (median of the per-round ratios).
Rewrites the ``bench-drill`` block of docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import bench_postgres
import bench_redis
import make_tree
from bench_filesystem import Measured, _machine, _rm, compare_trees, run, warm
from bench_s3 import BUCKET, Moto

TARGET_RATIO = 1.0
PREFIX = "drill"
SET = "bench"
QUICK = {"size": "100M", "pg_size": "100M", "keys": 100_000, "rounds": 2}
#: boto3's download_file; ``one GET``: with a multipart threshold above any artifact's size.
DOWNLOAD_FILE = ("import sys, boto3, boto3.s3.transfer as t; boto3.client('s3').download_file(sys.argv[1], "
                 "sys.argv[2], sys.argv[3], Config=t.TransferConfig(multipart_threshold=int(sys.argv[4])))")
#: ``s3.multipart_threshold`` of the aws CLI (and boto3) for one GET per object: moto 5.2.5
#: answers the ranged GETs of a multipart download slowly (here 89.6 s for a 728 MB object in
#: 8 MiB parts, against 4.5 s in one GET), which real S3 does not.
ONE_GET = 1 << 40


# -- the stack and its backup ---------------------------------------------------------------------
def s3_env(moto: Moto) -> dict[str, str]:
    """The environment of every child: moto's endpoint and dummy credentials, nothing else of AWS."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BACKUP_"))},
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto.url, "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def s3_client(moto: Moto) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="bench",
                        aws_secret_access_key="bench")


def write_config(path: Path, tree: Path, pg_url: str, redis_url: str) -> None:
    path.write_text(
        f'[sets.{SET}]\nsink = "s3://{BUCKET}/{PREFIX}"\ntransforms = [{{ type = "zstd", level = 3 }}]\n'
        f'[[sets.{SET}.sources]]\ntype = "filesystem"\nname = "files"\npaths = ["{tree}"]\n'
        f'[[sets.{SET}.sources]]\ntype = "postgres"\nname = "db"\nurl = "{pg_url}"\n'
        f'[[sets.{SET}.sources]]\ntype = "redis"\nname = "cache"\nurl = "{redis_url}"\n'
    )


def stored_artifacts(s3: Any) -> list[dict[str, Any]]:
    """The artifacts of the one backup in the bucket (sidecars too), each with its object key."""
    objects = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/").get("Contents", [])
    manifests = [o["Key"] for o in objects if o["Key"].endswith(".manifest.json")]
    if len(manifests) != 1:
        raise SystemExit(f"expected one backup in s3://{BUCKET}/{PREFIX}, found {manifests}")
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifests[0])["Body"].read())
    keys = {o["Key"] for o in objects}
    out = []
    for a in manifest["artifacts"]:
        key = a["key"] if a["key"] in keys else f"{PREFIX}/{a['key']}"
        if key not in keys:
            raise SystemExit(f"artifact {a['name']}: no object {a['key']} in the bucket")
        out.append({**a, "object": key})
    return out


def drill_records(s3: Any) -> dict[str, dict[str, Any]]:
    """Every drill record in the bucket, by object key."""
    objects = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/drills/").get("Contents", [])
    return {o["Key"]: json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())
            for o in objects if o["Key"].endswith(".json")}


def downloader(choice: str, python: str) -> tuple[str, list[str]]:
    """How the hand path downloads: ``aws s3 cp`` (the CLI's real path, not a pyenv shim) or
    boto3's ``download_file`` (what ``aws s3 cp`` does) in a Python process; one GET per
    object unless *choice* ends in ``-parts`` (the tools' default 8 MiB ranged GETs)."""
    if choice.startswith(("auto", "aws")):
        for candidate in (Path(python).with_name("aws"), Path(shutil.which("aws") or "")):
            if candidate.name != "aws" or not candidate.is_file():
                continue
            if "/shims/" in str(candidate):  # pyenv's shim execs the real one via bash
                found = subprocess.run(["pyenv", "which", "aws"], capture_output=True, text=True, check=False)
                candidate = Path(found.stdout.strip()) if found.returncode == 0 else candidate
            return choice.replace("auto", "aws"), [str(candidate), "s3", "cp", "--only-show-errors"]
        if choice.startswith("aws"):
            raise SystemExit("no aws CLI here; pass --download boto3 (or pip install awscli)")
    return choice.replace("auto", "boto3"), [python, "-c", DOWNLOAD_FILE]


def download_cmd(how: tuple[str, list[str]], key: str, dest: Path) -> list[str]:
    kind, argv = how
    if kind.startswith("aws"):
        return [*argv, f"s3://{BUCKET}/{key}", str(dest)]
    return [*argv, BUCKET, key, str(dest), str(8 << 20 if kind.endswith("-parts") else ONE_GET)]


def download_env(how: tuple[str, list[str]], env: dict[str, str], out: Path) -> dict[str, str]:
    """*env* for the downloads: for ``aws`` a configuration file with ``s3.multipart_threshold``
    above every artifact's size (one GET per object)."""
    if how[0] != "aws":
        return env
    config = out / "aws-config"
    config.write_text(f"[default]\ns3 =\n  multipart_threshold = {ONE_GET // (1 << 30)}GB\n")
    return {**env, "AWS_CONFIG_FILE": str(config)}


# -- measuring ------------------------------------------------------------------------------------
def cluster_cpu(root: Path) -> float | None:
    """CPU so far of the PostgreSQL cluster whose data directory is ``ROOT/data`` (postmaster,
    reaped and running backends), or None when it is not running."""
    pidfile = root / "data" / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
        f = bench_redis._stat(pid)
    except (OSError, ValueError, IndexError):
        return None
    total = sum(int(x) for x in f[11:15])
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry != str(pid):
            with contextlib.suppress(OSError, IndexError):
                c = bench_redis._stat(entry)
                if c[1] == str(pid):
                    total += int(c[11]) + int(c[12])
    return total / bench_redis.TICK


def postmaster_children(cluster: Any) -> int:
    """How many processes the cluster's postmaster has now (its backends and workers)."""
    pid = (cluster.data / "postmaster.pid").read_text().split()[0]
    return len(bench_redis._children(pid))


def reaped(cluster: Any, before: int, timeout: float = 5.0) -> None:
    """Wait until the postmaster has no more children than *before* (its exited backends
    reaped, their CPU in its own figures), at most *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while postmaster_children(cluster) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)


class DrillWatch(bench_redis.Watch):
    """:class:`bench_redis.Watch`, and the last CPU figure of each temporary PostgreSQL
    cluster the drill starts under *tmp* (its postmaster is not the drill's child)."""

    def __init__(self, tmp: Path, interval: float = 0.05) -> None:
        self.tmp = tmp
        self.clusters: dict[str, float] = {}
        super().__init__(interval)

    def _sample(self, pid: int) -> None:
        super()._sample(pid)
        for root in self.tmp.glob("backupkit-pg-*"):
            cpu = cluster_cpu(root)
            if cpu is not None:
                self.clusters[root.name] = cpu

    def stop(self) -> dict[str, Any]:
        out = super().stop()
        out["cluster_cpu"] = round(sum(self.clusters.values()), 2)
        return out


def export_rev(rev: str, work: Path, python: str) -> tuple[str, str]:
    """backupkit as committed at *rev*, unpacked under *work* and byte-compiled (as
    ``_common.use_rev`` does); returns its directory (for PYTHONPATH) and its short commit."""
    commit = subprocess.run(["git", "-C", str(common.REPO), "rev-parse", "--short=12", f"{rev}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    dest = work / f"backupkit-{commit}"
    if not (dest / "backupkit" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(common.REPO), "archive", commit, "backupkit"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    subprocess.run([python, "-m", "compileall", "-q", str(dest / "backupkit")], check=True, stdout=subprocess.DEVNULL)
    return str(dest), commit


def run_drill(ctx: dict[str, Any], key: str = "drill") -> tuple[Measured, dict[str, Any]]:
    """``backupkit drill`` end to end; its record (from the bucket) and the watcher's figures.
    *key* ``baseline``: the backupkit of ``--baseline``."""
    before = set(drill_records(ctx["s3"]))
    watch = DrillWatch(ctx["drill_tmp"])
    env = ctx["drill_env"] if key == "drill" else ctx["baseline_env"]
    m = run(key, [[ctx["python"], "-m", "backupkit", "drill", "--config", str(ctx["config"]), "--json"]],
            cwd=ctx["out"], display=ctx["display"], env=env)
    info = watch.stop()
    info.pop("wall0", None)
    new = [r for k, r in drill_records(ctx["s3"]).items() if k not in before]
    if len(new) != 1 or not new[0]["ok"]:
        raise SystemExit(f"the drill did not store one passing record: {new}")
    left = list(ctx["drill_tmp"].iterdir())
    if left:
        raise SystemExit(f"the drill left scratch behind: {left}")
    record = new[0]
    info["record"] = {"seconds": record["seconds"], "restore_seconds": record.get("restore_seconds"),
                      "bytes": record["bytes"],
                      "artifacts": {a["name"]: {"seconds": round(a["seconds"], 2), "bytes": a["bytes"],
                                                "checks": {k: v for k, v in a["checks"].items()
                                                           if not isinstance(v, dict | list)}}
                                    for a in record["artifacts"]}}
    return m, info


def run_hand(ctx: dict[str, Any], r: int) -> tuple[Measured, dict[str, Any], Any]:
    """Every artifact downloaded, then restored with the standard tools, one step after another.
    Returns the whole as one :class:`Measured`, the per-step figures and the started server."""
    from backupkit.sources.redis.server import TempRedis

    hand = ctx["out"] / f"hand-{r}"
    _rm(hand)
    (hand / "files").mkdir(parents=True)
    cluster, how, artifacts = ctx["cluster"], ctx["download"], ctx["artifacts"]
    display, env = ctx["display"], ctx["env"]
    dbname = f"hand_{r}"
    steps: list[tuple[str, Measured]] = []
    server_cpu = 0.0
    redis = None
    backends = postmaster_children(cluster)
    os.sync()
    t0 = time.perf_counter()

    def step(name: str, cmds: list[list[str]], env: dict[str, str] = env) -> None:
        steps.append((name, run(name, cmds, cwd=hand, display=display, env=env)))

    try:
        for a in artifacts:
            if a.get("extra", {}).get("sidecar_of"):
                continue  # the file index: not needed to restore
            local = hand / Path(a["object"]).name
            step(f"{a['name']}: download", [download_cmd(how, a["object"], local)], ctx["download_env"])
            kind = a["source"]["id"] if isinstance(a["source"], dict) else a["source"]
            if kind == "filesystem":
                step(f"{a['name']}: zstd -d | tar -x", [["zstd", "-d", "-c", str(local)],
                                                        ["tar", "-x", "-C", str(hand / "files")]])
            elif kind == "postgres":
                before = bench_postgres.server_cpu(cluster)
                step(f"{a['name']}: createdb", [[ctx["createdb"], "-h", "127.0.0.1", "-p", str(cluster.port),
                                                 "-U", "postgres", "-T", "template0", dbname]])
                step(f"{a['name']}: zstd -d | pg_restore", [
                    ["zstd", "-d", "-c", str(local)],
                    [ctx["pg_restore"], "--exit-on-error", "-d", cluster.url(dbname)]])
                server_cpu -= before  # the rest after the wall time: once its backend is reaped
            elif kind == "redis":
                rdb = hand / "dump.rdb"
                step(f"{a['name']}: zstd -d", [["zstd", "-d", "-q", "-o", str(rdb), str(local)]])
                s0 = time.perf_counter()
                redis = TempRedis().start(rdb)  # moved into its directory as dump.rdb; until PONG
                assert redis.proc is not None
                steps.append((f"{a['name']}: redis-server until PONG", Measured(
                    "redis start", "redis-server --dir DIR --dbfilename dump.rdb ... (until PONG)",
                    time.perf_counter() - s0,
                    [("redis-server", bench_redis.cpu_of(redis.proc.pid), bench_redis.hwm_kib(redis.proc.pid))])))
            else:
                raise SystemExit(f"artifact {a['name']}: no hand restore for source {kind}")
            local.unlink()
    except BaseException:
        if redis is not None:
            redis.stop()
        raise
    wall = time.perf_counter() - t0
    # pg_restore's backend exits after it: its CPU is counted once the postmaster reaped it
    # (read at once, it was in neither the running nor the reaped children: 4.9 s of ~30).
    reaped(cluster, backends)
    server_cpu += bench_postgres.server_cpu(cluster)
    procs = [p for _name, m in steps for p in m.procs]
    shell = "; ".join(m.shell for _n, m in steps)
    info = {"steps": {name: {"wall": round(m.wall, 2), "cpu": round(m.cpu, 2)} for name, m in steps},
            "server_cpu": round(server_cpu, 2), "dir": hand, "dbname": dbname}
    return Measured("hand", shell, wall, procs, sum(m.user or 0.0 for _n, m in steps)), info, redis


def check_hand(ctx: dict[str, Any], r: int, info: dict[str, Any], redis: Any, verify: bool) -> list[str]:
    """The hand path restored the right data: key counts and row counts every round; in the
    first round the whole tree and every row's hash. Stops the script if not."""
    problems = []
    got = bench_redis.keyspace(redis)
    if got != ctx["keyspace"]:
        problems.append(f"redis holds {got}, the source {ctx['keyspace']}")
    url = ctx["cluster"].url(info["dbname"])
    with bench_postgres.connect(url) as db:
        counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ctx["pg"]["rows"]}
    if counts != ctx["pg"]["rows"]:
        problems.append(f"postgres rows {counts}, the source {ctx['pg']['rows']}")
    notes = [f"keys {got}", f"rows {counts}"]
    if verify and r == 0:
        if bench_postgres.fingerprint(url) != ctx["fingerprint"]:
            problems.append("postgres: the row hashes or index definitions differ from the source's")
        else:
            notes.append("row count and row hash of every table and the index definitions as in the source")
        tree = ctx["tree"]
        restored = next((p for p in (info["dir"] / "files" / tree.name, info["dir"] / "files" / tree.relative_to("/"))
                         if p.is_dir()), info["dir"] / "files")
        found = compare_trees(tree, restored)
        bad = [p for p in found if not p.startswith("note:")]
        problems += bad
        if not bad:
            notes.append("the tree identical (diff -r, types, modes, mtimes, link targets)"
                         + "".join(f"; {p}" for p in found))
    if problems:
        raise SystemExit(f"the hand path restored wrong data: {problems}")
    return notes


def drop_hand(ctx: dict[str, Any], info: dict[str, Any], redis: Any) -> None:
    if redis is not None:
        redis.stop()
    with bench_postgres.connect(ctx["cluster"].url()) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {info['dbname']} WITH (FORCE)")
    _rm(info["dir"])


def bench(ctx: dict[str, Any], rounds: int, verify: bool) -> dict[str, Any]:
    keys = ["drill", "hand"] + (["baseline"] if ctx.get("baseline_env") else [])
    results: dict[str, list[Measured]] = {k: [] for k in keys}
    extra: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    checks: list[str] = []
    for r in range(rounds):
        for key in (keys if r % 2 == 0 else keys[::-1]):
            with bench_postgres.connect(ctx["cluster"].url()) as admin:
                admin.execute("CHECKPOINT")
            if key != "hand":
                m, info = run_drill(ctx, key)
            else:
                m, info, redis = run_hand(ctx, r)
                try:
                    notes = check_hand(ctx, r, info, redis, verify)
                finally:
                    drop_hand(ctx, info, redis)
                if r == 0:
                    checks += notes
                info["dir"] = str(info["dir"])
            results[key].append(m)
            extra[key].append(info)
            more = (f"record {info['record']['seconds']:.2f} s, artifacts "
                    + ", ".join(f"{n} {a['seconds']:.2f} s" for n, a in info["record"]["artifacts"].items())
                    + f"; temp cluster cpu {info['cluster_cpu']:.2f} s; threads {info['thread_cpu']}"
                    if key != "hand" else
                    "steps " + ", ".join(f"{n} {s['wall']:.2f}" for n, s in info["steps"].items())
                    + f"; server cpu {info['server_cpu']:.2f} s")
            print(f"  round {r + 1}/{rounds} {key:<8} {m.wall:7.2f} s  cpu {m.cpu:6.2f} s; {more}",
                  file=sys.stderr, flush=True)
    return {"results": results, "extra": extra, "checks": checks}


# -- reporting ------------------------------------------------------------------------------------
def _med(values: Sequence[float]) -> float:
    return statistics.median(values)


def report(ctx: dict[str, Any], res: dict[str, Any], machine: dict[str, str], argv: Sequence[str],
           load: tuple[Any, Any]) -> str:
    results, extra = res["results"], res["extra"]
    drill, hand = results["drill"], results["hand"]
    dx, hx = extra["drill"], extra["hand"]
    pg, tree = ctx["pg"], ctx["summary"]
    out = [*common.header("bench_drill.py", argv, machine, load)]
    out += [f"### Stack: PostgreSQL {pg['size']} ({pg['database_size'] / 1e6:.0f} MB), Redis "
            f"{ctx['keys']:,} keys, files {tree['size']} ({tree['files']:,} files, {tree['bytes'] / 1e6:.0f} MB)", "",
            f"One backup of the three (`python -m backupkit backup --config $W/backupkit.toml`, zstd -3) to "
            f"`s3://{BUCKET}/{PREFIX}` on a moto server (127.0.0.1, its own process) took {ctx['backup_s']:.1f} s; "
            "stored: " + ", ".join(f"{a['name']} {a['stored_size'] / 1e6:.1f} MB" for a in ctx["artifacts"])
            + f". `$W` = {ctx['out_note']}. The hand path downloads with {ctx['download_note']}; its "
            "PostgreSQL target is the source's running cluster (a fresh database per round), the drill's is "
            "a temporary cluster it starts itself. CPU = user + sys of the measured processes (the drill's: "
            "its process tree, with pg_restore and the temporary redis-server); PostgreSQL server CPU (the "
            "backends' COPY and index builds) apart.", "",
            "| round | first | drill wall s | drill record `seconds` | drill CPU s | + its cluster's CPU s "
            "| hand wall s | hand CPU s | + server CPU s | wall ratio | CPU ratio (with servers) |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    wall_ratio = common.per_round(drill, hand)
    cpu_ratio = [(d.cpu + e["cluster_cpu"]) / (h.cpu + f["server_cpu"]) for d, e, h, f in zip(drill, dx, hand, hx)]
    for i, (d, e, h, f) in enumerate(zip(drill, dx, hand, hx)):
        out.append(f"| {i + 1} | {'drill' if i % 2 == 0 else 'hand'} | {d.wall:.2f} | {e['record']['seconds']:.2f} | "
                   f"{d.cpu:.2f} | {e['cluster_cpu']:.2f} | {h.wall:.2f} | {h.cpu:.2f} | {f['server_cpu']:.2f} | "
                   f"{wall_ratio[i]:.3f} | {cpu_ratio[i]:.3f} |")
    out.append(f"| median | | {_med([d.wall for d in drill]):.2f} | {_med([e['record']['seconds'] for e in dx]):.2f} | "
               f"{_med([d.cpu for d in drill]):.2f} | {_med([e['cluster_cpu'] for e in dx]):.2f} | "
               f"{_med([h.wall for h in hand]):.2f} | {_med([h.cpu for h in hand]):.2f} | "
               f"{_med([f['server_cpu'] for f in hx]):.2f} | **{_med(wall_ratio):.3f}** | {_med(cpu_ratio):.3f} |")
    out.append("")
    med = _med(wall_ratio)
    rec_ratio = [e["record"]["seconds"] / h.wall for e, h in zip(dx, hand)]
    out.append(f"- **drill / hand path, wall time**: per round {common.fmt_ratios(wall_ratio)}; median "
               f"**{med:.3f}**; target <= {TARGET_RATIO}: {common.verdict(med <= TARGET_RATIO)}. The record's "
               f"`seconds` (the measured restore time, without the interpreter's start, the guardian and the "
               f"record's upload) / hand path: {common.fmt_ratios(rec_ratio)}")
    names = list(dx[0]["record"]["artifacts"])
    out.append("- drill, per artifact (median s of the record; restored side by side): " + ", ".join(
        f"{n} {_med([e['record']['artifacts'][n]['seconds'] for e in dx]):.2f}" for n in names))
    threads = [e["thread_cpu"] for e in dx]
    width = max(len(t) for t in threads)
    out.append(f"- drill CPU (median): Python {_med([e['python_cpu'] for e in dx]):.2f} s (per thread, main first, "
               "in order of creation: " + ", ".join(
                   f"{_med([t[i] for t in threads if len(t) > i]):.2f}" for i in range(width) if
                   _med([t[i] for t in threads if len(t) > i]) >= 0.05) + "; threads under 0.05 s left out); "
               f"peak RSS of the Python process {max(e['python_hwm_kib'] for e in dx) / 1024:.0f} MB")
    if results.get("baseline"):
        base, bx = results["baseline"], extra["baseline"]
        ratio = common.per_round(base, hand)
        out.append(f"- **the same drill with backupkit {ctx['baseline']}** (`--baseline`, in the same rounds): wall s "
                   + ", ".join(f"{m.wall:.2f}" for m in base) + f" (median {_med([m.wall for m in base]):.2f}); "
                   f"record `seconds` median {_med([e['record']['seconds'] for e in bx]):.2f}; / hand path per round "
                   f"{common.fmt_ratios(ratio)}, median {_med(ratio):.3f}; drill now / then per round "
                   f"{common.fmt_ratios(common.per_round(drill, base))}; "
                   f"CPU s median {_med([m.cpu for m in base]):.2f} "
                   f"+ its cluster {_med([e['cluster_cpu'] for e in bx]):.2f}; per artifact " + ", ".join(
                       f"{n} {_med([e['record']['artifacts'][n]['seconds'] for e in bx]):.2f}"
                       for n in bx[0]["record"]["artifacts"]))
    steps = list(hx[0]["steps"])
    out.append("- hand path, per step (median wall s / CPU s): " + "; ".join(
        f"{n} {_med([f['steps'][n]['wall'] for f in hx]):.2f} / {_med([f['steps'][n]['cpu'] for f in hx]):.2f}"
        for n in steps))
    checks = dx[0]["record"]["artifacts"]
    out.append("- the drill's checks (its record): " + "; ".join(
        f"{n}: " + ", ".join(f"{k} {v}" for k, v in a["checks"].items()) for n, a in checks.items()))
    out += [f"- hand path check: {c}" for c in res["checks"]]
    return "\n".join(out).rstrip() + "\n"


# -- main -----------------------------------------------------------------------------------------
def parse(argv: list[str]) -> argparse.Namespace:
    parser = common.tree_parser(__doc__ or "")
    parser.add_argument("--quick", action="store_true",
                        help=f"small sizes: tree {QUICK['size']}, database {QUICK['pg_size']}, {QUICK['keys']:,} keys, "
                             f"{QUICK['rounds']} rounds (explicit options win)")
    parser.add_argument("--pg-size", default=None, help="PostgreSQL database size (default 1G)")
    parser.add_argument("--keys", type=int, default=None, help="Redis keys of ~100 bytes (default 1000000)")
    parser.add_argument("--download", choices=("auto", "aws", "boto3", "aws-parts", "boto3-parts"), default="auto",
                        help="the hand path's download: aws s3 cp (auto: when installed) or boto3 download_file, "
                             "in one GET per object; -parts: in 8 MiB ranged GETs, the tools' default (slow on moto)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also drill with backupkit as committed at REV in every round (before / after)")
    parser.add_argument("--out", type=Path, help="servers, scratch and the hand path's files (default "
                                                 "/dev/shm/bkbench-drill when it has room)")
    for action in parser._actions:
        if action.dest in ("size", "rounds"):
            action.default = None
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else {"size": "1G", "pg_size": "1G", "keys": 1_000_000, "rounds": 3}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    backupkit = common.use_rev(args)
    common.check_tools(argparse.ArgumentParser(), ("zstd", "tar", "redis-server", "diff"), args.python)
    from backupkit.sources.postgres.cluster import TempCluster
    from backupkit.sources.postgres.tools import find_program, server_bin_dir
    from backupkit.sources.redis.server import TempRedis

    pg_size, tree_size = make_tree.parse_size(args.pg_size), make_tree.parse_size(args.size)
    out = args.out
    if out is None:
        shm = Path("/dev/shm")
        need = 4 * pg_size + 3 * tree_size + args.keys * 1000 + (2 << 30)
        out = shm / "bkbench-drill" if shm.is_dir() and shutil.disk_usage(shm).free > need else \
            args.work / "scratch-drill"
    tmpfs = str(out).startswith("/dev/shm")
    out_note = (f"`{out}` ({'tmpfs' if tmpfs else 'disk'}: the source cluster and redis-server, the drill's "
                "scratch (its `TMPDIR`), the hand path's downloads and restores)")
    tree, summary = common.ensure_tree(args.work, args.size, args.seed)
    print(f"tree {tree}: {summary['files']} files, {summary['bytes'] / 1e6:.0f} MB", file=sys.stderr)
    _rm(out)
    servers, drill_tmp = out / "servers", out / "tmp"
    for d in (out, servers, drill_tmp):
        d.mkdir(parents=True)
        d.chmod(0o755)  # the postgres user enters the clusters' directories
    tempfile.tempdir = str(servers)  # TempCluster and TempRedis of this process
    how = downloader(args.download, args.python)
    download_note = ("`aws s3 cp` (" + common.tool_version([how[1][0], "--version"]) + ")" if how[0].startswith("aws")
                     else "boto3's `download_file` in a Python process (what `aws s3 cp` does)") + (
        ", in 8 MiB ranged GETs (the default)" if how[0].endswith("-parts") else
        f", one GET per object (`s3.multipart_threshold` = {ONE_GET >> 30} GiB: moto 5.2.5 answers the ranged "
        "GETs of a multipart download slowly, 89.6 s for the 728 MB files artifact against 4.5 s in one GET)")
    load0 = os.getloadavg()
    machine = {**_machine(), "postgresql": common.tool_version([find_program("pg_restore", None), "--version"]),
               "redis": common.tool_version(["redis-server", "--version"]), "backupkit": backupkit}
    moto = Moto(args.python)
    try:
        env = s3_env(moto)
        moto.reset(env, args.python)
        with TempCluster() as cluster, TempRedis(args=("--enable-debug-command", "local")) as source:
            print(f"cluster on port {cluster.port}: generating {args.pg_size}", file=sys.stderr)
            pg = bench_postgres.generate(cluster, pg_size)
            space = bench_redis.populate(source, args.keys, 1)
            config = out / "backupkit.toml"
            write_config(config, tree, cluster.url(bench_postgres.DB), source.url)
            warm(tree)
            t0 = time.perf_counter()
            subprocess.run([args.python, "-m", "backupkit", "backup", "--config", str(config)], env=env, cwd=out,
                           check=True, stdout=subprocess.DEVNULL)
            backup_s = time.perf_counter() - t0
            s3 = s3_client(moto)
            artifacts = stored_artifacts(s3)
            print(f"backup in {backup_s:.1f} s: " + ", ".join(f"{a['name']} {a['stored_size'] / 1e6:.1f} MB"
                                                              for a in artifacts), file=sys.stderr)
            base = cluster.url().rsplit("/", 1)[0]
            ctx = {"python": args.python, "config": config, "out": out, "s3": s3, "env": env,
                   "drill_env": {**env, "TMPDIR": str(drill_tmp)}, "drill_tmp": drill_tmp, "cluster": cluster,
                   "download": how, "download_env": download_env(how, env, out),
                   "artifacts": artifacts, "keyspace": space, "pg": pg, "tree": tree,
                   "summary": summary, "keys": args.keys, "backup_s": backup_s, "out_note": out_note,
                   "download_note": download_note, "pg_restore": find_program("pg_restore", None),
                   "createdb": str(Path(find_program("pg_restore", None)).with_name("createdb")),
                   "fingerprint": bench_postgres.fingerprint(cluster.url(bench_postgres.DB))
                   if not args.no_verify else None,
                   "stored": {a["name"]: a["stored_size"] for a in artifacts},
                   "display": {str(out): "$W", base: "$PG", moto.url: "$S3", str(tree.parent): "$T"}}
            if args.baseline:
                where, commit = export_rev(args.baseline, args.work, args.python)
                path = os.pathsep.join(p for p in (where, os.environ.get("PYTHONPATH", "")) if p)
                ctx["baseline_env"] = {**ctx["drill_env"], "PYTHONPATH": path}
                ctx["baseline"] = f"commit {commit}"
            if not Path(ctx["createdb"]).exists():
                ctx["createdb"] = str(server_bin_dir() / "createdb")
            res = bench(ctx, args.rounds, not args.no_verify)
    finally:
        moto.stop()
    _rm(out)
    load = (load0, os.getloadavg())
    text = report(ctx, res, machine, argv, load)
    common.publish(args, text, "drill", "## Restore drill of a whole stack", machine, argv, load, res["results"],
                   extra=res["extra"],
                   database=pg, keyspace=space, tree=summary, backup_seconds=backup_s,
                   stored=ctx["stored"], checks=res["checks"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
