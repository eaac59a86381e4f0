"""The ``restore`` command: its arguments, targets per artifact (``--to NAME=TARGET``),
and, given no backup id, the list of backups there are to restore (seed 002's guide)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any

from backupkit.errors import ConfigError


def add_parser(sub: Any, common: Callable[..., None]) -> None:
    """Add ``restore`` to the ``backupkit`` parser."""
    p = sub.add_parser("restore", help="restore a backup")
    common(p)
    p.add_argument("backup", metavar="ID|latest|URL", nargs="?", default=None,
                   help="backup id, unique id prefix, 'latest', or the URL/path of a backup's manifest "
                        "or artifact (s3://bucket/prefix/host/daily/NAME.manifest.json, "
                        "/var/backups/app/daily/NAME.files.tar.zst); without it, list the backups")
    p.add_argument("--to", action="append", default=[], metavar="[NAME=]TARGET",
                   help="directory (or database URL) to restore into; NAME=TARGET gives one "
                        "artifact its own target (repeatable: --to files=/srv/app "
                        "--to db=postgresql://user@host/app)")
    p.add_argument("--artifact", action="append", default=None, metavar="NAME",
                   help="restore only this artifact (repeatable)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow a non-empty target; entries from the backup replace existing ones")
    p.add_argument("--clean", action="store_true",
                   help="databases: drop what the backup holds before restoring it "
                        "(pg_restore --clean --if-exists); a non-empty database is refused without it")
    p.add_argument("--create", action="store_true", help="databases: create the target database if missing")
    p.add_argument("--flush", action="store_true",
                   help="redis: replace the keys of a target server that holds some (refused without it)")
    p.add_argument("--no-owner", action="store_true", help="databases: do not restore object owners")
    p.add_argument("--no-privileges", action="store_true", help="databases: do not restore GRANTs")
    p.add_argument("--allow-unencrypted", action="store_true",
                   help="restore a backup that is not encrypted although its set is configured "
                        "to encrypt (refused by default: it may have been planted in the sink)")
    p.add_argument("--allow-external-symlinks", action="store_true",
                   help="restore symlinks that lead out of the target (absolute, or up past its "
                        "top) as they are; nothing is ever written through them")

def cmd_restore(args: argparse.Namespace, *, engine_for: Callable[..., Any], emit: Callable[..., None],
                progress: Callable[..., Any], human: Callable[[float], str],
                list_backups: Callable[[argparse.Namespace], int]) -> int:
    """``backupkit restore``; without a backup id, the backups there are to restore."""
    if args.backup is None:
        code = list_backups(args)
        if not args.json:
            print("restore one with: backupkit restore ID --to TARGET", file=sys.stderr)
        return code
    if not args.to:
        raise ConfigError("restore needs --to: a directory, a database URL, or NAME=TARGET per artifact")
    engine = engine_for(args)
    line = progress(sys.stderr, enabled=not args.json)
    try:
        options = {"clean": args.clean, "create": args.create, "no_owner": args.no_owner,
                   "no_privileges": args.no_privileges, "flush": args.flush}
        result = engine.restore(args.backup, to=targets(args.to), set_name=args.set_name,
                                artifacts=args.artifact, overwrite=args.overwrite or args.clean,
                                options=options, allow_external_symlinks=args.allow_external_symlinks,
                                allow_unencrypted=args.allow_unencrypted, progress=line)
    finally:
        line.done()
    if not isinstance(targets(args.to), dict):
        from backupkit.engine.restore import redacted  # noqa: PLC0415

        where = f"to {redacted(args.to[0])}"
    else:
        where = ", ".join(f"{k} to {v}" for k, v in result.targets.items())
    checked = "".join(f"; {name}: {c['tables_checked']} tables, row counts match the backup"
                      for name, c in result.checks.items() if c.get("row_counts_match"))
    checked += "".join(f"; {name}: {sum(c['keys'].values())} keys, key counts match the backup"
                       for name, c in result.checks.items() if c.get("key_counts_match"))
    emit(args, result.to_dict(),
          f"restored backup {result.backup_id} ({human(result.bytes)}) {where}{checked}")
    return 0


NAMED_TARGET = re.compile(r"([A-Za-z0-9_.-]+)=(.+)\Z", re.S)


def targets(values: list[str]) -> str | dict[str, str]:
    """``--to`` values: one target, or ``NAME=TARGET`` for each artifact."""
    named = [NAMED_TARGET.match(v) for v in values]
    if len(values) == 1 and not named[0]:
        return values[0]
    if not all(named):
        raise ConfigError("--to: give one target, or NAME=TARGET for each artifact "
                          "(e.g. --to files=/srv/app --to db=postgresql://host/app)")
    out: dict[str, str] = {}
    for m in named:
        assert m is not None
        if m.group(1) in out:
            raise ConfigError(f"--to: artifact {m.group(1)!r} is given two targets")
        out[m.group(1)] = m.group(2)
    return out


