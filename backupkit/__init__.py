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

from backupkit import errors
from backupkit._version import __version__
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
