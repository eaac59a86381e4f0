"""``manage.py backupkit_run [--set S] [--replicas]``: the scheduler in the foreground."""

from __future__ import annotations

import argparse
from typing import Any

import backupkit.contrib.django as site
from backupkit import cli_run
from backupkit.contrib.django.command import BackupkitCommand, add_set_argument


class Command(BackupkitCommand):
    """Run the sets' schedules until SIGTERM or Ctrl-C, as ``backupkit run`` does (a running
    backup finishes first; ``BACKUP_ENABLED=false`` runs nothing)."""

    stops_on_sigterm = False  # the scheduler's loop stops on it, after a running backup
    help = "Run the schedules of the BACKUPKIT setting's sets in the foreground until SIGTERM or Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        """``--set``, ``--replicas``, ``--lease``."""
        add_set_argument(parser)
        parser.add_argument("--replicas", action="store_true",
                            help="several processes or hosts run this schedule: claim each slot in the sink first")
        parser.add_argument("--lease", default="5min", help="with --replicas: how long a silent claim holds")

    def handle(self, *args: Any, **options: Any) -> None:
        """Hand over to ``backupkit run``'s loop, with this project's engine."""
        run = argparse.Namespace(command="run", set_name=options["set_name"], replicas=options["replicas"],
                                 lease=options["lease"], json=False)
        cli_run.cmd_run(run, engine_for=lambda _: site.engine(), emit=self._emit)

    def _emit(self, args: argparse.Namespace, data: Any, text: str) -> None:
        self.stdout.write(text)
