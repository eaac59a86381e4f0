"""Filesystem backup and restore: backupkit against ``tar | zstd -3 -T1``.

Generates (or reuses) a deterministic mixed tree with ``make_tree.py``, reads it
once so the page cache is warm, then runs, interleaved and repeated on the same
tree:

* backup:  ``python -m backupkit backup --source TREE --sink SINK --compress zstd``
  against    ``tar -cf - -C PARENT TREE | zstd -3 -T1 -q -o OUT``
* restore: ``python -m backupkit restore latest --sink SINK --to DIR``
  against    ``zstd -d -c OUT | tar -x -C DIR``

Every process is reaped with ``os.wait4``, so its peak RSS (``ru_maxrss``) and CPU
time are exact. The order of the two tools alternates between rounds, and ratios
are taken per round (the two runs of a round are seconds apart) and then the
median, which cancels most of the noise of a shared machine. The first round's
restores are compared with the tree (``diff -r`` plus modes, mtimes, symlinks).

    python benchmarks/bench_filesystem.py --size 1G              # ~5 minutes
    python benchmarks/bench_filesystem.py --size 1G --big 4G     # adds a 4 GiB run

Prints a markdown table with the exact commands and rewrites the generated part
of docs/performance.md (between the ``bench:begin``/``bench:end`` markers).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import make_tree
from _common import check_tools, ensure_tree, header, tree_parser, use_rev, write_section

TARGET_RATIO = 1.1
TARGET_RSS_MB = 120
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


# -- running and measuring ------------------------------------------------------------
class Measured:
    """One timed command or pipeline: wall seconds, CPU seconds, peak RSS per process."""

    def __init__(self, label: str, shell: str, wall: float, procs: list[tuple[str, float, int]],
                 user: float | None = None):
        self.label = label
        self.shell = shell
        self.wall = wall
        self.procs = procs  # (program, cpu seconds, max rss KiB)
        self.user = user  # user CPU seconds of all processes (without the kernel's share)

    @property
    def cpu(self) -> float:
        return sum(p[1] for p in self.procs)

    @property
    def rss_mb(self) -> float:
        return max(p[2] for p in self.procs) / 1024

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "command": self.shell, "wall": round(self.wall, 3),
                "cpu": round(self.cpu, 3), "user": None if self.user is None else round(self.user, 3),
                "procs": [{"program": n, "cpu": round(c, 3), "maxrss_kib": r} for n, c, r in self.procs]}


def _shell(cmds: Sequence[Sequence[str]], display: dict[str, str]) -> str:
    def word(w: str) -> str:
        for real, shown in display.items():
            w = w.replace(real, shown)
        return shlex.quote(w) if w != shlex.quote(w) and "$" not in w else w
    return " | ".join(" ".join(word(w) for w in cmd) for cmd in cmds)


# A child's ru_maxrss counts the memory of the process it was forked from (Linux
# records the old address space's high-water mark at exec), so a child forked from
# this Python process would report at least this process's peak. GNU time forks
# from a 2 MB process; without it, os.wait4's figures are upper bounds.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run(label: str, cmds: Sequence[Sequence[str]], *, cwd: Path, display: dict[str, str],
        env: dict[str, str] | None = None) -> Measured:
    """Run a pipeline of *cmds*; wall time from the first start to the last exit.

    *env* (default: this process's environment) is the environment of every command.
    """
    os.sync()  # earlier steps' dirty pages must not be written back during this one
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(tempfile.TemporaryFile())
        stats = [stack.enter_context(tempfile.NamedTemporaryFile(prefix="bkbench-time-")) for _ in cmds]
        return _run(label, cmds, cwd=cwd, display=display, log=log, stats=stats, env=env)


def _run(label: str, cmds: Sequence[Sequence[str]], *, cwd: Path, display: dict[str, str],
         log: Any, stats: list[Any], env: dict[str, str] | None) -> Measured:
    procs: list[subprocess.Popen[bytes]] = []
    t0 = time.perf_counter()
    stdin: Any = subprocess.DEVNULL
    for i, cmd in enumerate(cmds):
        last = i == len(cmds) - 1
        argv = [GNU_TIME, "-f", "%M %U %S", "-o", stats[i].name, *cmd] if GNU_TIME else list(cmd)
        p = subprocess.Popen(argv, cwd=cwd, stdin=stdin, stdout=log if last else subprocess.PIPE, stderr=log,
                             env=env)
        if stdin is not subprocess.DEVNULL:
            stdin.close()
        stdin = p.stdout
        procs.append(p)
    results, user_s = [], 0.0
    for cmd, p, stat in zip(cmds, procs, stats):
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        name = "python" if "python" in Path(cmd[0]).name else Path(cmd[0]).name
        if GNU_TIME and p.returncode == 0:
            rss, user, system = Path(stat.name).read_text().split()[-3:]
            results.append((name, float(user) + float(system), int(rss)))
            user_s += float(user)
        else:
            results.append((name, ru.ru_utime + ru.ru_stime, ru.ru_maxrss))
            user_s += ru.ru_utime
    wall = time.perf_counter() - t0
    failed = [(c, p.returncode) for c, p in zip(cmds, procs) if p.returncode != 0]
    if failed:
        log.seek(0)
        raise SystemExit(f"{label} failed ({failed}):\n{log.read().decode(errors='replace')}")
    return Measured(label, _shell(cmds, display), wall, results, user_s)


def interleaved(step: dict[str, list[list[str]]], r: int, rounds: int, results: dict[str, list[Measured]],
                *, cwd: Path, display: dict[str, str],
                env: Callable[[str], dict[str, str] | None] = lambda key: None) -> None:
    """Run the commands of one step of round *r*, in reverse order every other round.

    Appends to ``results[key]``; ``env(key)`` is the environment of each (default: this one's).
    """
    keys = list(step) if r % 2 == 0 else list(reversed(step))
    for key in keys:
        m = run(key, step[key], cwd=cwd, display=display, env=env(key))
        results[key].append(m)
        print(f"  round {r + 1}/{rounds} {key:<12} {m.wall:7.2f} s  cpu {m.cpu:6.2f} s  "
              f"rss {m.rss_mb:6.1f} MB", file=sys.stderr)


def stored_bytes(sink: Path, pattern: str = "*/*.manifest.json") -> int:
    """The stored size of every artifact (the file index included) of the backups in *sink*."""
    return sum(a["stored_size"] for m in sink.glob(pattern) for a in json.loads(m.read_text())["artifacts"])


def warm(tree: Path) -> float:
    """Read every file once so both tools start from a warm page cache."""
    t0 = time.perf_counter()
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb", buffering=0) as fh:
                while fh.read(1 << 20):
                    pass
    return time.perf_counter() - t0


def compare_trees(a: Path, b: Path) -> list[str]:
    """Differences between two trees: content (diff -r), and type, mode, mtime, link target."""
    problems = []
    diff = subprocess.run(["diff", "-r", "--no-dereference", "-q", str(a), str(b)],
                          capture_output=True, text=True, check=False)
    if diff.returncode != 0:
        problems.append((diff.stdout + diff.stderr).strip()[:2000])

    def meta(root: Path) -> dict[str, tuple[Any, ...]]:
        out = {}
        for dirpath, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                link = os.readlink(path) if os.path.islink(path) else None
                mode = st.st_mode if link is None else "link"
                out[os.path.relpath(path, root)] = (mode, st.st_mtime_ns // 10**9, link, st.st_mtime_ns)
        return out

    ma, mb = meta(a), meta(b)
    if ma.keys() != mb.keys():
        problems.append(f"entries differ: {sorted(ma.keys() ^ mb.keys())[:10]}")
    inexact = sum(1 for k in ma.keys() & mb.keys() if ma[k][3] != mb[k][3] and ma[k][0] != "link")
    if inexact:
        problems.append(f"note: {inexact} mtime(s) kept only to the second (nanoseconds dropped)")
    bad = [k for k in ma.keys() & mb.keys() if ma[k][:3] != mb[k][:3]]
    links = [k for k in bad if ma[k][0] == mb[k][0] == "link" and ma[k][2] == mb[k][2]]  # mtime only
    if links:  # only the mtime of the link itself differs
        problems.append(f"note: {len(links)} symlink(s) restored with the time of restore as their own "
                        "mtime (targets correct)")
        bad = [k for k in bad if k not in links]
    if bad:
        problems.append(f"{len(bad)} entries differ in mode/mtime/link, e.g. "
                        + "; ".join(f"{k}: {ma[k]} != {mb[k]}" for k in sorted(bad)[:5]))
    return problems


def round_trip(name: str, tree: Path, restored: Path) -> str:
    """``NAME: identical`` or ``NAME: DIFFERENT``, then what compare_trees found; also printed."""
    problems = compare_trees(tree, restored)
    ok = all(p.startswith("note:") for p in problems)
    check = f"{name}: " + ("identical" if ok else "DIFFERENT") + "".join(f"; {p}" for p in problems)
    print(f"  verify {check}", file=sys.stderr)
    return check


def _rm(*paths: Path) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def bench_tree(tree: Path, summary: dict[str, Any], work: Path, rounds: int, *, python: str,
               verify: bool, threads: int) -> dict[str, Any]:
    """All rounds on one tree; returns raw results and per-round ratios."""
    scratch = work / "scratch"
    _rm(scratch)
    scratch.mkdir(parents=True)
    display = {str(scratch): "$W", str(tree.parent): "$T"}
    warm_s = warm(tree)
    keys = ["bk_backup", "ref_backup", "bk_restore", "ref_restore"] + (["bkt_backup"] if threads else [])
    results: dict[str, list[Measured]] = {k: [] for k in keys}
    config = scratch / "threads.toml"  # the same backup with zstd worker threads, like -T1
    config.write_text(
        f'[sets.bench]\nsink = "{scratch / "sink-threads"}"\n'
        f'transforms = [{{ type = "zstd", level = 3, threads = {threads} }}]\n'
        f'[[sets.bench.sources]]\ntype = "filesystem"\npaths = ["{tree}"]\n'
    )
    stored: dict[str, int] = {}
    checks: list[str] = []
    for r in range(rounds):
        sink, out = scratch / "sink", scratch / "tree.tar.zst"
        # Restored trees stay until the end: ext4 skips inodes freed in the last 5-35 s
        # when it allocates new ones (recently_deleted), so deleting 100k files right
        # before a restore made the next one several times slower, for both tools.
        bk_dir, ref_dir = scratch / f"restore-bk-{r}", scratch / f"restore-ref-{r}"
        ref_dir.mkdir()
        backup = {
            "bk_backup": [[python, "-m", "backupkit", "backup", "--source", str(tree),
                           "--sink", str(sink), "--compress", "zstd"]],
            "ref_backup": [["tar", "-cf", "-", "-C", str(tree.parent), tree.name],
                           ["zstd", "-3", "-T1", "-q", "-o", str(out)]],
        }
        if threads:
            backup["bkt_backup"] = [[python, "-m", "backupkit", "backup", "--config", str(config)]]
        restore = {
            "bk_restore": [[python, "-m", "backupkit", "restore", "latest", "--sink", str(sink),
                            "--to", str(bk_dir)]],
            "ref_restore": [["zstd", "-d", "-c", str(out)], ["tar", "-x", "-C", str(ref_dir)]],
        }
        for step in (backup, restore):
            interleaved(step, r, rounds, results, cwd=scratch, display=display)
        stored["backupkit"] = stored_bytes(sink)
        stored["reference"] = out.stat().st_size
        if verify and r == 0:
            for name, where in (("backupkit", bk_dir), ("reference", ref_dir)):
                checks.append(round_trip(name, tree, where / tree.name))
        _rm(sink, out, scratch / "sink-threads")
    _rm(scratch)
    ratios = {  # per round, backupkit / reference
        key: [b.wall / f.wall for b, f in zip(ms, results["ref_" + key.split("_")[1]])]
        for key, ms in results.items() if key.startswith("bk") and ms
    }
    return {"tree": summary, "warm_seconds": round(warm_s, 1), "results": results, "ratios": ratios,
            "stored": stored, "checks": checks}


# -- reporting ----------------------------------------------------------------------------
def _machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    zstd_v = subprocess.run(["zstd", "--version"], capture_output=True, text=True, check=False).stdout
    tar_v = subprocess.run(["tar", "--version"], capture_output=True, text=True, check=False).stdout
    try:
        import zstandard

        libzstd = ".".join(str(n) for n in zstandard.ZSTD_VERSION[:3])
        pyzstd = f"zstandard {zstandard.__version__} (libzstd {libzstd})"
    except ImportError:
        pyzstd = "zstandard not importable here"
    mem = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "zstandard": pyzstd,
        "zstd": zstd_v.strip().replace("*** ", "").replace(" ***", ""),
        "tar": (tar_v.splitlines() or ["?"])[0],
    }


def _fmt_ratio(x: float, target: float = TARGET_RATIO) -> str:
    return f"{x:.2f}x {'✅' if x <= target else '❌'}"


def table(bench: dict[str, Any]) -> str:
    """The markdown table for one tree."""
    res, ratios, size = bench["results"], bench["ratios"], bench["tree"]["bytes"]
    rows = [
        ("| step | tool | command | runs | best s | median s | MB/s (median) | CPU s (median) "
         "| peak RSS MB | ratio (median of rounds) |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    tools = {"bk": "backupkit", "bkt": "backupkit, zstd threads", "ref": "tar + zstd"}
    for step in ("backup", "restore"):
        for key in (k for k in res if k.endswith(step) and res[k]):
            tool, ms = tools[key.split("_")[0]], res[key]
            walls = [m.wall for m in ms]
            med = statistics.median(walls)
            rss = max(m.rss_mb for m in ms)
            rss_cell = f"{rss:.0f} {'✅' if rss <= TARGET_RSS_MB else '❌'}" if key.startswith("bk") else (
                " / ".join(f"{n} {r / 1024:.0f}" for n, _c, r in ms[0].procs))
            ratio = _fmt_ratio(statistics.median(ratios[key])) if key.startswith("bk") else "1 (reference)"
            rows.append(
                f"| {step} | {tool} | `{ms[0].shell}` | {len(ms)} | {min(walls):.2f} | {med:.2f} | "
                f"{size / med / 1e6:.0f} | {statistics.median(m.cpu for m in ms):.2f} | {rss_cell} | {ratio} |"
            )
    return "\n".join(rows)


def report(benches: list[dict[str, Any]], machine: dict[str, str], argv: list[str],
           load: tuple[Sequence[float], Sequence[float]]) -> str:
    out = header("bench_filesystem.py", argv, machine, load)
    for bench in benches:
        t = bench["tree"]
        out.append(f"### Tree {t['size']} (seed {t['seed']}): {t['files']} files, {t['directories']} "
                   f"directories, {t['bytes'] / 1e6:.0f} MB")
        out.append("")
        out.append(f"`$T` = the tree's parent directory, `$W` = a scratch directory; page cache warmed "
                   f"by reading the tree once ({bench['warm_seconds']} s). MB = 10^6 bytes of file data.")
        out.append("")
        out.append(table(bench))
        out.append("")
        res = bench["results"]
        for key, ratios in bench["ratios"].items():
            rs = ", ".join(f"{x:.2f}" for x in ratios)
            ref = res["ref_" + key.split("_")[1]]
            cpu = statistics.median(b.cpu / f.cpu for b, f in zip(res[key], ref))
            what = key.split("_")[1] + (" with zstd threads" if key.startswith("bkt") else "")
            out.append(f"- {what}: wall-time ratio per round (backupkit / reference) {rs}; "
                       f"CPU-time ratio (user + sys, median) {cpu:.2f}")
        st = bench["stored"]
        out.append(f"- stored: backupkit {st['backupkit'] / 1e6:.1f} MB, tar + zstd "
                   f"{st['reference'] / 1e6:.1f} MB (compression ratio {t['bytes'] / st['backupkit']:.2f})")
        for check in bench["checks"]:
            out.append(f"- round trip check, {check}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


_DOC_TEMPLATE = f"""# Performance

How fast backupkit backs up and restores a directory tree compared with the
plain command-line pipeline it competes with, and how much memory it needs.

## How to reproduce

```sh
python benchmarks/bench_filesystem.py --size 1G            # add --big 4G for the memory check
```

See [benchmarks/README.md](../benchmarks/README.md) for the options and the tree generator.

## Results

{BEGIN}
{END}
"""


def write_doc(path: Path, generated: str) -> None:
    if not path.exists():
        path.write_text(_DOC_TEMPLATE)
    write_section(path, generated, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = tree_parser(__doc__ or "")
    parser.add_argument("--big", metavar="SIZE", help="also run a bigger tree (e.g. 4G) for the memory check")
    parser.add_argument("--big-rounds", type=int, default=1, help="rounds for --big (default 1)")
    parser.add_argument("--zstd-threads", type=int, default=0, metavar="N",
                        help="also back up with the zstd transform's threads=N (a config file)")
    parser.add_argument("--clean", action="store_true", help="delete the generated trees at the end")
    args = parser.parse_args(argv)
    use_rev(args)
    check_tools(parser, ("tar", "zstd", "diff"), args.python)

    load0 = os.getloadavg()
    machine = _machine()
    benches = []
    sizes = [(args.size, args.rounds)] + ([(args.big, args.big_rounds)] if args.big else [])
    trees = []
    for size_text, rounds in sizes:
        tree, summary = ensure_tree(args.work, size_text, args.seed)
        trees.append(tree)
        print(f"tree {tree}: {summary['files']} files, {summary['bytes'] / 1e6:.0f} MB; "
              f"{rounds} round(s)", file=sys.stderr)
        benches.append(bench_tree(tree, summary, args.work, rounds, python=args.python,
                                  verify=not args.no_verify, threads=args.zstd_threads))
    load1 = os.getloadavg()
    text = report(benches, machine, argv, (load0, load1))
    print(text)
    raw = {"machine": machine, "argv": argv, "load": [load0, load1], "benches": [
        {**b, "results": {k: [m.to_dict() for m in v] for k, v in b["results"].items()}} for b in benches]}
    (args.work / "results.json").write_text(json.dumps(raw, indent=2) + "\n")
    if not args.no_doc:
        write_doc(args.doc, text)
        print(f"updated {args.doc}; raw figures in {args.work / 'results.json'}", file=sys.stderr)
    if args.clean:
        for tree in trees:
            _rm(tree, make_tree.stamp_path(tree))
    return 0


if __name__ == "__main__":
    sys.exit(main())
