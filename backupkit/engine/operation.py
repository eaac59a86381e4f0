"""Running a verb inside the ``backupkit_operation`` hook, which plugins wrap (timing,
metrics, locks, alerts)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import TypeVar, cast

from backupkit.core.manifest import backup_id
from backupkit.plugin import Operation
from backupkit.plugins import Plugins

T = TypeVar("T")


def run_operation(plugins: Plugins, operation: Operation, body: Callable[[], T]) -> T:
    """Run *body* as *operation*: every ``backupkit_operation`` wrapper sees it start,
    and its result or its error at the end."""

    def backupkit_operation(operation: Operation) -> T:
        return body()

    hook = plugins.hook.backupkit_operation
    return cast(T, hook.call_extra([backupkit_operation], {"operation": operation}))


def new_run_id(started: dt.datetime) -> str:
    """A fresh run id: a backup's becomes its backup id; other verbs' name the operation."""
    return backup_id(started, secrets.token_hex(3))
