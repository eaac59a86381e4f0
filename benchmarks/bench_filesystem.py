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

import argparse
import datetime as dt
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import make_tree  # noqa: E402

TARGET_RATIO = 1.1
TARGET_RSS_MB = 120
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


# -- running and measuring ------------------------------------------------------------
class Measured:
    """One timed command or pipeline: wall seconds, CPU seconds, peak RSS per process."""

    def __init__(self, label: str, shell: str, wall: float, procs: list[tuple[str, float, int]]):
        self.label = label
        self.shell = shell
        self.wall = wall
        self.procs = procs  # (program, cpu seconds, max rss KiB)

    @property
    def cpu(self) -> float:
        return sum(p[1] for p in self.procs)

    @property
    def rss_mb(self) -> float:
        return max(p[2] for p in self.procs) / 1024

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "command": self.shell, "wall": round(self.wall, 3),
                "cpu": round(self.cpu, 3),
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


def run(label: str, cmds: Sequence[Sequence[str]], *, cwd: Path, display: dict[str, str]) -> Measured:
    """Run a pipeline of *cmds*; wall time from the first start to the last exit."""
    os.sync()  # earlier steps' dirty pages must not be written back during this one
    log = tempfile.TemporaryFile()
    stats = [tempfile.NamedTemporaryFile(prefix="bkbench-time-") for _ in cmds]
    procs: list[subprocess.Popen[bytes]] = []
    t0 = time.perf_counter()
    stdin: Any = subprocess.DEVNULL
    for i, cmd in enumerate(cmds):
        last = i == len(cmds) - 1
        argv = [GNU_TIME, "-f", "%M %U %S", "-o", stats[i].name, *cmd] if GNU_TIME else list(cmd)
        p = subprocess.Popen(argv, cwd=cwd, stdin=stdin, stdout=log if last else subprocess.PIPE, stderr=log)
        if stdin is not subprocess.DEVNULL:
            stdin.close()
        stdin = p.stdout
        procs.append(p)
    results = []
    for cmd, p, stat in zip(cmds, procs, stats):
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        name = "python" if "python" in Path(cmd[0]).name else Path(cmd[0]).name
        if GNU_TIME and p.returncode == 0:
            rss, user, system = Path(stat.name).read_text().split()[-3:]
            results.append((name, float(user) + float(system), int(rss)))
        else:
            results.append((name, ru.ru_utime + ru.ru_stime, ru.ru_maxrss))
        stat.close()
    wall = time.perf_counter() - t0
    failed = [(c, p.returncode) for c, p in zip(cmds, procs) if p.returncode != 0]
    if failed:
        log.seek(0)
        raise SystemExit(f"{label} failed ({failed}):\n{log.read().decode(errors='replace')}")
    return Measured(label, _shell(cmds, display), wall, results)


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
                          capture_output=True, text=True)
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


def _rm(*paths: Path) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def bench_tree(tree: Path, summary: dict[str, Any], work: Path, rounds: int, *, python: str,
               verify: bool) -> dict[str, Any]:
    """All rounds on one tree; returns raw results and per-round ratios."""
    scratch = work / "scratch"
    _rm(scratch)
    scratch.mkdir(parents=True)
    display = {str(scratch): "$W", str(tree.parent): "$T"}
    warm_s = warm(tree)
    results: dict[str, list[Measured]] = {k: [] for k in ("bk_backup", "ref_backup", "bk_restore", "ref_restore")}
    stored: dict[str, int] = {}
    checks: list[str] = []
    for r in range(rounds):
        sink, out = scratch / "sink", scratch / "tree.tar.zst"
        bk_dir, ref_dir = scratch / "restore-bk", scratch / "restore-ref"
        ref_dir.mkdir()
        backup = {
            "bk_backup": [[python, "-m", "backupkit", "backup", "--source", str(tree),
                           "--sink", str(sink), "--compress", "zstd"]],
            "ref_backup": [["tar", "-cf", "-", "-C", str(tree.parent), tree.name],
                           ["zstd", "-3", "-T1", "-q", "-o", str(out)]],
        }
        restore = {
            "bk_restore": [[python, "-m", "backupkit", "restore", "latest", "--sink", str(sink),
                            "--to", str(bk_dir)]],
            "ref_restore": [["zstd", "-d", "-c", str(out)], ["tar", "-x", "-C", str(ref_dir)]],
        }
        for step in (backup, restore):
            keys = list(step) if r % 2 == 0 else list(reversed(step))
            for key in keys:
                m = run(key, step[key], cwd=scratch, display=display)
                results[key].append(m)
                print(f"  round {r + 1}/{rounds} {key:<12} {m.wall:7.2f} s  cpu {m.cpu:6.2f} s  "
                      f"rss {m.rss_mb:6.1f} MB", file=sys.stderr)
        stored["backupkit"] = sum(p.stat().st_size for p in (sink / "daily").glob("*.zst"))
        stored["reference"] = out.stat().st_size
        if verify and r == 0:
            for name, where in (("backupkit", bk_dir), ("reference", ref_dir)):
                problems = compare_trees(tree, where / tree.name)
                ok = all(p.startswith("note:") for p in problems)
                checks.append(f"{name}: " + ("identical" if ok else "DIFFERENT") + "".join(
                    f"; {p}" for p in problems))
                print(f"  verify {checks[-1]}", file=sys.stderr)
        _rm(sink, out, bk_dir, ref_dir)
    _rm(scratch)
    ratios = {
        step: [b.wall / f.wall for b, f in zip(results[f"bk_{step}"], results[f"ref_{step}"])]
        for step in ("backup", "restore")
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
    zstd_v = subprocess.run(["zstd", "--version"], capture_output=True, text=True).stdout.strip()
    tar_v = subprocess.run(["tar", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    try:
        import zstandard

        pyzstd = f"zstandard {zstandard.__version__} (libzstd {zstandard.ZSTD_VERSION[0]}.{zstandard.ZSTD_VERSION[1]}.{zstandard.ZSTD_VERSION[2]})"
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
        "zstd": zstd_v.replace("*** ", "").replace(" ***", ""),
        "tar": tar_v,
    }


def _fmt_ratio(x: float, target: float = TARGET_RATIO) -> str:
    return f"{x:.2f}x {'✅' if x <= target else '❌'}"


def table(bench: dict[str, Any]) -> str:
    """The markdown table for one tree."""
    res, ratios, size = bench["results"], bench["ratios"], bench["tree"]["bytes"]
    rows = [
        "| step | tool | command | runs | best s | median s | MB/s (median) | CPU s (median) "
        "| peak RSS MB | ratio (median of rounds) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for step in ("backup", "restore"):
        for tool, key in (("backupkit", f"bk_{step}"), ("tar + zstd", f"ref_{step}")):
            ms = res[key]
            walls = [m.wall for m in ms]
            med = statistics.median(walls)
            rss = max(m.rss_mb for m in ms)
            rss_cell = f"{rss:.0f} {'✅' if rss <= TARGET_RSS_MB else '❌'}" if key.startswith("bk") else (
                " / ".join(f"{n} {r / 1024:.0f}" for n, _c, r in ms[0].procs))
            ratio = _fmt_ratio(statistics.median(ratios[step])) if key.startswith("bk") else "1 (reference)"
            rows.append(
                f"| {step} | {tool} | `{ms[0].shell}` | {len(ms)} | {min(walls):.2f} | {med:.2f} | "
                f"{size / med / 1e6:.0f} | {statistics.median(m.cpu for m in ms):.2f} | {rss_cell} | {ratio} |"
            )
    return "\n".join(rows)


def report(benches: list[dict[str, Any]], machine: dict[str, str], argv: list[str],
           load: tuple[Sequence[float], Sequence[float]]) -> str:
    out = [f"Generated by `python benchmarks/bench_filesystem.py {' '.join(argv)}` on "
           f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.", ""]
    out.append("**Machine:** " + ", ".join(f"{k} {v}" for k, v in machine.items()) + ".")
    out.append(f"Load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in load[0])}, "
               f"at end {', '.join(f'{x:.2f}' for x in load[1])}.")
    out.append("")
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
        for step in ("backup", "restore"):
            rs = ", ".join(f"{x:.3f}" for x in bench["ratios"][step])
            out.append(f"- {step} ratios per round (backupkit / reference): {rs}")
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
    text = path.read_text() if path.exists() else _DOC_TEMPLATE
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{BEGIN}\n{generated}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="tree size (default 1G)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per tree (default 3)")
    parser.add_argument("--big", metavar="SIZE", help="also run a bigger tree (e.g. 4G) for the memory check")
    parser.add_argument("--big-rounds", type=int, default=1, help="rounds for --big (default 1)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bkbench"),
                        help="where trees and scratch data go (default /tmp/bkbench)")
    parser.add_argument("--python", default=sys.executable, help="interpreter with backupkit installed")
    parser.add_argument("--no-verify", action="store_true", help="skip the round trip comparison")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "performance.md",
                        help="markdown file to update (default docs/performance.md)")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave the doc alone")
    parser.add_argument("--clean", action="store_true", help="delete the generated trees at the end")
    args = parser.parse_args(argv)

    for tool in ("tar", "zstd", "diff"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    check = subprocess.run([args.python, "-c", "import backupkit"], capture_output=True)
    if check.returncode:
        parser.error(f"{args.python} cannot import backupkit; pass --python or install it")

    load0 = os.getloadavg()
    machine = _machine()
    benches = []
    sizes = [(args.size, args.rounds)] + ([(args.big, args.big_rounds)] if args.big else [])
    trees = []
    for size_text, rounds in sizes:
        size = make_tree.parse_size(size_text)
        tree = args.work / f"tree-{make_tree.format_size(size)}"
        print(f"tree {tree}: generating or reusing (seed {args.seed})", file=sys.stderr)
        summary = make_tree.existing(tree, size, args.seed)
        if summary is None:  # in a child process, so this one stays small
            subprocess.run([sys.executable, str(HERE / "make_tree.py"), str(tree), "--size", size_text,
                            "--seed", str(args.seed), "--force", "--quiet"], check=True,
                           stdout=subprocess.DEVNULL)
            summary = make_tree.existing(tree, size, args.seed)
            assert summary is not None
        trees.append(tree)
        print(f"tree {tree}: {summary['files']} files, {summary['bytes'] / 1e6:.0f} MB; "
              f"{rounds} round(s)", file=sys.stderr)
        benches.append(bench_tree(tree, summary, args.work, rounds, python=args.python,
                                  verify=not args.no_verify))
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
