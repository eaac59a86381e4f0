"""backupkit from Python, the way a notebook uses it: configure, back up, list, restore.

    python examples/notebook_quickstart.py [WORKDIR]

Everything happens under WORKDIR (a new temporary directory by default): a small
``data/`` tree is backed up into ``backups/`` and restored into ``restored/``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import backupkit

work = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="backupkit-demo-"))
data = work / "data"
(data / "notes").mkdir(parents=True, exist_ok=True)
(data / "notes" / "hello.txt").write_text("hello, backupkit\n")

# 1. An engine from a plain dict: the same shape as backupkit.toml.
engine = backupkit.Engine.from_config(
    {
        "sets": {
            "demo": {
                "sources": [{"type": "filesystem", "name": "files", "paths": [str(data)]}],
                "compress": "zstd",
                "sink": str(work / "backups"),
            }
        }
    }
)

# 2. Back up: the manifest comes back once every artifact is stored.
manifest = engine.backup("demo", reason="notebook")
print(f"backup {manifest.id}: {manifest.raw_size} bytes read, {manifest.stored_size} stored")

# 3. The catalog as plain dicts; in a notebook: pandas.DataFrame(records).
records = engine.catalog().to_records()
for record in records:
    print(record["id"], record["set"], record["kind"], record["stored_size"], record["created_at"])

# 4. Restore the newest backup; the tree comes back under its base name.
result = engine.restore("latest", to=work / "restored")
restored = work / "restored" / "data" / "notes" / "hello.txt"
print(f"restored backup {result.backup_id}: {restored.read_text()!r}")
