"""What the ``backupkit_*`` management commands share: errors a user can fix become one-line
``CommandError``\\s with backupkit's message and exit code, never a traceback."""

from __future__ import annotations

import importlib
import signal
import threading
from typing import TYPE_CHECKING, Any

from backupkit.errors import BackupInterrupted, BackupkitError

if TYPE_CHECKING:  # Django has no type hints: the part of BaseCommand used here

    class BaseCommand:
        """Django's ``django.core.management.base.BaseCommand``."""

        help: str
        requires_system_checks: Any
        stdout: Any
        stderr: Any
        style: Any

        def execute(self, *args: Any, **options: Any) -> Any:
            """Run the command (``handle``) with checks and output set up."""

else:
    from django.core.management.base import BaseCommand


def command_error(message: str, returncode: int = 1) -> Exception:
    """Django's ``CommandError``: printed as one line, and the process exits *returncode*."""
    error: Exception = importlib.import_module("django.core.management.base").CommandError(
        message, returncode=returncode)
    return error


def _terminated(signum: int, frame: Any) -> None:
    raise BackupInterrupted("the command was terminated (SIGTERM); nothing of this run was kept")


class BackupkitCommand(BaseCommand):
    """A management command whose :class:`~backupkit.errors.BackupkitError`\\s are
    ``CommandError``\\s (``CommandError: <message>``, exit code as ``backupkit``'s).

    The system checks do not run first (``manage.py check`` runs them): a fault in the
    ``BACKUPKIT`` setting is then the command's one-line error, not a report of every app.
    """

    requires_system_checks: Any = ()
    #: SIGTERM stops the command as Ctrl-C does, so a backup cut short is removed again
    #: (as by ``backupkit``); a command with a signal loop of its own turns this off.
    stops_on_sigterm = True

    def execute(self, *args: Any, **options: Any) -> Any:
        """Run the command, translating backupkit's errors."""
        catch = self.stops_on_sigterm and threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminated) if catch else None
        try:
            return super().execute(*args, **options)
        except BackupkitError as exc:
            raise command_error(str(exc), exc.exit_code) from None
        finally:
            if catch:
                signal.signal(signal.SIGTERM, previous)


def add_set_argument(parser: Any) -> None:
    """``--set NAME`` (default: the only configured set)."""
    parser.add_argument("--set", dest="set_name", metavar="NAME", default=None,
                        help="the backup set (default: the only one configured)")


def human_size(n: float) -> str:
    """*n* bytes for people: ``12.3 MiB``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"
