"""What the engine's verbs return: typed values with ``to_dict()``, so the command line's
``--json`` and the HTTP API print the same thing from one place."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from backupkit.core.retention import RetentionPlan


@attrs.frozen
class Progress:
    """A snapshot of a running backup, restore or verify, for progress displays."""

    artifact: str
    done_bytes: int
    stored_bytes: int
    current: str
    elapsed: float


ProgressCallback = Callable[[Progress], None]


@attrs.frozen
class ArtifactCheck:
    """The outcome of verifying one artifact."""

    backup_id: str
    artifact: str
    ok: bool
    error: str | None = None
    note: str | None = None  # e.g. only the stored checksum was checked (no key)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output (``note`` only when there is one)."""
        return {"backup_id": self.backup_id, "name": self.artifact, "ok": self.ok,
                "error": self.error, **({"note": self.note} if self.note else {})}


@attrs.frozen
class VerifyResult:
    """The outcome of verifying a backup: one check per artifact of its whole chain."""

    backup_id: str
    checks: tuple[ArtifactCheck, ...]

    @property
    def ok(self) -> bool:
        """Whether every artifact passed."""
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        return {"backup_id": self.backup_id, "ok": self.ok,
                "artifacts": [c.to_dict() for c in self.checks]}


@attrs.frozen
class RestoreResult:
    """What a restore wrote: each artifact's target, the bytes read, the time taken, and
    what the sources checked after restoring (a database's row counts)."""

    backup_id: str
    targets: Mapping[str, str]
    bytes: int
    seconds: float
    checks: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        out = {"backup_id": self.backup_id, "targets": dict(self.targets),
               "bytes": self.bytes, "seconds": round(self.seconds, 3)}
        if self.checks:
            out["checks"] = {k: dict(v) for k, v in self.checks.items()}
        return out


@attrs.frozen
class PruneResult:
    """What a prune decided and (unless a dry run) did, for one set in one sink."""

    plan: RetentionPlan
    dry_run: bool
    deleted: tuple[str, ...] = ()  # backup ids
    deleted_keys: tuple[str, ...] = ()
    orphans: tuple[str, ...] = ()  # keys collected (or, in a dry run, that would be)
    set_name: str | None = None  # None: every set in a sink with no configured sets
    sink: str = ""  # where, for people
    logs: tuple[str, ...] = ()  # run logs deleted (or, in a dry run, that would be)

    @property
    def freed_bytes(self) -> int:
        """The stored bytes of the backups the plan deletes."""
        return sum(m.stored_size for m in self.plan.delete)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output: the plan's every backup with its action."""
        return {
            "set": self.set_name,
            "sink": self.sink,
            "policy": self.plan.policy.to_dict(),
            "backups": self.plan.to_records(),
            "deleted": list(self.deleted),
            "orphans": list(self.orphans),
            "logs": list(self.logs),
            "freed_bytes": self.freed_bytes,
        }
