"""Incremental backup after 1 % of the files changed: backupkit against restic.

Per round, on a fresh copy (``cp -a``) of the generated tree, so the cached tree
stays as generated:

1. full backups: ``python -m backupkit backup --source TREE --sink SINK --compress zstd``
   and ``restic -r REPO backup TREE`` (after an untimed ``restic init``);
2. a deterministic change to 1 % of the files (seeded): some rewritten in place (a
   window of up to 1 MiB), some appended to, a few only touched (mtime), a few new
   files, a few deleted;
3. incremental backups: the same backupkit command with ``--kind incremental``, and
   the same ``restic backup`` (restic finds the parent snapshot by itself);
4. ``python -m backupkit restore latest`` (full backup plus incremental), compared
   with the changed tree in the first round.

The two tools alternate which goes first from round to round; ratios are taken per
round, then the median. Wall time, CPU time and peak RSS come from
``bench_filesystem.run`` (GNU time around every process).

    python benchmarks/bench_incremental.py --size 1G          # 3 rounds, ~4 minutes

Targets: the incremental takes at most 10 % of the full backup's wall time, and
less than restic's backup of the same change.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
from bench_filesystem import Measured, _machine, _rm, interleaved, round_trip, run

TARGET_OF_FULL = 0.10
LABELS = {  # result key: (step, tool), in table order
    "bk_full": ("full backup", "backupkit"),
    "restic_full": ("full backup", "restic"),
    "bk_incr": ("incremental", "backupkit"),
    "restic_incr": ("incremental", "restic"),
    "restic_open": ("open the repository", "restic"),
    "bk_restore": ("restore full + incremental", "backupkit"),
}
ROTATE = bytes((i + 1) % 256 for i in range(256))  # new bytes, same compressibility
WINDOW = 1 << 20
KIB = 1 << 10


# -- the change ---------------------------------------------------------------------------------
def regular_files(tree: Path) -> list[str]:
    """Relative paths of the regular files (not symlinks) under *tree*, sorted."""
    out = []
    for dirpath, dirs, files in os.walk(tree):
        dirs.sort()
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                out.append(os.path.relpath(path, tree))
    return sorted(out)


def change(tree: Path, fraction: float, seed: int) -> dict[str, Any]:
    """Change *fraction* of the regular files under *tree*, the same way for the same seed.

    35 % rewritten in place (the whole file up to 1 MiB, else a 1 MiB window at a
    4 KiB-aligned offset, bytes rotated so they compress as before), 35 % appended to
    (1-64 KiB: the file's start, rotated), 10 % only touched, 10 % deleted, 10 % new
    files (rotated copies of small files).
    """
    rng = random.Random(seed)
    files = regular_files(tree)
    n = max(5, round(len(files) * fraction))
    counts = {kind: max(1, round(n * share)) for kind, share in
              (("rewritten", 0.35), ("appended", 0.35), ("touched", 0.10), ("deleted", 0.10))}
    counts["new"] = max(1, n - sum(counts.values()))
    picked = rng.sample(files, n - counts["new"])
    written = changed_bytes = 0
    small = [f for f in files if 0 < (tree / f).stat().st_size <= 64 * KIB]
    for i in range(counts["new"]):  # first, so their models are not deleted yet
        model, where = rng.choice(small), rng.choice(files)
        data = (tree / model).read_bytes().translate(ROTATE)
        (tree / where).with_name(f"new-{seed}-{i}{Path(model).suffix}").write_bytes(data)
        written += len(data)
        changed_bytes += len(data)
    kinds = [kind for kind in ("rewritten", "appended", "touched", "deleted") for _ in range(counts[kind])]
    for kind, rel in zip(kinds, picked, strict=True):
        path = tree / rel
        size = path.stat().st_size
        if kind == "deleted":
            path.unlink()
            continue
        if kind == "touched":
            os.utime(path)
        elif kind == "rewritten" and size:
            length = min(size, WINDOW)
            offset = rng.randrange(size - length + 1) & ~4095
            with open(path, "r+b") as fh:
                fh.seek(offset)
                data = fh.read(length).translate(ROTATE)
                fh.seek(offset)
                fh.write(data)
            written += len(data)
        else:  # appended (or an empty file to rewrite)
            with open(path, "r+b") as fh:
                data = fh.read(rng.randint(KIB, 64 * KIB)).translate(ROTATE) or b"appended\n"
                fh.seek(0, os.SEEK_END)
                fh.write(data)
            written += len(data)
        changed_bytes += path.stat().st_size
    return {"files": len(files), "changed": n, **counts, "written": written,
            "changed_file_bytes": changed_bytes}


# -- measuring ------------------------------------------------------------------------------------
def dir_bytes(root: Path) -> int:
    """The sizes of all files under *root*, added up."""
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _dirs, files in os.walk(root) for f in files)


def bench(tree: Path, summary: dict[str, Any], work: Path, rounds: int, *, python: str,
          verify: bool, seed: int, fraction: float) -> dict[str, Any]:
    scratch = work / "scratch-incremental"
    _rm(scratch)
    scratch.mkdir(parents=True)
    no_scan = ["--no-scan"] if "--no-scan" in subprocess.run(
        ["restic", "backup", "--help"], capture_output=True, text=True, check=False).stdout else []
    results: dict[str, list[Measured]] = {k: [] for k in LABELS}
    added: dict[str, list[int]] = {k: [] for k in LABELS}
    changes: list[dict[str, Any]] = []
    manifests: list[dict[str, Any]] = []
    checks: list[str] = []
    # Each round's repository has its own id, hence its own directory in the cache.
    env = {**os.environ, "RESTIC_PASSWORD": "benchmark", "RESTIC_CACHE_DIR": str(scratch / "restic-cache")}
    for r in range(rounds):
        # Every round keeps its data until the end: ext4 is slow to reuse inodes freed
        # seconds ago (see bench_filesystem).
        rd = scratch / f"round-{r}"
        src, sink, repo, restored = rd / tree.name, rd / "sink", rd / "restic-repo", rd / "restore"
        rd.mkdir()
        subprocess.run(["cp", "-a", str(tree), str(src)], check=True)
        subprocess.run(["restic", "init", "--repo", str(repo), "--quiet"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        display = {str(rd): "$W"}
        backupkit = [python, "-m", "backupkit", "backup", "--source", str(src), "--sink", str(sink),
                     "--compress", "zstd"]
        restic = ["restic", "-r", str(repo), "backup", *no_scan, str(src)]
        where = {"bk": sink, "restic": repo}
        full = {"bk_full": [backupkit], "restic_full": [restic]}
        incr = {"bk_incr": [[*backupkit, "--kind", "incremental"]], "restic_incr": [restic]}
        for step in (full, incr):
            if step is incr:
                changes.append(change(src, fraction, seed))
                print(f"  round {r + 1}/{rounds} changed {changes[-1]}", file=sys.stderr)
            before = {key: dir_bytes(where[key.split("_")[0]]) for key in step}
            interleaved(step, r, rounds, results, cwd=rd, display=display, env=lambda key: env)
            for key in step:
                added[key].append(dir_bytes(where[key.split("_")[0]]) - before[key])
        for key, cmd in (("restic_open", ["restic", "-r", str(repo), "cat", "config"]),
                         ("bk_restore", [python, "-m", "backupkit", "restore", "latest", "--sink",
                                         str(sink), "--to", str(restored)])):
            results[key].append(m := run(key, [cmd], cwd=rd, display=display, env=env))
            print(f"  round {r + 1}/{rounds} {key:<12} {m.wall:7.2f} s", file=sys.stderr)
        (incr_manifest,) = sink.glob("incremental/*.manifest.json")
        manifests.append(json.loads(incr_manifest.read_text())["artifacts"][0]["extra"])
        if verify and r == 0:
            checks.append(round_trip("backupkit restore of full + incremental against the changed "
                                     "tree", src, restored / tree.name))
    _rm(scratch)
    return {"tree": summary, "results": results, "added": added, "changes": changes,
            "manifests": manifests, "checks": checks, "no_scan": bool(no_scan)}


# -- reporting ------------------------------------------------------------------------------------
def report(bench_: dict[str, Any], machine: dict[str, str], argv: list[str],
           load: tuple[Any, Any]) -> str:
    t, res, added = bench_["tree"], bench_["results"], bench_["added"]
    c, extra = bench_["changes"][0], bench_["manifests"][0]
    out = [*common.header("bench_incremental.py", argv, machine, load), common.tree_heading(t), ""]
    out.append(
        f"Change per round (seeded, the same every round): {c['changed']} of {c['files']} regular files "
        f"({c['changed'] / c['files']:.1%}): {c['rewritten']} rewritten in place, {c['appended']} "
        f"appended to, {c['touched']} touched (mtime only), {c['new']} new, {c['deleted']} deleted; "
        f"{c['written'] / 1e6:.1f} MB written, and the new or changed files hold "
        f"{c['changed_file_bytes'] / 1e6:.1f} MB. `$W` = the round's scratch directory (the copy of "
        f"the tree, the sink, the restic repository). MB/s is tree bytes per second for every row.")
    out.append("")
    cells = {k: f"{statistics.median(v) / 1e6:.1f}" for k, v in added.items() if v}
    out += common.rows(res, LABELS, t["bytes"], cells, "added to sink / repository MB (median)",
                no_rate={"restic_open"})
    out.append("")
    of_full = common.per_round(res["bk_incr"], res["bk_full"])
    of_full_cpu = common.per_round(res["bk_incr"], res["bk_full"], "cpu")
    vs_restic = common.per_round(res["bk_incr"], res["restic_incr"])
    vs_restic_cpu = common.per_round(res["bk_incr"], res["restic_incr"], "cpu")
    med_full, med_restic = statistics.median(of_full), statistics.median(vs_restic)
    out.append(f"- **backupkit incremental / backupkit full, wall time**: per round {common.fmt_ratios(of_full)}; "
               f"median **{med_full:.3f}** (CPU time {statistics.median(of_full_cpu):.3f}); "
               f"target <= {TARGET_OF_FULL:.2f}: {common.verdict(med_full <= TARGET_OF_FULL)}")
    out.append(f"- **backupkit incremental / restic incremental, wall time**: per round "
               f"{common.fmt_ratios(vs_restic)}; median **{med_restic:.3f}** (CPU time "
               f"{statistics.median(vs_restic_cpu):.3f}); target < 1: {common.verdict(med_restic < 1)}")
    out.append(f"- backupkit's incremental stored {extra['stored_files']} files, skipped "
               f"{extra['unchanged_files']} unchanged, listed {extra['deleted']} deletions")
    out.append("- restic 0.14 has no `--no-scan`; its scanner (a second walk, for the progress "
               "estimate) ran alongside" if not bench_["no_scan"] else "- restic ran with `--no-scan`")
    out += [f"- round trip check, {check}" for check in bench_["checks"]]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.tree_parser(__doc__ or "")
    parser.add_argument("--fraction", type=float, default=0.01,
                        help="share of the regular files changed (default 0.01)")
    args = parser.parse_args(argv)
    backupkit = common.use_rev(args)
    common.check_tools(parser, ("restic", "cp", "diff"), args.python)

    load0 = os.getloadavg()
    machine = {**_machine(), "restic": common.tool_version(["restic", "version"]), "backupkit": backupkit}
    tree, summary = common.tree_for(args)
    result = bench(tree, summary, args.work, args.rounds, python=args.python,
                   verify=not args.no_verify, seed=args.seed, fraction=args.fraction)
    load = (load0, os.getloadavg())
    common.publish(args, report(result, machine, argv, load), "incremental", "## Incremental backup",
                   machine, argv, load, result["results"],
                   **{k: result[k] for k in ("tree", "added", "changes", "manifests", "checks")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
