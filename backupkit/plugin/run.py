"""What hooks are told about a backup run."""

from __future__ import annotations

import datetime as dt

import attrs


@attrs.frozen
class RunInfo:
    """A backup run as lifecycle hooks see it."""

    run_id: str
    set_name: str
    kind: str
    reason: str
    started_at: dt.datetime
    sink: str
    hostname: str
    log_key: str = ""  # where in the sink the run's log is written when it ends

    @property
    def log_location(self) -> str | None:
        """The run's log as one location: the sink's, then the key (None without a key)."""
        return f"{self.sink.rstrip('/')}/{self.log_key}" if self.log_key else None


@attrs.frozen
class Operation:
    """One backup, prune, verify or restore, as the ``backupkit_operation`` hook sees it.

    ``set_name`` and ``sink`` are ``None`` when the operation spans every configured set
    or sink (a prune of everything, a restore by id across sinks). ``kind`` is the kind a
    backup was asked to be (``full`` or ``incremental``; an incremental with nothing to build
    on runs as a full, which its ``RunInfo`` tells); ``None`` for the other verbs.
    """

    verb: str  # "backup", "prune", "verify", "restore", "drill"
    run_id: str  # a backup's run id (its backup id); an id of its own for other verbs
    started_at: dt.datetime
    set_name: str | None = None
    sink: str | None = None
    kind: str | None = None
