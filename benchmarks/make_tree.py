"""Generate a deterministic, mixed directory tree for backup benchmarks.

The same ``--seed`` and ``--size`` always give the same tree: the same names,
bytes, modes and mtimes. The mix, by share of the total size:

=====================  =======  =================================================
kind                   share    what
=====================  =======  =================================================
small text files       ~17 %    source-like text (py, c, js, md, json...), 42k
                                files per GiB, 100 B - 24 KiB, ~40 per directory
small binary files      ~6 %    random bytes (icons, fixtures), 4k files per GiB
large text             ~20 %    logs and CSV, 1 - 48 MiB
random binaries        ~25 %    incompressible, 256 KiB - 64 MiB
already compressed     ~20 %    real zstd (level 3) and gzip (level 6) output
semi-compressible      ~12 %    database-like pages: records, zeros, random
=====================  =======  =================================================

plus a few empty files and directories, symlinks, executables and unicode names.
File counts scale with ``--size``, so ``--size 4G`` is four times ``--size 1G``
with the same mix. Only the standard library and ``zstandard`` are needed.

    python benchmarks/make_tree.py /tmp/bkbench/tree-1G --size 1G --seed 1

A stamp file ``<dest>.stamp.json`` records what was generated (with a sha256 over
every path and byte); an existing tree with a matching stamp is reused.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zstandard

FORMAT = 2  # bump when the generated tree changes
GIB = 1 << 30
MIB = 1 << 20
KIB = 1 << 10
BASE_MTIME = 1_700_000_000  # 2023-11-14, fixed so the tree is reproducible

SMALL_TEXT_PER_GIB = 42_000
SMALL_BIN_PER_GIB = 4_000
SHARES = {  # of the bytes left after the small files
    "text": 0.26,
    "random": 0.33,
    "compressed": 0.26,
    "semi": 0.15,
}

_SYLLABLES = (  # noqa: SIM905 (a list literal would be 100 items long)
    "ab ac ad al am an ar as at ba be bi bo ca ce ci co da de di do el em en er es et fa fe fi "
    "fo ga ge gi go ha he hi ho id il im in io is it ka ke ki ko la le li lo ma me mi mo na ne ni "
    "no ob od ol om on op or os ot pa pe pi po ra re ri ro sa se si so ta te ti to ul um un ur us "
    "va ve vi vo xe za ze zo"
).split()
_KEYWORDS = {
    "py": ["def", "return", "if", "else", "for", "in", "import", "from", "class", "self", "None", "with"],
    "c": ["int", "return", "if", "else", "for", "static", "const", "struct", "void", "char", "size_t"],
    "js": ["const", "let", "function", "return", "if", "else", "await", "async", "export", "this"],
}
_EXT = ["py", "py", "py", "c", "h", "js", "ts", "md", "json", "txt", "toml", "html", "css", "rs"]


def parse_size(text: str) -> int:
    """``1G``, ``512M``, ``4096K`` or a byte count (binary units)."""
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": KIB, "M": MIB, "G": GIB, "T": 1 << 40}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def format_size(n: int) -> str:
    for unit, size in (("G", GIB), ("M", MIB), ("K", KIB)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


class _Text:
    """Pools of plausible lines; files are drawn from them (fast, and compresses like text)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        words = {"".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4))) for _ in range(6000)}
        self.words = sorted(words)
        self.idents = [self._ident() for _ in range(8000)]
        self.code = {lang: [self._code_line(lang) for _ in range(30_000)] for lang in _KEYWORDS}
        self.prose = [self._prose_line() for _ in range(20_000)]
        self.json = [self._json_line() for _ in range(20_000)]
        self.log_msgs = [" ".join(rng.choices(self.words, k=rng.randint(2, 8))) for _ in range(5000)]

    def _ident(self) -> str:
        r = self.rng
        parts = r.choices(self.words, k=r.randint(1, 3))
        return "_".join(parts) if r.random() < 0.6 else parts[0] + "".join(p.title() for p in parts[1:])

    def _code_line(self, lang: str) -> str:
        r, i, kw = self.rng, self.idents, _KEYWORDS[lang]
        indent = " " * (4 * r.choice((0, 1, 1, 2, 2, 2, 3, 3, 4)))
        shape = r.randrange(9)
        if shape == 0:
            body = f"{r.choice(kw)} {r.choice(i)}({r.choice(i)}, {r.choice(i)}):"
        elif shape == 1:
            body = f"{r.choice(i)} = {r.choice(i)}.{r.choice(i)}({r.choice(i)}, {r.randrange(4096)})"
        elif shape == 2:
            body = f"{r.choice(kw)} {r.choice(i)}[{r.randrange(64)}] {r.choice('+-*/<>')} {r.choice(i)}"
        elif shape == 3:
            body = ("# " if lang == "py" else "// ") + " ".join(r.choices(self.words, k=r.randint(3, 12)))
        elif shape == 4:
            body = f'{r.choice(i)}("{" ".join(r.choices(self.words, k=r.randint(1, 5)))}", {r.choice(i)})'
        elif shape == 5:
            body = f"{r.choice(kw)} {r.choice(i)}"
        elif shape == 6:
            body = f"{r.choice(i)}.{r.choice(i)} = {r.random():.6f}"
        elif shape == 7:
            body = ""
            indent = ""
        else:
            body = f"{r.choice(kw)} {r.choice(i)} {r.choice(kw)} {r.choice(i)}.{r.choice(i)}()"
        return f"{indent}{body}\n"

    def _prose_line(self) -> str:
        r = self.rng
        sentence = " ".join(r.choices(self.words, k=r.randint(4, 16)))
        return sentence[:1].upper() + sentence[1:] + r.choice((".\n", ".\n", ",\n", ":\n", "\n\n"))

    def _json_line(self) -> str:
        r = self.rng
        word = repr(r.choice(self.words)).replace(chr(39), chr(34))
        value = r.choice((r.randrange(10**6), word, "true", "null"))
        return f'  "{r.choice(self.idents)}": {value},\n'

    def pool_for(self, ext: str) -> list[str]:
        if ext in ("py", "toml"):
            return self.code["py"]
        if ext in ("c", "h", "rs"):
            return self.code["c"]
        if ext in ("js", "ts", "html", "css"):
            return self.code["js"]
        if ext == "json":
            return self.json
        return self.prose

    def lines(self, pool: list[str], size: int) -> bytes:
        """About *size* bytes of lines from *pool*, cut to exactly *size*."""
        r, out, n = self.rng, [], 0
        while n < size:
            chunk = r.choices(pool, k=max(16, (size - n) // 30))
            out.extend(chunk)
            n += sum(map(len, chunk))
        return "".join(out).encode()[:size]

    def log(self, size: int, t0: int) -> bytes:
        """Application-log lines with increasing timestamps."""
        r, msgs, out, n, t = self.rng, self.log_msgs, [], 0, t0 * 1000
        levels = ("INFO",) * 12 + ("DEBUG",) * 5 + ("WARNING", "ERROR")
        while n < size:
            t += r.randrange(1, 400)
            line = (
                f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t // 1000))}.{t % 1000:03d}Z "
                f"{r.choice(levels)} [worker-{r.randrange(16)}] {r.choice(msgs)} "
                f"id={r.getrandbits(48):012x} dur={r.randrange(2000)}ms\n"
            )
            out.append(line)
            n += len(line)
        return "".join(out).encode()[:size]

    def csv(self, size: int) -> bytes:
        r, out, n = self.rng, ["id,name,city,amount,ratio,flag\n"], 0
        for row in range(1, 1 << 62):
            line = (
                f"{row},{r.choice(self.idents)},{r.choice(self.words)},{r.randrange(10**7)},"
                f"{r.random():.5f},{r.randrange(2)}\n"
            )
            out.append(line)
            n += len(line)
            if n >= size:
                break
        return "".join(out).encode()[:size]


def _log_uniform(rng: random.Random, lo: int, hi: int) -> int:
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _semi(rng: random.Random, size: int) -> bytes:
    """Database-like 8 KiB pages: a header, packed records, random blobs, zero fill."""
    out = bytearray()
    page = 0
    while len(out) < size:
        used = rng.randrange(512, 8192)
        header = page.to_bytes(8, "little") + used.to_bytes(4, "little") + b"PAGE"
        records = bytearray()
        while len(records) < used // 2:
            records += rng.randrange(1 << 20).to_bytes(4, "little") + bytes(rng.randrange(8)) + b"\x01\x00"
        blob = rng.randbytes(max(0, used - len(records)))
        body = header + records + blob
        out += body[:8192] + bytes(max(0, 8192 - len(body)))
        page += 1
    return bytes(out[:size])


def _plan(rng: random.Random, total: int) -> Iterator[tuple[str, str, int]]:
    """(relative path, kind, size) for every file, in generation order."""
    scale = total / GIB
    n_text = max(50, round(SMALL_TEXT_PER_GIB * scale))
    n_bin = max(5, round(SMALL_BIN_PER_GIB * scale))
    used = 0
    # Source-like projects: project/pkg/module/file, ~40 files per directory.
    per_dir = 40
    for i in range(n_text):
        d = i // per_dir
        ext = rng.choice(_EXT)
        size = _log_uniform(rng, 100, 24 * KIB)
        used += size
        path = f"projects/p{d // 100:03d}/pkg{(d // 10) % 10}/mod{d % 10}/{rng.choice(_EXT_NAMES)}_{i}.{ext}"
        yield path, "text:" + ext, size
    for i in range(n_bin):
        size = _log_uniform(rng, 1 * KIB, 64 * KIB)
        used += size
        ext = rng.choice(("png", "ico", "bin", "woff2", "pyc"))
        yield f"assets/a{i // 200:03d}/asset_{i}.{ext}", "random", size
    rest = max(0, total - used)
    budgets = {kind: int(rest * share) for kind, share in SHARES.items()}
    limits = {"text": (1 * MIB, 48 * MIB), "random": (256 * KIB, 64 * MIB),
              "compressed": (100 * KIB, 32 * MIB), "semi": (1 * MIB, 32 * MIB)}
    for kind, budget in budgets.items():
        i = 0
        while budget > 0:
            size = min(budget, _log_uniform(rng, *limits[kind]))
            budget -= size
            if kind == "text":
                sub = rng.choice(("log", "log", "csv"))
                yield f"data/{kind}/{sub}_{i:04d}.{sub}", f"{kind}:{sub}", size
            elif kind == "compressed":
                sub = rng.choice(("zst", "gz"))
                yield f"data/{kind}/archive_{i:04d}.tar.{sub}", f"{kind}:{sub}", size
            else:
                yield f"data/{kind}/{kind}_{i:04d}.{'db' if kind == 'semi' else 'bin'}", kind, size
            i += 1


_EXT_NAMES = ("util", "core", "model", "view", "test", "config", "parser", "client", "server", "io")


def _compressed(text: _Text, sub: str, size: int) -> bytes:
    """Real compressor output of *size* bytes (text in; whole frames, the last one cut)."""
    out = bytearray()
    while len(out) < size:
        pool = text.code["py"] if len(out) % 2 else text.prose
        raw = text.lines(pool, min(max(size * 4, 64 * KIB), 32 * MIB))
        if sub == "zst":
            out += zstandard.ZstdCompressor(level=3).compress(raw)
        else:
            out += gzip.compress(raw, compresslevel=6, mtime=0)
    return bytes(out[:size])


def _content(rng: random.Random, text: _Text, kind: str, size: int) -> bytes:
    main, _, sub = kind.partition(":")
    if main == "random":
        return rng.randbytes(size)
    if main == "semi":
        return _semi(rng, size)
    if main == "compressed":
        return _compressed(text, sub, size)
    if sub == "log":
        return text.log(size, BASE_MTIME + rng.randrange(10**7))
    if sub == "csv":
        return text.csv(size)
    return text.lines(text.pool_for(sub), size)


def generate(dest: Path, size: int, seed: int, *, quiet: bool = False) -> dict[str, Any]:
    """Create the tree at *dest* (which must not exist); return its summary."""
    t0 = time.monotonic()
    rng = random.Random(seed)
    text = _Text(random.Random(seed + 1))
    dest.mkdir(parents=True)
    tree_hash = hashlib.sha256()
    files = total = 0
    made_dirs: set[str] = set()
    for rel, kind, fsize in _plan(rng, size):
        data = _content(rng, text, kind, fsize)
        parent = rel.rpartition("/")[0]
        if parent not in made_dirs:
            (dest / parent).mkdir(parents=True, exist_ok=True)
            made_dirs.add(parent)
        path = dest / rel
        path.write_bytes(data)
        # Nanosecond mtimes, as real filesystems have (tar formats differ in keeping them).
        mtime_ns = (BASE_MTIME - rng.randrange(3 * 365 * 86400)) * 10**9 + rng.randrange(10**9)
        os.utime(path, ns=(mtime_ns, mtime_ns))
        if kind.endswith(":py") and rng.random() < 0.05:
            path.chmod(0o755)
        tree_hash.update(f"{rel}\0{len(data)}\0".encode())
        tree_hash.update(data)
        files += 1
        total += len(data)
        if not quiet and files % 5000 == 0:
            print(f"  {files} files, {total / 1e6:.0f} MB", file=sys.stderr)
    # Odd corners a real tree has.
    extras = dest / "extras"
    (extras / "empty-dir" / "nested-empty").mkdir(parents=True)
    (extras / "empty-file").write_bytes(b"")
    (extras / "ünïcödé-名前.txt").write_bytes("grüße\n".encode())
    os.symlink("../projects", extras / "link-to-projects")
    os.symlink("ünïcödé-名前.txt", extras / "relative-link")
    os.symlink("does-not-exist", extras / "dangling-link")
    for name in ("empty-file", "ünïcödé-名前.txt", "link-to-projects", "relative-link", "dangling-link"):
        os.utime(extras / name, (BASE_MTIME, BASE_MTIME), follow_symlinks=False)
    tree_hash.update(b"extras-v1")
    files += 3
    # Directory mtimes last (creating files changes them), deepest first.
    directories = 0
    for dirpath, _dirnames, _files in sorted(os.walk(dest), key=lambda w: -w[0].count(os.sep)):
        mtime_ns = (BASE_MTIME * 10**9) - (zlib.crc32(dirpath[len(str(dest)):].encode()) * 7919)
        os.utime(dirpath, ns=(mtime_ns, mtime_ns))
        directories += 1
    summary = {
        "format": FORMAT,
        "seed": seed,
        "size": format_size(size),
        "files": files,
        "directories": directories,
        "bytes": total,
        "sha256": tree_hash.hexdigest(),
        "seconds": round(time.monotonic() - t0, 1),
    }
    return summary


def stamp_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".stamp.json")


def existing(dest: Path, size: int, seed: int) -> dict[str, Any] | None:
    """The summary of the tree at *dest* if its stamp says it is this format, size and seed."""
    stamp = stamp_path(dest)
    if dest.is_dir() and stamp.is_file():
        summary = json.loads(stamp.read_text())
        if (summary.get("format"), summary.get("seed"), summary.get("size")) == (
            FORMAT, seed, format_size(size),
        ):
            return dict(summary)
    return None


def ensure_tree(dest: Path, size: int, seed: int, *, quiet: bool = False) -> dict[str, Any]:
    """Reuse *dest* if its stamp matches (format, seed, size); otherwise (re)generate it."""
    summary = existing(dest, size, seed)
    if summary is not None:
        return summary
    stamp = stamp_path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    stamp.unlink(missing_ok=True)
    summary = generate(dest, size, seed, quiet=quiet)
    stamp.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="directory to create (must not exist unless --force)")
    parser.add_argument("--size", default="1G", help="total size, binary units: 1G, 4G, 256M (default 1G)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--force", action="store_true", help="replace an existing DEST")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    if args.dest.exists():
        if not args.force:
            parser.error(f"{args.dest} exists; pass --force to replace it")
        shutil.rmtree(args.dest)
        stamp_path(args.dest).unlink(missing_ok=True)
    summary = generate(args.dest, size, args.seed, quiet=args.quiet)
    stamp_path(args.dest).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
