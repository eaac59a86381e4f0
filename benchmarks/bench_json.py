"""Whole-database JSON export: backupkit's json source against ``psql \\copy row_to_json | gzip``.

Starts a throwaway cluster and generates the same deterministic database as
``bench_postgres.py`` (its ``generate``: ``orders``, ``events`` with jsonb, ``attachments``
with bytea), then runs, per round, interleaved and in alternating order:

* backup: ``python -m backupkit backup --config CONFIG`` (one ``json`` source with the
  database's URL, ``compress = "gzip"``: level 6, a local sink) against, for every table
  one after another in one ``bash -o pipefail`` run, ``psql -c "\\copy (select
  row_to_json(t) from TABLE t) to stdout" | gzip -6 > TABLE.json.gz``;
* restore (``--restore-rounds``, default every round): ``python -m backupkit restore latest
  --config CONFIG --to URL --create`` into a fresh empty database (created just before, not
  timed). There is no reference: ``psql`` has nothing that loads the pipeline's files back.

Every process runs under GNU ``time`` (``bench_filesystem.run``): wall time, user + sys CPU
and peak RSS; inside the pipeline each ``psql`` and ``gzip`` runs under GNU time as well, so
its CPU splits into the two. The server's CPU per step comes from ``/proc``
(``bench_postgres.server_cpu``). Every backup's header (the first line of the document)
must give each table's ``count(*)``; in the first round the pipeline's files are counted
too (a line per row), the restored database is compared with the original (row count and a
hash of every row per table), and the stored export is decompressed and compressed again
with zlib level 6 in a child process (``--no-breakdown`` skips it): the document's size
and what level-6 DEFLATE alone costs for it.

    python benchmarks/bench_json.py --size 100M --rounds 1   # a quick run, ~1 minute
    python benchmarks/bench_json.py --size 1G                # 3 rounds

Targets: backup at most 1.5x the pipeline's wall time; peak RSS of the backupkit process at
most 150 MB. Rewrites the ``bench-json`` block of docs/performance.md.
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import make_tree
from bench_filesystem import GNU_TIME, Measured, _machine, _rm, stored_bytes
from bench_postgres import DB, SETTINGS, TABLES, connect, generate, measure

TARGET_RATIO = 1.5
TARGET_RSS_MB = 150
RESTORED = "restore_json"
LABELS = {
    "bk_backup": ("backup", "backupkit (json, gzip 6)"),
    "ref_backup": ("backup", "psql row_to_json + gzip -6"),
    "bk_restore": ("restore", "backupkit (--create)"),
}


def table_names() -> list[str]:
    return [name for name, *_ in TABLES]


def counts(url: str) -> dict[str, int]:
    with connect(url) as db:
        return {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in table_names()}


def row_hashes(url: str) -> dict[str, tuple[int, int]]:
    """Row count and a hash of every row, per table (index definitions are not part of an export)."""
    with connect(url) as db:
        return {t: tuple(db.execute(f"SELECT count(*), sum(hashtext(x::text)::bigint) FROM {t} x").fetchone())
                for t in table_names()}


def header_of(sink: Path) -> dict[str, Any]:
    """The header (first line) of the newest export in *sink*."""
    exports = sorted(sink.glob("**/*.json.gz"), key=lambda p: p.stat().st_mtime)
    if not exports:
        raise SystemExit(f"no *.json.gz export in {sink}")
    with gzip.open(exports[-1], "rt", encoding="utf-8") as fh:
        first = fh.readline().rstrip("\n")
    head_end = ',"data":['
    if not first.endswith(head_end):
        raise SystemExit(f"{exports[-1]}: the first line is not an export header")
    return dict(json.loads(first[: -len(head_end)] + "}"), _path=str(exports[-1]))


def ref_script(psql: str, url: str, ref_dir: Path, timing: dict[str, Path]) -> str:
    """One bash script: every table's ``\\copy (select row_to_json ...)`` piped to ``gzip -6``,
    one after another, each process under GNU time (appending to *timing*'s files)."""
    q = shlex.quote
    parts = []
    for table in table_names():
        copy = f"\\copy (select row_to_json(t) from {table} t) to stdout"
        wrap = {k: (f"{GNU_TIME} -a -o {q(str(p))} -f '%M %U %S' " if GNU_TIME else "") for k, p in timing.items()}
        parts.append(f"{wrap['psql']}{q(psql)} -X -q -v ON_ERROR_STOP=1 -d {q(url)} -c {q(copy)} "
                     f"| {wrap['gzip']}gzip -6 > {q(str(ref_dir / f'{table}.json.gz'))}")
    return "set -e\n" + "\n".join(parts) + "\n"


def read_timing(timing: dict[str, Path]) -> dict[str, tuple[float, int]]:
    """Per program: CPU seconds summed over the tables, the largest peak RSS (KiB)."""
    out = {}
    for name, path in timing.items():
        cpu, rss = 0.0, 0
        for line in path.read_text().splitlines() if path.exists() else []:
            fields = line.split()
            if len(fields) >= 3 and not fields[0].startswith("Command"):
                rss, cpu = max(rss, int(fields[-3])), cpu + float(fields[-2]) + float(fields[-1])
        out[name] = (cpu, rss)
    return out


def breakdown(export: str, python: str) -> dict[str, Any]:
    """In a child process: the export decompressed, then compressed again by zlib at level 6
    in 1 MiB pieces (gzip container), each part's CPU time on its own."""
    code = r"""
import gzip, json, sys, time, zlib
dec = enc = 0.0
raw = out = 0
c = zlib.compressobj(6, zlib.DEFLATED, 31)
with gzip.open(sys.argv[1], "rb") as fh:
    while True:
        t = time.process_time(); chunk = fh.read(1 << 20); dec += time.process_time() - t
        if not chunk:
            break
        raw += len(chunk)
        t = time.process_time(); out += len(c.compress(chunk)); enc += time.process_time() - t
t = time.process_time(); out += len(c.flush()); enc += time.process_time() - t
print(json.dumps({"raw_bytes": raw, "zlib6_bytes": out, "zlib6_cpu": round(enc, 2), "gunzip_cpu": round(dec, 2)}))
"""
    res = subprocess.run([python, "-c", code, export], capture_output=True, text=True, check=True)
    return dict(json.loads(res.stdout))


def bench(cluster: Any, out_dir: Path, rounds: int, restore_rounds: int, *, python: str, psql: str,
          verify: bool, do_breakdown: bool) -> dict[str, Any]:
    _rm(out_dir)
    out_dir.mkdir(parents=True)
    base = cluster.url().rsplit("/", 1)[0]
    display = {str(out_dir): "$W", base: "$PG"}
    sink, ref_dir = out_dir / "sink", out_dir / "ref"
    config = out_dir / "backupkit.toml"
    config.write_text(f'[sets.bench]\nsink = "{sink}"\ncompress = "gzip"\n'
                      f'[[sets.bench.sources]]\ntype = "json"\nurl = "{cluster.url(DB)}"\n')
    timing = {"psql": out_dir / "psql.time", "gzip": out_dir / "gzip.time"}
    script = ref_script(psql, cluster.url(DB), ref_dir, timing)
    shown = (f"for T in {' '.join(table_names())}: psql -X -d $PG/{DB} -c \"\\copy (select row_to_json(t) "
             f"from $T t) to stdout\" | gzip -6 > $W/ref/$T.json.gz  (bash -o pipefail, one after another)")
    results: dict[str, list[Measured]] = {k: [] for k in LABELS}
    server: dict[str, list[float]] = {k: [] for k in LABELS}
    parts: list[dict[str, tuple[float, int]]] = []
    stored: dict[str, int] = {}
    checks: list[str] = []
    extra: dict[str, Any] = {}
    want = counts(cluster.url(DB))
    original = row_hashes(cluster.url(DB)) if verify else None
    for r in range(rounds):
        _rm(sink, ref_dir)
        ref_dir.mkdir()
        for p in timing.values():
            p.write_text("")
        backup = {
            "bk_backup": [[python, "-m", "backupkit", "backup", "--config", str(config)]],
            "ref_backup": [["bash", "-o", "pipefail", "-c", script]],
        }
        measure(backup, r, rounds, results, server, cluster, cwd=out_dir, display=display)
        results["ref_backup"][-1].shell = shown
        parts.append(read_timing(timing))
        print(f"  round {r + 1}/{rounds} pipeline parts: " + ", ".join(
            f"{n} {c:.2f} s {rss / 1024:.0f} MB" for n, (c, rss) in parts[-1].items()), file=sys.stderr)
        # the header of backupkit's export against the tables' count(*)
        head = header_of(sink)
        got = {t["table"]: t["row_count"] for t in head["tables"]}
        ok = got == want
        checks.append(f"round {r + 1}: header row counts " + (
            "= count(*) of every table ✅" if ok else f"DIFFER ❌: header {got}, count(*) {want}"))
        print(f"  {checks[-1]}", file=sys.stderr)
        if not ok:
            raise SystemExit(checks[-1])
        if r == 0:
            lines = {}
            for t in table_names():
                with gzip.open(ref_dir / f"{t}.json.gz", "rb") as fh:
                    lines[t] = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
            checks.append("pipeline files: one line per row of every table ✅" if lines == want
                          else f"pipeline files: line counts {lines} != count(*) {want} ❌")
            print(f"  {checks[-1]}", file=sys.stderr)
            if do_breakdown:
                extra["breakdown"] = breakdown(head["_path"], python)
                print(f"  breakdown: {extra['breakdown']}", file=sys.stderr)
        stored["backupkit"] = stored_bytes(sink, "**/*.manifest.json")
        stored["export"] = Path(head["_path"]).stat().st_size
        stored["pipeline"] = sum(p.stat().st_size for p in ref_dir.iterdir())
        if r < restore_rounds:
            with connect(cluster.url()) as admin:  # fresh, empty, not timed
                admin.execute(f"DROP DATABASE IF EXISTS {RESTORED} WITH (FORCE)")
                admin.execute(f"CREATE DATABASE {RESTORED} TEMPLATE template0")
            restore = {"bk_restore": [[python, "-m", "backupkit", "restore", "latest", "--config", str(config),
                                       "--to", cluster.url(RESTORED), "--create"]]}
            measure(restore, r, rounds, results, server, cluster, cwd=out_dir, display=display)
            if original is not None and r == 0:
                got_hash = row_hashes(cluster.url(RESTORED))
                checks.append("backupkit restore: " + (
                    "identical (row count and row hash of every table)" if got_hash == original
                    else f"DIFFERENT ❌: {got_hash} != {original}"))
                print(f"  verify {checks[-1]}", file=sys.stderr)
            with connect(cluster.url()) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {RESTORED} WITH (FORCE)")
    _rm(out_dir)
    return {"results": results, "server": server, "parts": parts, "stored": stored, "checks": checks,
            "counts": want, **extra}


# -- reporting ------------------------------------------------------------------------------------
def walls(ms: Sequence[Measured]) -> str:
    return ", ".join(f"{m.wall:.2f}" for m in ms)


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def report(db: dict[str, Any], res: dict[str, Any], machine: dict[str, str], argv: Sequence[str],
           load: tuple[Any, Any], out_note: str) -> str:
    results, server, stored, parts = res["results"], res["server"], res["stored"], res["parts"]
    size = db["database_size"]
    total_rows = sum(res["counts"].values())
    out = [*common.header("bench_json.py", argv, machine, load)]
    tables = ", ".join(f"{k} {v:,} rows ({db['tables'][k]['total'] / 1e6:.0f} MB with indexes)"
                       for k, v in db["rows"].items())
    out += [f"### Database {db['size']}: pg_database_size {size / 1e6:.0f} MB, {total_rows:,} rows", "",
            f"Tables {tables}; generated in {db['seconds']} s (`bench_postgres.py`'s database). `$PG` = the "
            f"throwaway cluster (`postgresql://postgres@127.0.0.1:PORT`, PostgreSQL {db['server_version']}, "
            "fsync off, " + ", ".join(f"{k} {v}" for k, v in SETTINGS.items()) + f"); `$W` = {out_note}. "
            "The restore goes into a fresh empty database. MB/s = pg_database_size per median second. "
            "CPU = user + sys of the measured processes; server CPU = the PostgreSQL server's "
            "(its backends), not in CPU.", ""]
    extra = {k: f"{med(v):.2f}" for k, v in server.items() if v}
    out += common.rows(results, LABELS, size, extra=extra, extra_head="server CPU s (median)")
    out.append("")
    bk, ref = results["bk_backup"], results["ref_backup"]
    wall = common.per_round(bk, ref)
    cpu = common.per_round(bk, ref, "cpu")
    ratio = med(wall)
    best = min(m.wall for m in bk) / min(m.wall for m in ref)
    out.append(f"- **backup, backupkit / pipeline, wall time**: per round {common.fmt_ratios(wall)}; median "
               f"**{ratio:.3f}** (best / best {best:.3f}); target <= {TARGET_RATIO}: "
               f"{common.verdict(ratio <= TARGET_RATIO)}. Wall s, backupkit {walls(bk)}; pipeline {walls(ref)}. "
               f"CPU ratio per round {common.fmt_ratios(cpu)}")
    psql_cpu, gzip_cpu = med([p["psql"][0] for p in parts]), med([p["gzip"][0] for p in parts])
    line = (f"  - CPU (median): backupkit {med([m.cpu for m in bk]):.2f} s (one process: the rows' "
            f"reading and encoding, zlib level 6, hashing); pipeline {med([m.cpu for m in ref]):.2f} s, of "
            f"which gzip -6 {gzip_cpu:.2f} s and psql {psql_cpu:.2f} s (bash the rest); server "
            f"{med(server['bk_backup']):.2f} s against {med(server['ref_backup']):.2f} s")
    b = res.get("breakdown")
    if b:
        line += (f". The stored export alone, in a child process: {b['raw_bytes'] / 1e6:.0f} MB of JSON "
                 f"(pipeline's row_to_json text: see stored), zlib level 6 of it {b['zlib6_cpu']:.2f} s CPU "
                 f"({b['raw_bytes'] / 1e6 / max(b['zlib6_cpu'], 1e-9):.0f} MB/s), so the rest of backupkit's "
                 f"CPU, ~{med([m.cpu for m in bk]) - b['zlib6_cpu']:.2f} s, is reading and encoding rows")
    out.append(line)
    if results["bk_restore"]:
        rs = results["bk_restore"]
        median_wall = med([m.wall for m in rs])
        out.append(f"- **restore (no target; no reference)**: wall s {walls(rs)}, median {median_wall:.2f} s = "
                   f"**{total_rows / med([m.wall for m in rs]):,.0f} rows/s**; CPU (median) backupkit "
                   f"{med([m.cpu for m in rs]):.2f} s, server {med(server['bk_restore']):.2f} s. `psql` has no "
                   "counterpart: nothing loads the pipeline's row_to_json lines back")
    rss_b = max(m.rss_mb for m in bk)
    rss_r = max((m.rss_mb for m in results["bk_restore"]), default=0.0)
    rss = max(rss_b, rss_r)
    out.append(f"- **peak RSS of the backupkit process**: {rss:.0f} MB (backup {rss_b:.0f}, restore "
               f"{rss_r:.0f}; GNU time); target <= {TARGET_RSS_MB} MB: {common.verdict(rss <= TARGET_RSS_MB)}. "
               f"Pipeline: psql {max(p['psql'][1] for p in parts) / 1024:.0f} MB, gzip "
               f"{max(p['gzip'][1] for p in parts) / 1024:.0f} MB")
    raw = f", {b['raw_bytes'] / 1e6:.0f} MB uncompressed" if b else ""
    out.append(f"- stored: backupkit {stored['backupkit'] / 1e6:.1f} MB (every artifact; the export "
               f"{stored['export'] / 1e6:.1f} MB{raw}), pipeline {stored['pipeline'] / 1e6:.1f} MB")
    out += [f"- check, {c}" for c in res["checks"]]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.tree_parser(__doc__ or "")
    parser.add_argument("--out", type=Path,
                        help="sink and pipeline output (default /dev/shm/bkbench-json when it has room "
                             "for twice --size, else WORK/scratch-json)")
    parser.add_argument("--restore-rounds", type=int, default=None,
                        help="rounds that also time a restore (default: every round)")
    parser.add_argument("--no-breakdown", action="store_true",
                        help="skip the zlib-level-6 pass over the stored export")
    args = parser.parse_args(argv)
    backupkit = common.use_rev(args)
    common.check_tools(parser, ("gzip", "bash"), args.python)
    from backupkit.sources.postgres.cluster import TempCluster
    from backupkit.sources.postgres.tools import find_program

    size = make_tree.parse_size(args.size)
    out_dir = args.out
    if out_dir is None:
        shm = Path("/dev/shm")
        room = shm.is_dir() and shutil.disk_usage(shm).free > 2 * size + (1 << 30)
        out_dir = shm / "bkbench-json" if room else args.work / "scratch-json"
    out_note = (f"`{out_dir}` ({'tmpfs' if str(out_dir).startswith('/dev/shm') else 'disk'}: the sink and "
                "the pipeline's files)")
    psql = find_program("psql", None)
    restore_rounds = args.rounds if args.restore_rounds is None else args.restore_rounds

    load0 = os.getloadavg()
    import sqlalchemy

    machine = {**_machine(), "postgresql": common.tool_version([psql, "--version"]) + f" ({psql})",
               "gzip": common.tool_version(["gzip", "--version"]), "sqlalchemy": sqlalchemy.__version__,
               "backupkit": backupkit}
    for key in ("tar", "zstd", "zstandard"):
        machine.pop(key, None)
    with TempCluster() as cluster:
        print(f"cluster {cluster.data} on port {cluster.port}; generating {args.size}", file=sys.stderr)
        db = generate(cluster, size)
        print(f"database: {db}", file=sys.stderr)
        result = bench(cluster, out_dir, args.rounds, restore_rounds, python=args.python, psql=psql,
                       verify=not args.no_verify, do_breakdown=not args.no_breakdown)
    load = (load0, os.getloadavg())
    text = report(db, result, machine, argv, load, out_note)
    common.publish(args, text, "json", "## JSON export", machine, argv, load, result["results"],
                   database=db, server_cpu=result["server"], pipeline_parts=result["parts"],
                   stored=result["stored"], checks=result["checks"], breakdown=result.get("breakdown"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
