"""A run without encryption or a config file does not load what it does not use
(cryptography, tomllib: ~13 ms of every command's start-up; ssl and urllib.request,
for TLS to Redis and webhook alerts, and difflib, for suggestions: ~20 ms more;
prometheus_client without --metrics-file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from backupkit.cli import main
code = main(["backup", "--source", sys.argv[1], "--sink", sys.argv[2], "--compress", "zstd"])
code = code or main(["backup", "--source", sys.argv[1], "--sink", sys.argv[2], "--kind", "incremental"])
code = code or main(["list", "--sink", sys.argv[2]])
unused = ("cryptography", "tomllib", "ssl", "urllib.request", "difflib", "prometheus_client")
loaded = sorted(m for m in unused if m in sys.modules)
print(",".join(loaded) or "-")
raise SystemExit(code)
"""


def test_a_plain_backup_does_not_import_what_it_does_not_use(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f.txt").write_text("x")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "src"), str(tmp_path / "sink")],
        capture_output=True, text=True, cwd=tmp_path, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("BACKUP")},  # no key: no encryption
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "-"
