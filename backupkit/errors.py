"""Every error backupkit raises on purpose.

One root, :class:`BackupkitError`; each subclass also derives from the builtin it
resembles where one fits, so ``except ValueError`` in a host app still works.
Messages are one line, name the thing at fault and say what to do. They never
contain secrets. ``exit_code`` is what the CLI exits with.
"""

from __future__ import annotations

from collections.abc import Iterable


class BackupkitError(Exception):
    """Root of every error backupkit raises on purpose."""

    exit_code = 1


class BackupkitWarning(UserWarning):
    """Root of the warnings backupkit gives on purpose; the CLI prints each as one line."""


class DurationUnitWarning(BackupkitWarning):
    """A duration was read otherwise than earlier backupkit builds read it: ``'1m'`` is a
    month (as in restic and borg), where those builds read a minute."""


class ConfigError(BackupkitError, ValueError):
    """A configuration value, key, or command-line argument is wrong."""

    exit_code = 2


class PluginError(ConfigError):
    """A plugin id is unknown, registered twice, or a plugin misbehaves."""


class KeyMissingError(ConfigError):
    """The encryption key a backup needs is not configured; ``key_id`` names it."""

    def __init__(self, message: str, *, key_id: str | None = None) -> None:
        super().__init__(message)
        self.key_id = key_id


class SourceError(BackupkitError):
    """A source could not be read (missing path, unreadable file, dump failed)."""

    exit_code = 3


class SinkError(BackupkitError, OSError):
    """A sink could not be written or read (permissions, full disk, network)."""

    exit_code = 4


class ManifestError(BackupkitError, ValueError):
    """A manifest is truncated, has an unknown format version, or an invalid field."""

    exit_code = 5


class ChainError(ManifestError):
    """An incremental backup's chain is broken: a parent is missing, of another set, or loops."""


class AlreadyExistsError(SinkError):
    """A sink was asked to create a key that exists (it never replaces one)."""


class NotFoundError(BackupkitError, LookupError):
    """No backup matches the requested id, prefix, or time."""

    exit_code = 6


class IntegrityError(BackupkitError):
    """Stored data does not match the checksums recorded in its manifest."""

    exit_code = 7


class RestoreError(BackupkitError):
    """A restore was refused (non-empty target, unsafe archive member)."""

    exit_code = 8


class UnsafeArchiveError(RestoreError):
    """An archive member would be written outside the restore target."""


class BusyError(BackupkitError):
    """The set already has a backup running in this process; wait for it to end."""

    exit_code = 9


class DrillFailed(BackupkitError):
    """A restore drill found a backup that does not restore or does not pass its checks;
    ``record`` is the drill's record (stored in the sink all the same)."""

    exit_code = 10

    def __init__(self, message: str, record: object = None) -> None:
        super().__init__(message)
        self.record = record


class DisabledError(BackupkitError):
    """Backups are turned off (``BACKUP_ENABLED=false``) and the run was not forced."""

    exit_code = 13


class BackupInterrupted(BackupkitError):
    """A backup run was interrupted (signal); nothing was published."""

    exit_code = 130


def closest(word: object, choices: Iterable[str]) -> str | None:
    """The choice closest to *word* (a likely misspelling of it), if any is close."""
    import difflib  # only when a name is wrong: not on every command's start-up

    found = difflib.get_close_matches(str(word), list(choices), n=1)
    return found[0] if found else None


def unknown_key(where: str, key: object, allowed: Iterable[str], *, listing: str = "allowed") -> ConfigError:
    """The error for *key*, which table *where* does not take: it suggests the closest
    allowed key, or else lists them (after *listing*)."""
    allowed = list(allowed)
    hint = closest(key, allowed)
    more = f"; did you mean {hint!r}?" if hint else f"; {listing}: {', '.join(allowed) or 'none'}"
    return ConfigError(f"{where}: unknown key {key!r}{more}")


__all__ = [
    "AlreadyExistsError",
    "BackupInterrupted",
    "BackupkitError",
    "ChainError",
    "ConfigError",
    "DisabledError",
    "IntegrityError",
    "KeyMissingError",
    "ManifestError",
    "NotFoundError",
    "PluginError",
    "RestoreError",
    "SinkError",
    "SourceError",
    "UnsafeArchiveError",
]
