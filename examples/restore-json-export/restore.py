"""Restore the web app's JSON backup into a database, as a host app would.

    aws s3 cp s3://app-backups/backups/2026-12-03T02-00-00-auto-backup-2026-12-03T02-00-00.json.gz .
    python restore.py 2026-12-03T02-00-00-auto-backup-2026-12-03T02-00-00.json.gz \\
        postgresql://app@localhost/app_restored --create

(``gunzip`` first works as well: the file is then ``....json``.) The restore runs in one
transaction; it refuses tables that hold rows unless ``--clean``, and checks every
table's row count against the export's header.
"""

from __future__ import annotations

import argparse
import sys

from backupkit.errors import BackupkitError
from backupkit.sources.jsonexport import restore_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="the export (.json or .json.gz)")
    parser.add_argument("url", help="the database to restore into (postgresql://..., sqlite:///...)")
    parser.add_argument("--create", action="store_true", help="create missing tables from the export")
    parser.add_argument("--clean", action="store_true", help="empty tables that hold rows first")
    args = parser.parse_args()
    try:
        checks = restore_file(args.file, args.url, create=args.create, clean=args.clean)
    except BackupkitError as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 1
    print(f"restored {checks['rows']} rows into {checks['tables_checked']} tables; row counts match the export")
    return 0


if __name__ == "__main__":
    sys.exit(main())
