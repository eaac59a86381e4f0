"""The seam for plugin authors: everything a source, transform or sink plugin needs.

A plugin module implements hooks with :data:`hookimpl` and registers its classes::

    from backupkit.plugin import Register, Source, hookimpl

    class MySource(Source):
        id = "mine"
        ...

    @hookimpl
    def backupkit_register_sources(register: Register) -> None:
        register.source(MySource)

This package imports nothing of the engine: the built-in plugins import only it (and
:mod:`backupkit.params`, :mod:`backupkit.errors`, :mod:`backupkit.crypto`), exactly as a
third-party plugin does. See docs/plugins.md.
"""

from backupkit.params import check_range, secret
from backupkit.plugin.registry import Register, hookimpl, lazy_exports
from backupkit.plugin.run import Operation, RunInfo
from backupkit.plugin.sink import ArtifactWriter, Sink
from backupkit.plugin.source import BackupContext, RestoreContext, Source
from backupkit.plugin.streams import DamageChecked, Encoder, Reader, Writer, held_back
from backupkit.plugin.transform import STAGE_ORDER, KeyedTransform, Stage, Transform, check_chain

__all__ = [
    "STAGE_ORDER",
    "ArtifactWriter",
    "BackupContext",
    "DamageChecked",
    "Encoder",
    "KeyedTransform",
    "Operation",
    "Reader",
    "Register",
    "RestoreContext",
    "RunInfo",
    "Sink",
    "Source",
    "Stage",
    "Transform",
    "Writer",
    "check_chain",
    "check_range",
    "held_back",
    "hookimpl",
    "lazy_exports",
    "secret",
]
