"""``manage.py backupkit_backup [--set S] [--kind full|incremental] [--reason R]``."""

from __future__ import annotations

from typing import Any

import backupkit.contrib.django as site
from backupkit.contrib.django.command import BackupkitCommand, add_set_argument, human_size
from backupkit.engine.resolve import is_sidecar


class Command(BackupkitCommand):
    """Run one backup of a set of the ``BACKUPKIT`` setting."""

    help = "Back up a set of the BACKUPKIT setting (by default the database and MEDIA_ROOT)."

    def add_arguments(self, parser: Any) -> None:
        """``--set``, ``--kind``, ``--reason``, ``--tag``."""
        add_set_argument(parser)
        parser.add_argument("--kind", choices=["full", "incremental"], default="full",
                            help="incremental stores only what changed since the last backup")
        parser.add_argument("--reason", default="manual", help="recorded in the manifest (default: manual)")
        parser.add_argument("--tag", action="append", default=[], help="a tag for this backup (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        """Back up, then print the backup's id, artifacts and size."""
        manifest = site.engine().backup(options["set_name"], kind=options["kind"],
                                        reason=options["reason"], tags=options["tag"])
        names = ", ".join(a.name for a in manifest.artifacts if not is_sidecar(a))
        self.stdout.write(f"backup {manifest.id} of set {manifest.set_name}: {names} "
                          f"({human_size(manifest.raw_size)} read, {human_size(manifest.stored_size)} stored)")
