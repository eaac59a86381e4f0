"""backupkit: back up an application's state, verify it, prune it, restore it.

The public API::

    import backupkit
    engine = backupkit.Engine.from_config({"sets": {"app": {...}}})
    manifest = engine.backup("app")
    engine.catalog().to_records()
    engine.restore("latest", to="/tmp/restore")
    engine.prune("app", policy=backupkit.RetentionPolicy(keep_daily=7), dry_run=True)

Plugins implement hooks with ``@backupkit.hookimpl``; see :mod:`backupkit.hookspecs`.
"""

from backupkit import errors
from backupkit._version import __version__
from backupkit.config import Config
from backupkit.core.catalog import Catalog, CatalogProblem
from backupkit.core.manifest import Artifact, Manifest, PluginSpec
from backupkit.core.restore import RestorePlan, plan_restore
from backupkit.core.retention import (
    TIER_AGES,
    Decision,
    RetentionPlan,
    RetentionPolicy,
    plan_retention,
)
from backupkit.core.simulate import SimulationRow, simulate_retention
from backupkit.core.tiers import assign_tier
from backupkit.crypto.keys import Key, Keyring
from backupkit.engine import Engine, Progress, RestoreResult, VerifyResult
from backupkit.engine.results import PruneResult
from backupkit.errors import BackupkitError
from backupkit.params import secret
from backupkit.plugin import (
    ArtifactWriter,
    BackupContext,
    Register,
    RestoreContext,
    Sink,
    Source,
    Transform,
    hookimpl,
)
from backupkit.plugin.run import RunInfo
from backupkit.plugins import DEFAULT_PLUGINS, make_plugin_manager

__all__ = [
    "DEFAULT_PLUGINS",
    "TIER_AGES",
    "Artifact",
    "ArtifactWriter",
    "BackupContext",
    "BackupkitError",
    "Catalog",
    "CatalogProblem",
    "Config",
    "Decision",
    "Engine",
    "Key",
    "Keyring",
    "Manifest",
    "PluginSpec",
    "Progress",
    "PruneResult",
    "Register",
    "RestoreContext",
    "RestorePlan",
    "RestoreResult",
    "RetentionPlan",
    "RetentionPolicy",
    "RunInfo",
    "SimulationRow",
    "Sink",
    "Source",
    "Transform",
    "VerifyResult",
    "__version__",
    "assign_tier",
    "errors",
    "hookimpl",
    "make_plugin_manager",
    "plan_restore",
    "plan_retention",
    "secret",
    "simulate_retention",
]
