"""backupkit: back up an application's state, verify it, prune it, restore it.

The public API::

    import backupkit
    engine = backupkit.Engine.from_config({"sets": {"app": {...}}})
    manifest = engine.backup("app")
    engine.catalog().to_records()
    engine.restore("latest", to="/tmp/restore")

Plugins implement hooks with ``@backupkit.hookimpl``; see :mod:`backupkit.hookspecs`.
"""

from backupkit import errors
from backupkit._version import __version__
from backupkit.config import Config
from backupkit.core.catalog import Catalog, CatalogProblem
from backupkit.core.manifest import Artifact, Manifest, PluginSpec
from backupkit.engine import Engine, Progress, RestoreResult, VerifyResult
from backupkit.errors import BackupkitError
from backupkit.plugins import DEFAULT_PLUGINS, Register, hookimpl, make_plugin_manager
from backupkit.run import RunInfo
from backupkit.sinks.base import ArtifactWriter, Sink
from backupkit.sources.base import BackupContext, RestoreContext, Source
from backupkit.transforms.base import Transform

__all__ = [
    "DEFAULT_PLUGINS",
    "Artifact",
    "ArtifactWriter",
    "BackupContext",
    "BackupkitError",
    "Catalog",
    "CatalogProblem",
    "Config",
    "Engine",
    "Manifest",
    "PluginSpec",
    "Progress",
    "Register",
    "RestoreContext",
    "RestoreResult",
    "RunInfo",
    "Sink",
    "Source",
    "Transform",
    "VerifyResult",
    "__version__",
    "errors",
    "hookimpl",
    "make_plugin_manager",
]
