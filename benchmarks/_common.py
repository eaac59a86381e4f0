"""What the benchmark scripts share besides the measuring core of ``bench_filesystem``.

The test tree (generated or reused), the command-line options every tree benchmark
takes (``--rev``: measure a commit, not the working tree), the heading lines of a
report, the markdown rows of measured commands, and the rewriting of one generated
block of docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import make_tree


def ensure_tree(work: Path, size_text: str, seed: int) -> tuple[Path, dict[str, Any]]:
    """The tree for *size_text* and *seed* under *work*: reused if its stamp matches."""
    size = make_tree.parse_size(size_text)
    tree = work / f"tree-{make_tree.format_size(size)}"
    print(f"tree {tree}: generating or reusing (seed {seed})", file=sys.stderr)
    summary = make_tree.existing(tree, size, seed)
    if summary is None:  # in a child process, so this one stays small
        subprocess.run([sys.executable, str(HERE / "make_tree.py"), str(tree), "--size", size_text,
                        "--seed", str(seed), "--force", "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
        summary = make_tree.existing(tree, size, seed)
        assert summary is not None
    return tree, summary


def tree_for(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """:func:`ensure_tree` for the options of :func:`tree_parser`, announced on stderr."""
    tree, summary = ensure_tree(args.work, args.size, args.seed)
    print(f"tree {tree}: {summary['files']} files, {summary['bytes'] / 1e6:.0f} MB; "
          f"{args.rounds} round(s)", file=sys.stderr)
    return tree, summary


def tree_parser(doc: str, *, doc_file: Path = REPO / "docs" / "performance.md") -> argparse.ArgumentParser:
    """The options of every benchmark on the generated tree."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="tree size (default 1G)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per tree (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bkbench"),
                        help="where trees and scratch data go (default /tmp/bkbench)")
    parser.add_argument("--python", default=sys.executable, help="interpreter with backupkit installed")
    parser.add_argument("--rev", metavar="REV",
                        help="run backupkit as committed at REV (git archive to WORK, on PYTHONPATH) "
                             "instead of the working tree, which others may be editing meanwhile")
    parser.add_argument("--no-verify", action="store_true", help="skip the round trip comparison")
    parser.add_argument("--doc", type=Path, default=doc_file,
                        help="markdown file to update (default docs/performance.md)")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave the doc alone")
    return parser


def use_rev(args: argparse.Namespace) -> str:
    """Put backupkit as of ``--rev`` first on every child's PYTHONPATH; describe what runs.

    The children run in scratch directories, so the repository (the current directory
    here) does not shadow it. Returns where backupkit is imported from, with the commit.
    """
    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True,
                              check=True).stdout.strip()

    if args.rev:
        commit = git("rev-parse", "--short=12", f"{args.rev}^{{commit}}")
        dest = args.work / f"backupkit-{commit}"
        if not (dest / "backupkit" / "__init__.py").exists():
            dest.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "backupkit"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(dest), os.environ.get("PYTHONPATH", "")) if p)
        where = f"commit {commit}, exported to {dest}"
        package = dest / "backupkit"
    else:
        dirty = git("status", "--porcelain", "--", "backupkit")
        where = f"working tree at {git('rev-parse', '--short=12', 'HEAD')}" + (
            " with uncommitted changes" if dirty else "")
        package = REPO / "backupkit"
    # Bytecode as an installed package has it: with PYTHONDONTWRITEBYTECODE set (as on
    # this machine) every run would compile backupkit again (~60 ms of each run).
    subprocess.run([args.python, "-m", "compileall", "-q", str(package)], check=True,
                   stdout=subprocess.DEVNULL)
    version = subprocess.run([args.python, "-c", "import backupkit; print(backupkit.__version__)"],
                             capture_output=True, text=True, check=False, cwd="/").stdout.strip()
    return f"{version or '?'} ({where})"


def check_tools(parser: argparse.ArgumentParser, tools: Iterable[str], python: str) -> None:
    """Exit with a usage error if a command is missing or *python* lacks backupkit."""
    for tool in tools:
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    check = subprocess.run([python, "-c", "import backupkit"], capture_output=True, check=False)
    if check.returncode:
        parser.error(f"{python} cannot import backupkit; pass --python or install it")


def header(script: str, argv: Sequence[str], machine: dict[str, str],
           load: tuple[Sequence[float], Sequence[float]]) -> list[str]:
    """The first lines of a report: the command, the machine, the load average."""
    return [
        (f"Generated by `python benchmarks/{script} {' '.join(argv)}` on "
         f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC."), "",
        "**Machine:** " + ", ".join(f"{k} {v}" for k, v in machine.items()) + ".",
        (f"Load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in load[0])}, "
         f"at end {', '.join(f'{x:.2f}' for x in load[1])}."),
        "",
    ]


def tree_heading(summary: dict[str, Any]) -> str:
    return (f"### Tree {summary['size']} (seed {summary['seed']}): {summary['files']} files, "
            f"{summary['bytes'] / 1e6:.0f} MB")


def tool_version(argv: Sequence[str]) -> str:
    """The first line a ``--version``-like command prints, or ``unknown``."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except OSError:
        return "unknown"
    return (out.splitlines() or ["unknown"])[0].strip()


def rows(results: dict[str, list[Any]], labels: dict[str, tuple[str, str]], size: int,
         extra: dict[str, str] | None = None, extra_head: str = "", no_rate: Iterable[str] = ()
         ) -> list[str]:
    """Markdown rows, one per measured command: ``labels[key] = (step, tool)``.

    *results* holds ``bench_filesystem.Measured`` lists; *extra* adds a last column.
    MB/s is *size* per median second, left blank for the keys in *no_rate*.
    """
    head = ("| step | tool | command | runs | best s | median s | MB/s (median) | CPU s (median) "
            "| peak RSS MB |" + (f" {extra_head} |" if extra_head else ""))
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, (step, tool) in labels.items():
        ms = results.get(key)
        if not ms:
            continue
        walls = [m.wall for m in ms]
        med = statistics.median(walls)
        rate = "" if key in no_rate else f"{size / med / 1e6:.0f}"
        cpu = statistics.median(m.cpu for m in ms)
        row = (f"| {step} | {tool} | `{ms[0].shell}` | {len(ms)} | {min(walls):.2f} | {med:.2f} | "
               f"{rate} | {cpu:.2f} | {max(m.rss_mb for m in ms):.0f} |")
        out.append(row + (f" {(extra or {}).get(key, '')} |" if extra_head else ""))
    return out


def per_round(a: Sequence[Any], b: Sequence[Any], attr: str = "wall") -> list[float]:
    """``a[i] / b[i]`` of *attr* (wall or cpu) for each round."""
    return [getattr(x, attr) / getattr(y, attr) for x, y in zip(a, b, strict=True)]


def fmt_ratios(ratios: Sequence[float]) -> str:
    return ", ".join(f"{x:.3f}" for x in ratios)


def verdict(ok: bool) -> str:
    return "meets it ✅" if ok else "misses it ❌"


def save_raw(path: Path, machine: dict[str, str], argv: Sequence[str],
             load: tuple[Sequence[float], Sequence[float]], results: dict[str, list[Any]],
             **extra: Any) -> None:
    """Every measured run (``Measured.to_dict``) and *extra* as JSON."""
    raw = {"machine": machine, "argv": list(argv), "load": [list(load[0]), list(load[1])],
           "results": {k: [m.to_dict() for m in v] for k, v in results.items()}, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw, indent=2) + "\n")


def publish(args: argparse.Namespace, text: str, name: str, heading: str, machine: dict[str, str],
            argv: Sequence[str], load: tuple[Sequence[float], Sequence[float]],
            results: dict[str, list[Any]], **extra: Any) -> None:
    """Print the report, save the raw figures as ``WORK/results-NAME.json`` and, unless
    ``--no-doc``, rewrite the ``bench-NAME`` block of the doc (a new *heading* if absent)."""
    print(text)
    save_raw(args.work / f"results-{name}.json", machine, argv, load, results, **extra)
    if not args.no_doc:
        begin, end = f"<!-- bench-{name}:begin -->", f"<!-- bench-{name}:end -->"
        write_section(args.doc, text, begin, end, missing=f"{heading}\n\n{begin}\n{end}\n")
        print(f"updated {args.doc}", file=sys.stderr)


def write_section(path: Path, generated: str, begin: str, end: str, *,
                  missing: str | None = None) -> None:
    """Replace what stands between *begin* and *end* in *path* with *generated*.

    A file without the markers gets *missing* appended (default: the two markers).
    """
    text = path.read_text() if path.exists() else "# Performance\n"
    if begin not in text or end not in text:
        text = text.rstrip() + "\n\n" + (missing or f"{begin}\n{end}\n")
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{begin}\n{generated}{end}{tail}")
