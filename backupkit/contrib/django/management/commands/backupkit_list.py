"""``manage.py backupkit_list [--set S] [--json]``."""

from __future__ import annotations

import json
from typing import Any

import backupkit.contrib.django as site
from backupkit.contrib.django.command import BackupkitCommand, add_set_argument, human_size
from backupkit.engine.resolve import is_sidecar


class Command(BackupkitCommand):
    """List the backups in the sinks of the ``BACKUPKIT`` setting, oldest first."""

    help = "List the backups of the BACKUPKIT setting's sets, oldest first."

    def add_arguments(self, parser: Any) -> None:
        """``--set``, ``--json``."""
        add_set_argument(parser)
        parser.add_argument("--json", action="store_true", help="one JSON document instead of lines")

    def handle(self, *args: Any, **options: Any) -> None:
        """Print one line per backup (id, set, kind, time, size, artifacts)."""
        catalog = site.engine().catalog().for_set(options["set_name"])
        for problem in catalog.problems:
            self.stderr.write(f"warning: {problem.message}")
        if options["json"]:
            doc = {"backups": catalog.to_records(), "problems": [p.message for p in catalog.problems]}
            self.stdout.write(json.dumps(doc, default=str, indent=2))
            return
        for m in catalog.manifests:
            names = ", ".join(a.name for a in m.artifacts if not is_sidecar(a))
            self.stdout.write(f"{m.id}  {m.set_name}  {m.kind:<11}  {m.created_at:%Y-%m-%d %H:%M:%S}Z  "
                              f"{human_size(m.stored_size):>10}  {names}")
        if not catalog.manifests:
            self.stdout.write("no backups")
