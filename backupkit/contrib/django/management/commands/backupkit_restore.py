"""``manage.py backupkit_restore [ID|latest] [--set S] [--to NAME=TARGET ...] [--clean] [--noinput]``.

Without ``--to`` each artifact goes back where it came from: the Django database of its
``django-db`` source, ``MEDIA_ROOT`` for ``django-media``. That replaces live data, so the
command asks first (``--noinput`` does not ask; without a terminal it is needed), and a
database or media directory that holds anything is still refused unless ``--clean``.
With ``--to`` only the named artifacts are restored, into the targets given.
"""

from __future__ import annotations

import sys
from typing import Any

import backupkit.contrib.django as site
from backupkit.cli_restore import targets
from backupkit.contrib.django.command import (
    BackupkitCommand,
    add_set_argument,
    command_error,
    human_size,
)
from backupkit.core.manifest import Manifest
from backupkit.engine.resolve import is_sidecar
from backupkit.errors import ConfigError


class Command(BackupkitCommand):
    """Restore a backup into the configured database and MEDIA_ROOT, or elsewhere (``--to``)."""

    help = ("Restore a backup: by default into the databases and MEDIA_ROOT it was taken from "
            "(asks first; --noinput does not), or with --to NAME=TARGET elsewhere.")

    def add_arguments(self, parser: Any) -> None:
        """The backup, ``--set``, ``--to``, ``--artifact`` and the restore flags."""
        parser.add_argument("backup", nargs="?", default="latest", metavar="ID|latest",
                            help="backup id, unique id prefix or 'latest' (default)")
        add_set_argument(parser)
        parser.add_argument("--to", action="append", default=[], metavar="NAME=TARGET",
                            help="restore artifact NAME into TARGET (a directory or database URL) "
                                 "instead of where it came from; only the artifacts named are restored")
        parser.add_argument("--artifact", action="append", default=None, metavar="NAME",
                            help="restore only this artifact (repeatable)")
        parser.add_argument("--clean", action="store_true",
                            help="replace what the target holds: drop and recreate the backup's tables "
                                 "(PostgreSQL), delete their rows (SQLite), replace MEDIA_ROOT's directory")
        parser.add_argument("--create", action="store_true", help="create a target database that is missing")
        parser.add_argument("--no-owner", action="store_true", help="PostgreSQL: do not restore object owners")
        parser.add_argument("--no-privileges", action="store_true", help="PostgreSQL: do not restore GRANTs")
        parser.add_argument("--allow-unencrypted", action="store_true",
                            help="restore a backup that is not encrypted although its set encrypts")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive",
                            help="do not ask before restoring into the configured database and MEDIA_ROOT")

    def handle(self, *args: Any, **options: Any) -> None:
        """Resolve the backup, choose the targets, confirm, restore, report the checks."""
        engine = site.engine()
        manifest = engine.resolve(options["backup"], set_name=options["set_name"])
        if options["to"]:
            to: Any = targets(options["to"])
            labels: dict[str, str] = {}
        else:
            to, labels = self._default_targets(manifest, options["artifact"])
            if options["interactive"]:
                self._confirm(manifest, labels)
        result = engine.restore(
            manifest.id, to=to, set_name=manifest.set_name, artifacts=options["artifact"],
            overwrite=options["clean"], allow_unencrypted=options["allow_unencrypted"],
            options={"clean": options["clean"], "create": options["create"],
                     "no_owner": options["no_owner"], "no_privileges": options["no_privileges"]})
        parts = []
        for name, where in result.targets.items():
            checks = result.checks.get(name, {})
            verified = (f", {checks['tables_checked']} tables, row counts match the backup"
                        if checks.get("row_counts_match") else "")
            parts.append(f"{name} into {labels.get(name, where)}{verified}")
        self.stdout.write(f"restored backup {result.backup_id} ({human_size(result.bytes)}): " + "; ".join(parts))

    @staticmethod
    def _default_targets(manifest: Manifest, only: list[str] | None) -> tuple[dict[str, str], dict[str, str]]:
        defaults = site.default_targets(manifest.set_name)
        names = only or [a.name for a in manifest.artifacts if not is_sidecar(a)]
        missing = [n for n in names if n not in defaults]
        if missing:
            raise ConfigError(f"artifact {missing[0]!r} of backup {manifest.id} has no database or "
                              f"MEDIA_ROOT to go back to; give it a target with --to {missing[0]}=TARGET")
        return ({n: defaults[n].location for n in names}, {n: defaults[n].label for n in names})

    def _confirm(self, manifest: Manifest, labels: dict[str, str]) -> None:
        where = ", ".join(f"{name} into {label}" for name, label in labels.items())
        if not sys.stdin.isatty():
            raise command_error(f"restoring backup {manifest.id} would write {where}: pass --noinput to "
                                "restore without asking, or --to NAME=TARGET to restore elsewhere")
        self.stdout.write(f"This restores backup {manifest.id} of set {manifest.set_name} (taken "
                          f"{manifest.created_at:%Y-%m-%d %H:%M:%S}Z): {where}.\n"
                          "What the backup holds replaces what is there now.")
        answer = input("Type 'yes' to continue, or 'no' to cancel: ")
        if answer.strip().lower() != "yes":
            raise command_error("restore cancelled")
