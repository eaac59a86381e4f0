"""A command loads what it uses and no more: the cost of every ``backupkit`` run.

A run without encryption or a config file does not load cryptography or tomllib
(~13 ms); ssl and urllib.request (TLS to Redis, webhook alerts) and difflib
(suggestions) ~20 ms more; prometheus_client only with --metrics-file. Built-in
sources and the s3 sink register by reference, so their modules (and psycopg, redis,
boto3...) load only when a configuration uses them; the engine imports each verb's
module when that verb runs; entry points are found without ``importlib.metadata``
(~35 ms) where ``sys.path`` is plain directories.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NOT_FOR_A_FILES_BACKUP = (
    "cryptography", "tomllib", "ssl", "urllib.request", "difflib", "prometheus_client",
    "importlib.metadata",
    "backupkit.sources.postgres.source", "backupkit.sources.redis.source",
    "backupkit.sources.jsonexport.source", "backupkit.sinks.s3.sink",
    "psycopg", "redis", "boto3", "sqlalchemy", "fastapi", "fsspec",
    "backupkit.scheduler", "backupkit.claims", "backupkit.server",
    "backupkit.engine.restore", "backupkit.engine.verify", "backupkit.engine.prune",
    "backupkit.core.simulate",
)
NOT_FOR_HELP = (
    *NOT_FOR_A_FILES_BACKUP,
    "backupkit.sources.filesystem.source", "backupkit.engine.backup",
)

SCRIPT = """
import sys
from backupkit.cli import main
unused = sys.argv[3].split(",")
if sys.argv[1] == "--help":
    try:
        main(["--help"])
    except SystemExit:
        pass
    code = 0
else:
    code = main(["backup", "--source", sys.argv[1], "--sink", sys.argv[2], "--compress", "zstd"])
    code = code or main(["backup", "--source", sys.argv[1], "--sink", sys.argv[2], "--kind", "incremental"])
    code = code or main(["list", "--sink", sys.argv[2]])
loaded = sorted(m for m in unused if m in sys.modules)
print(",".join(loaded) or "-")
raise SystemExit(code)
"""


def _loaded(tmp_path: Path, *args: str, unused: tuple[str, ...]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args, ",".join(unused)],
        capture_output=True, text=True, cwd=tmp_path, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("BACKUP")},  # no key: no encryption
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_a_plain_backup_does_not_import_what_it_does_not_use(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.txt").write_text("x")
    loaded = _loaded(tmp_path, str(tmp_path / "src"), str(tmp_path / "sink"),
                     unused=NOT_FOR_A_FILES_BACKUP)
    assert loaded == "-"


def test_help_imports_no_source_and_no_engine_verb(tmp_path: Path) -> None:
    assert _loaded(tmp_path, "--help", "-", unused=NOT_FOR_HELP) == "-"
