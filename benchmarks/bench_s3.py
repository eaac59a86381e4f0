"""S3 upload: a backupkit backup to S3 against boto3's own ``upload_file``.

Starts moto's S3 server in its own process on 127.0.0.1 (so its memory is not
counted), writes a data file once (half random, half text), then runs, interleaved
and repeated, each in a fresh process reaped with ``os.wait4`` (exact peak RSS):

* backupkit: ``python -m backupkit backup --source DATA --sink s3://bench/bk --compress none``
  (filesystem source -> tar -> sha256 twice -> streaming multipart upload, 8 MiB parts,
  4 in flight)
* s3 sink:   the file streamed into ``S3Sink.open_artifact`` alone (no tar, no hashing)
* boto3:     ``boto3.client("s3").upload_file(DATA, "bench", KEY)`` (the S3 transfer
  manager's defaults: 8 MiB parts, 10 threads)

Throughput is bytes stored / wall time of the whole process. The order alternates
between rounds, ratios are taken per round, then the median. The server is reset
between runs. Before the first round, one unmeasured ``upload_file`` of the data warms
the server up (its first multipart upload pays one-time costs, which made round 1's
first tool, always backupkit, ~15 % slower than in any other round).

    python benchmarks/bench_s3.py --size 1G          # ~2 minutes

Prints a markdown table and rewrites the ``## S3 upload`` section of
docs/performance.md (between the ``bench-s3:begin``/``bench-s3:end`` markers),
leaving every other section alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import write_section

TARGET_RATIO = 0.9
TARGET_RSS_MB = 150
BUCKET = "bench"
HEADING = "## S3 upload"
BEGIN, END = "<!-- bench-s3:begin -->", "<!-- bench-s3:end -->"

UPLOAD_FILE = """
import sys, boto3
boto3.client("s3").upload_file(sys.argv[1], sys.argv[2], sys.argv[3])
"""
SINK_ONLY = """
import sys
from backupkit.sinks.s3 import S3Sink
writer = S3Sink(bucket=sys.argv[2]).open_artifact(sys.argv[3], run_id="bench")
with open(sys.argv[1], "rb") as fh:
    while chunk := fh.read(1 << 20):
        writer.write(chunk)
writer.commit()
"""
TOOLS = ("backupkit", "s3 sink", "upload_file")


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Moto:
    """moto_server in its own process."""

    def __init__(self, python: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        server = Path(python).with_name("moto_server")
        self.proc = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).read()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"moto_server did not start on {self.url}") from None
                time.sleep(0.1)

    def reset(self, env: dict[str, str], python: str) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=30).read()
        subprocess.run(
            [python, "-c", f"import boto3; boto3.client('s3').create_bucket(Bucket='{BUCKET}')"],
            env=env, check=True,
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def make_data(path: Path, size: int) -> None:
    """Half random bytes, half text lines, written once and reused."""
    if path.exists() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    line = b"2026-11-23T02:00:00Z INFO request served path=/api/items status=200 bytes=5120\n"
    text_block = line * ((1 << 20) // len(line) + 1)
    with open(path, "wb") as fh:
        written = 0
        while written < size:
            n = min(1 << 20, size - written)
            fh.write(os.urandom(n) if written < size // 2 else text_block[:n])
            written += n


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds, peak RSS (KiB; exact: reaped with ``os.wait4``), stdout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err.decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out.decode()


def bench(args: argparse.Namespace) -> dict[str, Any]:
    size = parse_size(args.size)
    data = args.work / "data" / "payload.bin"
    make_data(data, size)
    subprocess.run(["cat", str(data)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
    moto = Moto(args.python)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BACKUP_"))},
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.url, "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    backupkit = [args.python, "-m", "backupkit", "backup", "--source", str(data),
                 "--sink", f"s3://{BUCKET}/bk", "--compress", "none", "--json"]
    commands = {
        "backupkit": backupkit,
        "s3 sink": [args.python, "-c", SINK_ONLY, str(data), BUCKET, "sink/payload.bin"],
        "upload_file": [args.python, "-c", UPLOAD_FILE, str(data), BUCKET, "uf/payload.bin"],
    }
    rounds = []
    try:
        moto.reset(env, args.python)
        run_measured(commands["upload_file"], env)  # warm-up, not measured
        for i in range(args.rounds):
            result: dict[str, Any] = {}
            order = TOOLS if i % 2 == 0 else TOOLS[::-1]
            for tool in order:
                moto.reset(env, args.python)
                wall, cpu, rss, out = run_measured(commands[tool], env)
                stored = json.loads(out)["artifacts"][0]["stored_size"] if tool == "backupkit" else size
                result[tool] = {"seconds": wall, "cpu": cpu, "rss_mb": rss / 1024, "bytes": stored,
                                "mb_per_s": stored / wall / 1e6}
                print(f"round {i + 1} {tool:<11} {wall:6.2f}s (cpu {cpu:5.2f}s) "
                      f"{stored / wall / 1e6:7.1f} MB/s "
                      f"peak RSS {rss / 1024:6.1f} MiB", flush=True)
            result["ratio"] = result["backupkit"]["mb_per_s"] / result["upload_file"]["mb_per_s"]
            result["sink_ratio"] = result["s3 sink"]["mb_per_s"] / result["upload_file"]["mb_per_s"]
            rounds.append(result)
    finally:
        moto.stop()
    return {"size": size, "rounds": rounds}


def machine(python: str) -> str:
    versions = subprocess.run(
        [python, "-c", "import boto3, moto; print(boto3.__version__, moto.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} cores, boto3 {versions[0]}, moto {versions[1]} "
            f"(server mode, its own process), {dt.date.today().isoformat()}")


def report(result: dict[str, Any], where: str, argv: list[str]) -> str:
    rounds = result["rounds"]
    med = {tool: {k: statistics.median(r[tool][k] for r in rounds) for k in ("mb_per_s", "rss_mb", "seconds", "cpu")}
           for tool in TOOLS}
    ratio = statistics.median(r["ratio"] for r in rounds)
    per_round = ", ".join(f"{r['ratio']:.2f}" for r in rounds)
    sink_ratio = statistics.median(r["sink_ratio"] for r in rounds)
    sink_per_round = ", ".join(f"{r['sink_ratio']:.2f}" for r in rounds)
    rss = max(r["backupkit"]["rss_mb"] for r in rounds)
    ok_ratio = "meets" if ratio >= TARGET_RATIO else "misses"
    ok_rss = "meets" if rss <= TARGET_RSS_MB else "misses"
    size_gib = result["size"] / (1 << 30)
    lines = [
        f"Upload of a {size_gib:g} GiB file (half random, half text) to S3 on 127.0.0.1, "
        f"median of {len(rounds)} interleaved rounds; {where}. "
        f"`python benchmarks/{Path(__file__).name} {' '.join(argv)}`",
        "",
        "| tool | command | seconds | CPU seconds | MB/s | peak RSS (MiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        f"| backupkit | `backupkit backup --source DATA --sink s3://bench/bk --compress none` "
        f"| {med['backupkit']['seconds']:.2f} | {med['backupkit']['cpu']:.2f} "
        f"| {med['backupkit']['mb_per_s']:.0f} "
        f"| {med['backupkit']['rss_mb']:.0f} |",
        f"| s3 sink alone | `S3Sink(...).open_artifact(KEY)`, the file written in 1 MiB chunks "
        f"| {med['s3 sink']['seconds']:.2f} | {med['s3 sink']['cpu']:.2f} "
        f"| {med['s3 sink']['mb_per_s']:.0f} | {med['s3 sink']['rss_mb']:.0f} |",
        f"| boto3 | `boto3.client('s3').upload_file(DATA, 'bench', KEY)` "
        f"| {med['upload_file']['seconds']:.2f} | {med['upload_file']['cpu']:.2f} "
        f"| {med['upload_file']['mb_per_s']:.0f} "
        f"| {med['upload_file']['rss_mb']:.0f} |",
        "",
        f"- Throughput ratio backupkit / upload_file: **{ratio:.2f}x** (per-round: "
        f"{per_round}); target >= {TARGET_RATIO}x: {ok_ratio} it.",
        f"- The s3 sink alone / upload_file: **{sink_ratio:.2f}x** (per-round: {sink_per_round}).",
        f"- Peak RSS of the backupkit process: **{rss:.0f} MiB** (whole process: Python, boto3, "
        f"the tar reader, 4 parts of 8 MiB in flight); target <= {TARGET_RSS_MB} MiB: {ok_rss} it.",
        "- Times are whole processes, start-up included; backupkit also tars and hashes "
        "(sha256 of each file for the incremental index, of the raw and of the stored stream), "
        "boto3 only reads and sends.",
        "",
    ]
    return "\n".join(lines)


def write_doc(path: Path, generated: str) -> None:
    """Replace the ``## S3 upload`` section's generated part; append the section if absent."""
    write_section(path, generated, BEGIN, END, missing=f"{HEADING}\n\n{BEGIN}\n{END}\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="bytes to upload (default 1G)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bks3bench"))
    parser.add_argument("--python", default=sys.executable, help="interpreter with backupkit[s3]")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "performance.md")
    parser.add_argument("--no-doc", action="store_true", help="print only; leave the doc alone")
    parser.add_argument("--clean", action="store_true", help="remove the data file afterwards")
    args = parser.parse_args(argv)
    result = bench(args)
    text = report(result, machine(args.python), argv)
    print()
    print(text)
    if not args.no_doc:
        write_doc(args.doc, text)
    if args.clean:
        shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
