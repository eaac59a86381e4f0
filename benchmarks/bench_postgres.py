"""PostgreSQL backup and restore: backupkit's postgres source against ``pg_dump | zstd``.

Starts a throwaway cluster (``backupkit.sources.postgres.cluster.TempCluster``: the
server runs as the ``postgres`` user, its data directory under the system's temp
dir, ``fsync`` off), generates a deterministic database of ``--size`` bytes server-side
(``generate_series``: three tables with text, numeric, jsonb, bytea and timestamptz
columns, plus indexes), then runs, per round, interleaved and in alternating order:

* backup:  ``python -m backupkit backup --config CONFIG`` (the postgres source, zstd
  level 3, a local sink) against ``pg_dump -Fc -Z0 -d URL | zstd -3 -T1 -q -o OUT``
* restore: ``python -m backupkit restore latest --config CONFIG --to URL`` (which also
  checks every table's row count) against ``zstd -d -c OUT | pg_restore --exit-on-error
  -d URL``, each into a fresh empty database, dropped again at the end of the round.

Every process runs under GNU ``time`` (``bench_filesystem.run``): wall time, user + sys
CPU and peak RSS of each; every exit status is checked, as ``set -o pipefail`` would.
The server's own CPU time per step (its backends, reaped by the postmaster) is read from
``/proc``. Ratios are backupkit / pipeline per round, then the median. The sink and the
pipeline's file go to ``/dev/shm`` when it has room, so the disk is not what is measured.
In the first round both restored databases are compared with the original (row count and
a hash of every row of every table, and the index definitions).

    python benchmarks/bench_postgres.py --size 100M --rounds 1   # a quick run, ~1 minute
    python benchmarks/bench_postgres.py --size 1G                # 3 rounds, ~6 minutes

Targets: backup and restore each at most 1.1x the pipeline's wall time; peak RSS of the
backupkit process at most 120 MB. Rewrites the ``bench-postgres`` block of
docs/performance.md.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import make_tree
from bench_filesystem import Measured, _machine, _rm, run, stored_bytes

TARGET_RATIO = 1.1
TARGET_RSS_MB = 120
DB = "bench"
LABELS = {
    "bk_backup": ("backup", "backupkit"),
    "ref_backup": ("backup", "pg_dump + zstd"),
    "bk_restore": ("restore", "backupkit"),
    "ref_restore": ("restore", "zstd + pg_restore"),
}
#: Server settings for a steadier measurement (set with ALTER SYSTEM, then reloaded).
SETTINGS = {"autovacuum": "off", "max_wal_size": "16GB", "checkpoint_timeout": "1h"}

# -- the database ---------------------------------------------------------------------------------
#: (table, share of the size, bytes per row with its indexes as measured, DDL, INSERT, indexes);
#: ``{n}`` is the row count. Everything is a function of the row number: deterministic.
TABLES: list[tuple[str, float, float, str, str, list[str]]] = [
    ("orders", 0.40, 194,
     "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id integer NOT NULL, "
     "amount numeric(12,2) NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL, note text)",
     "INSERT INTO orders SELECT i, (i * 7919) % 100000, ((i * 104729) % 1000000) / 100.0, "
     "(ARRAY['new','paid','shipped','delivered','returned'])[1 + i % 5], "
     "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', "
     "CASE WHEN i % 10 = 0 THEN NULL ELSE 'order ' || i || ' for customer ' || (i * 7919) % 100000 "
     "|| ': ' || md5(i::text) END FROM generate_series(1::bigint, {n}) AS i",
     ["CREATE INDEX orders_customer ON orders (customer_id)",
      "CREATE INDEX orders_created ON orders (created_at)"]),
    ("events", 0.35, 320,
     "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL, kind text NOT NULL, "
     "payload jsonb NOT NULL)",
     "INSERT INTO events SELECT i, timestamptz '2024-01-01 00:00:00+00' + i * interval '250 ms', "
     "(ARRAY['click','view','purchase','signup','logout','error'])[1 + i % 6], "
     "jsonb_build_object('user', i % 50000, 'session', md5((i / 20)::text), 'value', (i % 10000) / 100.0, "
     "'ok', i % 3 = 0, 'tags', jsonb_build_array('t' || i % 17, 't' || i % 23), "
     "'agent', 'Mozilla/5.0 (X11; Linux x86_64) bench/' || i % 40) FROM generate_series(1::bigint, {n}) AS i",
     ["CREATE INDEX events_at ON events (at)",
      "CREATE INDEX events_user ON events ((payload ->> 'user'))"]),
    ("attachments", 0.25, 508,
     "CREATE TABLE attachments (id integer PRIMARY KEY, name text NOT NULL, "
     "created_at timestamptz NOT NULL, data bytea NOT NULL)",
     "INSERT INTO attachments SELECT i, 'file-' || i || '.bin', "
     "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute', "
     "sha256(int8send(i)) || sha256(int8send(-i)) || sha512(int8send(i)) || "
     "decode(repeat('00', 128), 'hex') || convert_to(repeat('chunk ' || i % 1000 || ';', 12), 'UTF8') "
     "FROM generate_series(1::bigint, {n}) AS i",
     ["CREATE INDEX attachments_name ON attachments (name)"]),
]


def connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def generate(cluster: Any, size: int) -> dict[str, Any]:
    """Create database ``bench`` of about *size* bytes; the three tables load in parallel."""
    t0 = time.perf_counter()
    with connect(cluster.url()) as admin:
        for name, value in SETTINGS.items():
            admin.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        admin.execute("SELECT pg_reload_conf()")
        admin.execute(f"CREATE DATABASE {DB} TEMPLATE template0")
    rows = {name: max(1000, int(size * share / width)) for name, share, width, *_ in TABLES}
    errors: list[BaseException] = []

    def load(ddl: str, insert: str, indexes: list[str], n: int) -> None:
        try:
            with connect(cluster.url(DB)) as db:
                db.execute("SET timezone = 'UTC'")
                db.execute(ddl)
                db.execute(insert.format(n=n))
                for index in indexes:
                    db.execute(index)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(ddl, insert, indexes, rows[name]))
               for name, _share, _width, ddl, insert, indexes in TABLES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    with connect(cluster.url(DB)) as db:
        db.execute("VACUUM (FREEZE, ANALYZE)")  # hint bits set now, not by the first dump
        db.execute("CHECKPOINT")
        (db_size,) = db.execute(f"SELECT pg_database_size('{DB}')").fetchone()
        tables = {name: db.execute(f"SELECT pg_total_relation_size('{name}'), "
                                   f"pg_relation_size('{name}')").fetchone() for name in rows}
        (version,) = db.execute("SELECT current_setting('server_version')").fetchone()
    return {"size": make_tree.format_size(size), "database_size": int(db_size), "rows": rows,
            "tables": {k: {"total": int(v[0]), "heap": int(v[1])} for k, v in tables.items()},
            "server_version": version, "seconds": round(time.perf_counter() - t0, 1)}


def fingerprint(url: str) -> dict[str, Any]:
    """Row count and a hash of every row of each table, and the index definitions."""
    with connect(url) as db:
        out: dict[str, Any] = {
            name: tuple(db.execute(f"SELECT count(*), sum(hashtext(t::text)::bigint) FROM {name} t").fetchone())
            for name, *_ in TABLES
        }
        out["indexes"] = [r[0] for r in db.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1").fetchall()]
    return out


# -- measuring ------------------------------------------------------------------------------------
def server_cpu(cluster: Any) -> float:
    """CPU seconds the server used so far: the postmaster, its reaped children (every
    backend that has exited) and the children still running."""
    tick = os.sysconf("SC_CLK_TCK")
    pid = int((cluster.data / "postmaster.pid").read_text().split()[0])

    def fields(p: int | str) -> list[str]:
        return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()

    f = fields(pid)  # after the name: state ppid ... utime(11) stime(12) cutime(13) cstime(14)
    total = sum(int(x) for x in f[11:15])
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry != str(pid):
            try:
                c = fields(entry)
            except OSError:
                continue
            if c[1] == str(pid):
                total += int(c[11]) + int(c[12])
    return total / tick


def measure(step: dict[str, list[list[str]]], r: int, rounds: int, results: dict[str, list[Measured]],
            server: dict[str, list[float]], cluster: Any, *, cwd: Path, display: dict[str, str]) -> None:
    """The commands of one step, in reverse order every other round, each after a CHECKPOINT
    (so none writes back the last one's buffers); the server's CPU time around each."""
    for key in (list(step) if r % 2 == 0 else list(reversed(step))):
        with connect(cluster.url()) as admin:
            admin.execute("CHECKPOINT")
        before = server_cpu(cluster)
        m = run(key, step[key], cwd=cwd, display=display)
        server[key].append(server_cpu(cluster) - before)
        results[key].append(m)
        procs = ", ".join(f"{n} {c:.2f} s {rss / 1024:.0f} MB" for n, c, rss in m.procs)
        print(f"  round {r + 1}/{rounds} {key:<12} {m.wall:7.2f} s  cpu {m.cpu:6.2f} s ({procs}); "
              f"server cpu {server[key][-1]:.2f} s", file=sys.stderr)


def bench(cluster: Any, out_dir: Path, rounds: int, *, python: str, pg_dump: str, pg_restore: str,
          verify: bool) -> dict[str, Any]:
    _rm(out_dir)
    out_dir.mkdir(parents=True)
    base = cluster.url().rsplit("/", 1)[0]
    display = {str(out_dir): "$W", base: "$PG"}
    sink, dump = out_dir / "sink", out_dir / f"{DB}.dump.zst"
    config = out_dir / "backupkit.toml"
    config.write_text(
        f'[sets.bench]\nsink = "{sink}"\ntransforms = [{{ type = "zstd", level = 3 }}]\n'
        f'[[sets.bench.sources]]\ntype = "postgres"\nname = "db"\nurl = "{cluster.url(DB)}"\n'
    )
    results: dict[str, list[Measured]] = {k: [] for k in LABELS}
    server: dict[str, list[float]] = {k: [] for k in LABELS}
    stored: dict[str, int] = {}
    checks: list[str] = []
    original = fingerprint(cluster.url(DB)) if verify else None
    targets = {"bk_restore": "restore_bk", "ref_restore": "restore_ref"}
    for r in range(rounds):
        backup = {
            "bk_backup": [[python, "-m", "backupkit", "backup", "--config", str(config)]],
            "ref_backup": [[pg_dump, "-Fc", "-Z0", "-d", cluster.url(DB)],
                           ["zstd", "-3", "-T1", "-q", "-o", str(dump)]],
        }
        restore = {
            "bk_restore": [[python, "-m", "backupkit", "restore", "latest", "--config", str(config),
                            "--to", cluster.url(targets["bk_restore"])]],
            "ref_restore": [["zstd", "-d", "-c", str(dump)],
                            [pg_restore, "--exit-on-error", "-d", cluster.url(targets["ref_restore"])]],
        }
        measure(backup, r, rounds, results, server, cluster, cwd=out_dir, display=display)
        with connect(cluster.url()) as admin:  # fresh, empty, not timed
            for name in targets.values():
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        measure(restore, r, rounds, results, server, cluster, cwd=out_dir, display=display)
        stored["backupkit"] = stored_bytes(sink, "**/*.manifest.json")
        stored["pipeline"] = dump.stat().st_size
        if original is not None and r == 0:
            for key, name in targets.items():
                got = fingerprint(cluster.url(name))
                same = got == original
                checks.append(f"{LABELS[key][1]} restore: " + (
                    "identical (row count and row hash of every table, index definitions)" if same
                    else f"DIFFERENT: {got} != {original}"))
                print(f"  verify {checks[-1]}", file=sys.stderr)
        with connect(cluster.url()) as admin:
            for name in targets.values():
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        _rm(sink, dump)
    _rm(out_dir)
    return {"results": results, "server": server, "stored": stored, "checks": checks}


# -- reporting ------------------------------------------------------------------------------------
def walls(ms: Sequence[Measured]) -> str:
    return ", ".join(f"{m.wall:.2f}" for m in ms)


def report(db: dict[str, Any], res: dict[str, Any], machine: dict[str, str], argv: Sequence[str],
           load: tuple[Any, Any], out_note: str) -> str:
    results, server, stored = res["results"], res["server"], res["stored"]
    size = db["database_size"]
    out = [*common.header("bench_postgres.py", argv, machine, load)]
    tables = ", ".join(f"{k} {v:,} rows ({db['tables'][k]['total'] / 1e6:.0f} MB with indexes)"
                       for k, v in db["rows"].items())
    out += [f"### Database {db['size']}: pg_database_size {size / 1e6:.0f} MB", "",
            f"Tables {tables}; generated in {db['seconds']} s. `$PG` = the throwaway cluster "
            f"(`postgresql://postgres@127.0.0.1:PORT`, PostgreSQL {db['server_version']}, fsync off, "
            + ", ".join(f"{k} {v}" for k, v in SETTINGS.items()) + f"); `$W` = {out_note}. "
            "Each restore goes into a fresh empty database. MB/s = pg_database_size per median "
            "second. CPU = user + sys of the measured processes (backupkit's includes its "
            "pg_dump / pg_restore child); server CPU = the PostgreSQL server's, not in CPU.", ""]
    extra = {k: f"{statistics.median(v):.2f}" for k, v in server.items() if v}
    out += common.rows(results, LABELS, size, extra=extra, extra_head="server CPU s (median)")
    out.append("")
    for step, program in (("backup", "pg_dump"), ("restore", "pg_restore")):
        bk, ref = results[f"bk_{step}"], results[f"ref_{step}"]
        wall = common.per_round(bk, ref)
        cpu = common.per_round(bk, ref, "cpu")
        med = statistics.median(wall)
        best = min(m.wall for m in bk) / min(m.wall for m in ref)
        out.append(f"- **{step}, backupkit / pipeline, wall time**: per round {common.fmt_ratios(wall)}; "
                   f"median **{med:.3f}** (best / best {best:.3f}); target <= {TARGET_RATIO}: "
                   f"{common.verdict(med <= TARGET_RATIO)}. Wall s, backupkit {walls(bk)}; pipeline "
                   f"{walls(ref)}. CPU ratio per round {common.fmt_ratios(cpu)}")
        # backupkit's own CPU: its process tree minus its child's, which the pipeline measures alone
        own = [b.cpu - next(c for n, c, _ in f.procs if n == program) for b, f in zip(bk, ref)]
        parts = " + ".join(f"{n} {statistics.median(c for p in ref for pn, c, _ in p.procs if pn == n):.2f} s"
                           for n, *_ in ref[0].procs)
        out.append(f"  - CPU (median): backupkit {statistics.median(m.cpu for m in bk):.2f} s, of which "
                   f"Python ~{statistics.median(own):.2f} s (backupkit's CPU less the same round's {program} "
                   f"in the pipeline); pipeline {parts}; server {statistics.median(server[f'bk_{step}']):.2f} s "
                   f"against {statistics.median(server[f'ref_{step}']):.2f} s")
    bk_rss = max(m.rss_mb for k in ("bk_backup", "bk_restore") for m in results[k])
    pipe = "; ".join(f"{LABELS[k][1]}: " + " / ".join(
        f"{n} {max(p.procs[i][2] for p in results[k]) / 1024:.0f}" for i, (n, *_r) in enumerate(results[k][0].procs))
        for k in ("ref_backup", "ref_restore"))
    out.append(f"- **peak RSS of the backupkit process**: {bk_rss:.0f} MB (backup "
               f"{max(m.rss_mb for m in results['bk_backup']):.0f}, restore "
               f"{max(m.rss_mb for m in results['bk_restore']):.0f}; GNU time's figure, the largest of "
               f"the process and its pg_dump / pg_restore child); target <= {TARGET_RSS_MB} MB: "
               f"{common.verdict(bk_rss <= TARGET_RSS_MB)}. Pipeline, MB: {pipe}")
    out.append(f"- stored: backupkit {stored['backupkit'] / 1e6:.1f} MB (every artifact of the backup), "
               f"pipeline {stored['pipeline'] / 1e6:.1f} MB")
    out += [f"- round trip check, {check}" for check in res["checks"]]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.tree_parser(__doc__ or "")
    parser.add_argument("--out", type=Path,
                        help="sink and pipeline output (default /dev/shm/bkbench-pg when it has room "
                             "for twice --size, else WORK/scratch-postgres)")
    args = parser.parse_args(argv)
    backupkit = common.use_rev(args)
    common.check_tools(parser, ("zstd",), args.python)
    from backupkit.sources.postgres.cluster import TempCluster
    from backupkit.sources.postgres.tools import find_program

    size = make_tree.parse_size(args.size)
    out_dir = args.out
    if out_dir is None:
        shm = Path("/dev/shm")
        room = shm.is_dir() and shutil.disk_usage(shm).free > 2 * size + (1 << 30)
        out_dir = shm / "bkbench-pg" if room else args.work / "scratch-postgres"
    out_note = f"`{out_dir}` ({'tmpfs' if str(out_dir).startswith('/dev/shm') else 'disk'}: sink and pipeline file)"
    pg_dump, pg_restore = find_program("pg_dump", None), find_program("pg_restore", None)

    load0 = os.getloadavg()
    machine = {**_machine(), "postgresql": common.tool_version([pg_dump, "--version"]) + f" ({pg_dump})",
               "backupkit": backupkit}
    machine.pop("tar", None)
    with TempCluster() as cluster:
        print(f"cluster {cluster.data} on port {cluster.port}; generating {args.size}", file=sys.stderr)
        db = generate(cluster, size)
        print(f"database: {db}", file=sys.stderr)
        result = bench(cluster, out_dir, args.rounds, python=args.python, pg_dump=pg_dump,
                       pg_restore=pg_restore, verify=not args.no_verify)
    load = (load0, os.getloadavg())
    text = report(db, result, machine, argv, load, out_note)
    common.publish(args, text, "postgres", "## PostgreSQL backup and restore", machine, argv, load,
                   result["results"], database=db, server_cpu=result["server"], stored=result["stored"],
                   checks=result["checks"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
