"""The ``json`` source: a whole database exported as one JSON document, and restored.

Any database SQLAlchemy can reflect (PostgreSQL, SQLite; MySQL/MariaDB with their
driver): every table of the chosen schemas, in foreign-key order, read in one
consistent read-only transaction and written row by row (memory stays bounded). The
document (:mod:`.document`) is plain JSON, one row per line, so ``gunzip | jq`` reads
it and a restore streams it back; values are lossless (:mod:`.kinds`). A restore
(:mod:`.restore`) fills an empty database in one transaction and checks every table's
row count. See docs/json-export.md. SQLAlchemy is needed only when a json source is
used (``backupkit[json]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backupkit.plugin import Register, hookimpl, lazy_exports

if TYPE_CHECKING:
    from backupkit.sources.jsonexport.restore import restore_file
    from backupkit.sources.jsonexport.source import JsonSource

__all__ = ["JsonSource", "backupkit_register_sources", "restore_file"]


@hookimpl
def backupkit_register_sources(register: Register) -> None:
    """The ``json`` source, by reference: its modules load when a set uses it."""
    register.source("backupkit.sources.jsonexport.source:JsonSource", id="json")


__getattr__ = lazy_exports(__name__, {
    "JsonSource": "backupkit.sources.jsonexport.source",
    "restore_file": "backupkit.sources.jsonexport.restore",
})
