"""backupkit: back up an application's state, verify it, prune it, restore it.

The public API::

    import backupkit
    engine = backupkit.Engine.from_config({"sets": {"app": {...}}})
    manifest = engine.backup("app")
    engine.catalog().to_records()
    engine.restore("latest", to="/tmp/restore")
    engine.prune("app", policy=backupkit.RetentionPolicy(keep_daily=7), dry_run=True)

Importing backupkit loads no plugin and reads no environment. Plugin authors import
:mod:`backupkit.plugin` (the bases, ``hookimpl``, ``Register``); every hook is in
:mod:`backupkit.hookspecs`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from backupkit._version import __version__

if TYPE_CHECKING:
    from backupkit import errors
    from backupkit.config import Config
    from backupkit.core.catalog import Catalog
    from backupkit.core.manifest import Artifact, Manifest
    from backupkit.core.restore import plan_restore
    from backupkit.core.retention import RetentionPolicy, plan_retention
    from backupkit.core.simulate import simulate_retention
    from backupkit.core.status import StatusReport
    from backupkit.crypto.keys import Key, Keyring
    from backupkit.engine import Engine
    from backupkit.engine.results import Progress, PruneResult, RestoreResult, VerifyResult
    from backupkit.errors import BackupkitError
    from backupkit.plugin import hookimpl
    from backupkit.scheduler import Scheduler

__all__ = [
    "Artifact",
    "BackupkitError",
    "Catalog",
    "Config",
    "Engine",
    "Key",
    "Keyring",
    "Manifest",
    "Progress",
    "PruneResult",
    "RestoreResult",
    "RetentionPolicy",
    "Scheduler",
    "StatusReport",
    "VerifyResult",
    "__version__",
    "errors",
    "hookimpl",
    "plan_restore",
    "plan_retention",
    "simulate_retention",
]

# Each name loads its module when first used, so that ``python -m backupkit`` and a
# plugin's ``import backupkit.plugin`` import only what they need.
_LAZY = {
    "Artifact": "backupkit.core.manifest",
    "BackupkitError": "backupkit.errors",
    "Catalog": "backupkit.core.catalog",
    "Config": "backupkit.config",
    "Engine": "backupkit.engine",
    "Key": "backupkit.crypto.keys",
    "Keyring": "backupkit.crypto.keys",
    "Manifest": "backupkit.core.manifest",
    "Progress": "backupkit.engine.results",
    "PruneResult": "backupkit.engine.results",
    "RestoreResult": "backupkit.engine.results",
    "RetentionPolicy": "backupkit.core.retention",
    "Scheduler": "backupkit.scheduler",
    "StatusReport": "backupkit.core.status",
    "VerifyResult": "backupkit.engine.results",
    "hookimpl": "backupkit.plugin",
    "plan_restore": "backupkit.core.restore",
    "plan_retention": "backupkit.core.retention",
    "simulate_retention": "backupkit.core.simulate",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    # A subpackage, as ``import backupkit`` always made them reachable:
    # ``backupkit.plugin.Source``, ``backupkit.errors.ConfigError``.
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
