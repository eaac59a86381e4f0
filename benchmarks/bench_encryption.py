"""Encryption overhead: backupkit with zstd against zstd + aes, backup and restore.

Generates (or reuses) the tree of ``make_tree.py``, reads it once so the page
cache is warm, then runs per round, in alternating order:

* backup:  ``python -m backupkit backup --source TREE --sink SINK --compress zstd``
  against the same with ``--encrypt`` (the key in ``BACKUP_ENCRYPTION_KEY``, from
  ``backupkit keys generate``; the plain runs get an environment without it);
* restore: ``python -m backupkit restore latest --sink SINK --to DIR`` of each.

The overhead is encrypted / plain wall time, per round (the two runs are seconds
apart), then the median. The first round's encrypted restore is compared with the
tree. A second measurement takes the tree out of it: the ``aes`` transform alone,
in-process, encrypting and decrypting 512 MiB of random bytes (what compressed
data looks like) through ``AesTransform.encoder`` / ``decoder`` in 1 MiB pieces.

    python benchmarks/bench_encryption.py --size 1G          # 3 rounds, ~4 minutes

Target: zstd-3 + aes costs at most 15 % more wall time than zstd-3 alone, for
backup and for restore.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
from bench_filesystem import Measured, _machine, _rm, interleaved, round_trip, stored_bytes, warm

TARGET_OVERHEAD = 1.15
KEY_VARS = ("BACKUP_ENCRYPTION_KEY", "BACKUP_ENCRYPTION_KEY_FILE", "BACKUP_ENCRYPTION")
LABELS = {
    "plain_backup": ("backup", "zstd"),
    "aes_backup": ("backup", "zstd + aes"),
    "plain_restore": ("restore", "zstd"),
    "aes_restore": ("restore", "zstd + aes"),
}
MIB = 1 << 20


# -- the transform alone (in a child process: --micro-json) --------------------------------------
def micro(mib: int) -> dict[str, Any]:
    """Encrypt then decrypt *mib* MiB of random bytes through the aes transform, timed."""
    from backupkit.crypto.keys import Key, Keyring
    from backupkit.transforms.aes import AesTransform

    transform = AesTransform().with_keyring(Keyring([Key.generate()]))
    block = os.urandom(64 * MIB)
    pieces = [block[i * MIB:(i + 1) * MIB] for i in range(64)]  # bytes, as zstd writes them
    sealed: list[bytes] = []

    class Collect:
        def write(self, data: bytes, /) -> int:
            sealed.append(bytes(data))
            return len(data)

    t0, c0 = time.perf_counter(), time.process_time()
    encoder = transform.encoder(Collect())
    for i in range(mib):
        encoder.write(pieces[i % 64])
    encoder.close()
    enc = (time.perf_counter() - t0, time.process_time() - c0)
    stream = io.BytesIO(b"".join(sealed))
    sealed.clear()
    plain: list[bytes] = []
    t0, c0 = time.perf_counter(), time.process_time()
    decoder = transform.decoder(stream)
    while data := decoder.read(MIB):
        plain.append(data)
    dec = (time.perf_counter() - t0, time.process_time() - c0)
    expected = hashlib.sha256()
    for i in range(mib):
        expected.update(pieces[i % 64])
    ok = hashlib.sha256(b"".join(plain)).digest() == expected.digest()
    return {"bytes": mib * MIB, "stored": len(stream.getvalue()), "chunk_size": transform.chunk_size,
            "encrypt": enc, "decrypt": dec, "round_trip": ok}


def run_micro(python: str, mib: int) -> dict[str, Any]:
    out = subprocess.run([python, __file__, "--micro-json", str(mib)], capture_output=True, text=True,
                         check=True).stdout
    return dict(json.loads(out))


# -- the tree ----------------------------------------------------------------------------------
def bench(tree: Path, summary: dict[str, Any], work: Path, rounds: int, *, python: str,
          verify: bool) -> dict[str, Any]:
    scratch = work / "scratch-encryption"
    _rm(scratch)
    scratch.mkdir(parents=True)
    display = {str(scratch): "$W", str(tree.parent): "$T"}
    plain_env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    key = subprocess.run([python, "-m", "backupkit", "keys", "generate"], capture_output=True,
                         text=True, check=True, env=plain_env).stdout.strip()
    aes_env = {**plain_env, "BACKUP_ENCRYPTION_KEY": key}
    warm_s = warm(tree)
    results: dict[str, list[Measured]] = {k: [] for k in LABELS}
    stored: dict[str, int] = {}
    checks: list[str] = []
    for r in range(rounds):
        backup, restore = {}, {}
        for variant, flags in (("plain", []), ("aes", ["--encrypt"])):
            # Restored trees stay until the end (ext4 reuses freed inodes slowly).
            sink, target = scratch / f"sink-{variant}-{r}", scratch / f"restore-{variant}-{r}"
            backup[f"{variant}_backup"] = [[python, "-m", "backupkit", "backup", "--source", str(tree),
                                            "--sink", str(sink), "--compress", "zstd", *flags]]
            restore[f"{variant}_restore"] = [[python, "-m", "backupkit", "restore", "latest",
                                              "--sink", str(sink), "--to", str(target)]]
        for step in (backup, restore):
            interleaved(step, r, rounds, results, cwd=scratch, display=display,
                        env=lambda k: aes_env if k.startswith("aes") else plain_env)
        for variant in ("plain", "aes"):
            stored[variant] = stored_bytes(scratch / f"sink-{variant}-{r}")
            _rm(scratch / f"sink-{variant}-{r}")
        if verify and r == 0:
            checks.append(round_trip("encrypted backup restored", tree,
                                     scratch / "restore-aes-0" / tree.name))
    _rm(scratch)
    return {"tree": summary, "warm_seconds": round(warm_s, 1), "results": results, "stored": stored,
            "checks": checks}


# -- reporting ----------------------------------------------------------------------------------
def report(bench_: dict[str, Any], micro_: dict[str, Any] | None, machine: dict[str, str], argv: list[str],
           load: tuple[Any, Any]) -> str:
    t, res, stored = bench_["tree"], bench_["results"], bench_["stored"]
    out = [*common.header("bench_encryption.py", argv, machine, load), common.tree_heading(t), ""]
    out.append(f"`$T` = the tree's parent directory, `$W` = a scratch directory; page cache warmed by "
               f"reading the tree once ({bench_['warm_seconds']} s). The `zstd + aes` runs have "
               "`BACKUP_ENCRYPTION_KEY` set to a random key (`backupkit keys generate`); the `zstd` "
               "runs have no key in their environment. MB = 10^6 bytes of file data.")
    out.append("")
    out += common.rows(res, LABELS, t["bytes"])
    out.append("")
    for step in ("backup", "restore"):
        wall = common.per_round(res[f"aes_{step}"], res[f"plain_{step}"])
        cpu = common.per_round(res[f"aes_{step}"], res[f"plain_{step}"], "cpu")
        user = common.per_round(res[f"aes_{step}"], res[f"plain_{step}"], "user")
        med = statistics.median(wall)
        out.append(f"- **{step}, zstd + aes / zstd, wall time**: per round {common.fmt_ratios(wall)}; median "
                   f"**{med:.3f}** ({med - 1:+.1%}); target <= {TARGET_OVERHEAD:.2f}: "
                   f"{common.verdict(med <= TARGET_OVERHEAD)}. CPU time (user + sys) per round "
                   f"{common.fmt_ratios(cpu)}, median {statistics.median(cpu):.3f}; user CPU only "
                   f"(without the kernel's file and directory work) per round {common.fmt_ratios(user)}, "
                   f"median {statistics.median(user):.3f}")
    out.append(f"- stored: zstd {stored['plain'] / 1e6:.2f} MB, zstd + aes {stored['aes'] / 1e6:.2f} MB "
               f"(+{stored['aes'] - stored['plain']:,} bytes: a 48-byte header and a 16-byte tag "
               "per 64 KiB chunk)")
    out += [f"- round trip check, {check}" for check in bench_["checks"]]
    if micro_ is None:
        return "\n".join(out).rstrip() + "\n"
    mb, plain_backup = micro_["bytes"] / 1e6, statistics.median(m.wall for m in res["plain_backup"])
    plain_restore = statistics.median(m.wall for m in res["plain_restore"])
    enc, dec = micro_["encrypt"], micro_["decrypt"]
    per_tree = stored["aes"] / micro_["bytes"]  # the tree's stored bytes, in units of the micro run
    out.append(
        f"- **the aes transform alone**, in-process: {micro_['bytes'] // MIB} MiB of random bytes "
        f"written in 1 MiB pieces (chunk size {micro_['chunk_size'] // 1024} KiB): encrypt "
        f"{mb / enc[0]:.0f} MB/s ({enc[0]:.2f} s, CPU {enc[1]:.2f} s), decrypt read in 1 MiB "
        f"pieces {mb / dec[0]:.0f} MB/s ({dec[0]:.2f} s, CPU {dec[1]:.2f} s); round trip "
        f"{'identical' if micro_['round_trip'] else 'DIFFERENT'}. For this tree's "
        f"{stored['aes'] / 1e6:.0f} MB of stored bytes that is {enc[0] * per_tree:.2f} s to encrypt "
        f"({enc[0] * per_tree / plain_backup:.1%} of the zstd backup's median) and "
        f"{dec[0] * per_tree:.2f} s to decrypt ({dec[0] * per_tree / plain_restore:.1%} of the "
        f"zstd restore's)")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--micro-json"]:
        print(json.dumps(micro(int(argv[1]))))
        return 0
    parser = common.tree_parser(__doc__ or "")
    parser.add_argument("--micro-mib", type=int, default=512,
                        help="MiB through the aes transform alone (default 512; 0 skips it)")
    args = parser.parse_args(argv)
    backupkit = common.use_rev(args)
    common.check_tools(parser, ("diff",), args.python)

    load0 = os.getloadavg()
    machine = {**_machine(), "cryptography": common.tool_version(
        [args.python, "-c", "import cryptography; print(cryptography.__version__)"]), "backupkit": backupkit}
    tree, summary = common.tree_for(args)
    result = bench(tree, summary, args.work, args.rounds, python=args.python,
                   verify=not args.no_verify)
    micro_ = run_micro(args.python, args.micro_mib) if args.micro_mib > 0 else None
    print(f"  aes transform alone: {micro_}", file=sys.stderr)
    load = (load0, os.getloadavg())
    common.publish(args, report(result, micro_, machine, argv, load), "encryption", "## Encryption",
                   machine, argv, load, result["results"],
                   **{k: result[k] for k in ("tree", "stored", "checks")}, micro=micro_)
    return 0


if __name__ == "__main__":
    sys.exit(main())
