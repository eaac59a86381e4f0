"""The audit log: a built-in plugin on the operation hook that records every backup,
restore, verify and prune (who, what, when, from where, and how it ended) as one JSON
object per entry in the sink, under ``audit/``; a backup written with other encryption
keys than the set's previous one adds a ``key-change`` entry (key ids only)::

    [plugins.audit]          # on; an empty table is enough

    audit/2026-12-03/20261203T020000.123456Z-<run id>-backup.json

An entry is written once and never changed (an object of its own, so S3 needs no
appends); ``backupkit audit`` lists them. Entries hold no secrets: the error line is
the one the user saw, URLs without their passwords. Prune never takes ``audit/`` for
orphans (it is not a tier).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import getpass
import json
import logging
import os
import socket
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import attrs

from backupkit.errors import ConfigError
from backupkit.params import strip_userinfo
from backupkit.plugin import Operation, Sink, hookimpl

log = logging.getLogger("backupkit.audit")

#: Who is acting, when it is not the OS user: ``{"who": "token ops", "from": "10.0.0.7"}``
#: (the HTTP API sets it for each request, and background runs carry it along).
ACTING: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("backupkit_acting",
                                                                                   default=None)


@contextlib.contextmanager
def acting(who: str, origin: str | None = None) -> Iterator[None]:
    """Record operations inside the block as done by *who* (from *origin*)."""
    token = ACTING.set({"who": who, "from": origin or ""})
    try:
        yield
    finally:
        ACTING.reset(token)

PREFIX = "audit/"


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _summary(result: object) -> dict[str, Any]:
    """What the result says, briefly: a backup's id, a prune's deletions."""
    if hasattr(result, "id") and hasattr(result, "artifacts"):  # a manifest
        return {"backup_id": result.id, "stored_bytes": getattr(result, "stored_size", None),
                "key_ids": _key_ids(result)}
    if isinstance(result, list):  # prune results
        return {"deleted": sorted(d for r in result for d in getattr(r, "deleted", ())),
                "dry_run": any(getattr(r, "dry_run", False) for r in result)}
    if hasattr(result, "backup_id"):  # restore / verify
        return {"backup_id": result.backup_id, "ok": getattr(result, "ok", True)}
    return {}


def _key_ids(manifest: Any) -> list[str]:
    """The ids (never the keys) of the encryption keys a backup was written with."""
    return sorted({str(t.params["key_id"]) for a in manifest.artifacts for t in a.transforms
                   if t.params.get("key_id")})


def _last_key_ids(sink: Sink, set_name: str) -> list[str] | None:
    """The key ids of the set's newest recorded backup, or None if none recorded them."""
    for key in sorted((k for k in sink.list_keys(PREFIX) if k.endswith("-backup.json")), reverse=True):
        try:
            entry = json.loads(sink.get_bytes(key))
        except (ValueError, OSError):
            continue
        if entry.get("set") == set_name and entry.get("result") == "ok":
            ids = entry.get("key_ids")
            return list(ids) if isinstance(ids, list) else None
    return None


@attrs.define(eq=False)  # a plugin object: hashable, by identity
class AuditLog:
    """Writes one entry per operation into the sinks it touched."""

    sinks_of: Callable[[str | None, str | None], list[Sink]] = attrs.field(repr=False)
    actor: str = attrs.field(factory=_who)

    @hookimpl(wrapper=True)
    def backupkit_operation(self, operation: Operation) -> Generator[None, object, object]:
        """Record the operation once it has ended, however it ended."""
        try:
            result = yield
        except BaseException as exc:
            self.record(operation, "failed", {"error": strip_userinfo(str(exc).splitlines()[0] if str(exc) else
                                                                     type(exc).__name__)})
            raise
        summary = _summary(result)
        if operation.verb == "backup" and "key_ids" in summary:
            self.note_key_change(operation, summary)
        self.record(operation, "ok", summary)
        return result

    def note_key_change(self, operation: Operation, summary: Mapping[str, Any]) -> None:
        """A backup written with other keys than the set's previous one: a key change entry
        (rotation, or encryption turned on or off), recorded before the backup's own."""
        if operation.set_name is None:
            return
        try:
            sinks = self.sinks_of(operation.set_name, operation.sink)
            before = _last_key_ids(sinks[0], operation.set_name) if sinks else None
        except Exception as exc:
            log.warning("could not read the audit log to compare keys: %s", exc)
            return
        if before is not None and before != summary["key_ids"]:
            self.record(operation, "ok", {"backup_id": summary["backup_id"], "from_key_ids": before,
                                          "to_key_ids": summary["key_ids"]}, verb="key-change")

    def record(self, operation: Operation, outcome: str, details: Mapping[str, Any],
               *, verb: str | None = None) -> None:
        """Write the entry; a failure to write is a warning, never the operation's error."""
        ended = dt.datetime.now(dt.UTC)
        verb = verb or operation.verb
        by = ACTING.get() or {}
        entry = {"time": ended.isoformat().replace("+00:00", "Z"),
                 "started_at": operation.started_at.isoformat(), "who": by.get("who") or self.actor,
                 "os_user": self.actor, "from": by.get("from") or None,
                 "host": socket.gethostname(), "pid": os.getpid(), "operation": verb,
                 "set": operation.set_name, "run_id": operation.run_id, "result": outcome, **details}
        key = f"{PREFIX}{ended:%Y-%m-%d}/{ended:%Y%m%dT%H%M%S.%fZ}-{operation.run_id}-{verb}.json"
        try:
            sinks = self.sinks_of(operation.set_name, operation.sink)
        except Exception as exc:  # no sink to write to (an unknown set): nothing to record in
            log.warning("no audit entry for %s %s: %s", operation.verb, operation.run_id, exc)
            return
        body = (json.dumps(entry, default=str) + "\n").encode()
        for sink in sinks:
            try:
                sink.put_standalone(key, body)  # the operation's own run has ended
            except Exception as exc:
                log.warning("could not write the audit entry to %s: %s", sink.location, exc)


def log_of(engine: Any) -> AuditLog:
    """The audit log of *engine*: its configured one, else one registered now (a server
    keeps an audit log whether or not the configuration asks for one)."""
    found: AuditLog = engine.plugins.instance(AuditLog, "backupkit.audit.log", lambda: AuditLog(engine.parts.sinks_of))
    return found


def entries(sink: Sink) -> Iterator[dict[str, Any]]:
    """Every audit entry in *sink*, oldest first."""
    for key in sorted(sink.list_keys(PREFIX)):
        try:
            yield json.loads(sink.get_bytes(key))
        except (ValueError, OSError) as exc:
            log.warning("unreadable audit entry %s: %s", key, exc)


@hookimpl
def backupkit_engine_plugins(
    settings: Mapping[str, Any], sinks_of: Callable[[str | None, str | None], list[Sink]]
) -> list[object] | None:
    """An :class:`AuditLog` for an engine whose configuration has ``[plugins.audit]``."""
    if "audit" not in settings:
        return None
    if settings["audit"]:
        raise ConfigError(f"[plugins.audit] takes no keys yet, got {', '.join(settings['audit'])}")
    return [AuditLog(sinks_of)]
