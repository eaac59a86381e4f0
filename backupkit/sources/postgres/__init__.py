"""The ``postgres`` source: PostgreSQL databases as ``pg_dump`` archives.

Each database is one artifact, a custom-format archive (``pg_dump -Fc -Z0``: the
chain compresses) streamed from ``pg_dump``'s standard output through the transforms
into the sink, with no temporary copy. The source opens a ``REPEATABLE READ READ ONLY``
transaction, exports its snapshot, and runs ``pg_dump --snapshot`` on it while it
counts every table's rows in the same snapshot: the counts in the manifest are
exactly the rows in the archive, whatever writers do meanwhile. A restore runs
``pg_restore --single-transaction`` from the stream and then checks those counts in
the restored database; ``verify`` reads an archive whole with ``pg_restore -f
/dev/null``. Plain ``zstd -d < x.dump.zst | pg_restore -d DB`` restores an
unencrypted artifact without backupkit (docs/postgres.md).

Modules: :mod:`.source` (the plugin), :mod:`.connection` (URL, keywords, the
password kept out of sight), :mod:`.catalog` (tables, counts, facts),
:mod:`.programs` (running the client programs), :mod:`.restore`, :mod:`.tools`
(finding ``pg_dump`` of the right version) and :mod:`.cluster` (a throwaway server
for tests and restore drills). psycopg is needed only when a postgres source is used
(``backupkit[postgres]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backupkit.plugin import Register, hookimpl, lazy_exports

if TYPE_CHECKING:
    from backupkit.sources.postgres.source import PostgresSource

__all__ = ["PostgresSource", "backupkit_register_sources"]


@hookimpl
def backupkit_register_sources(register: Register) -> None:
    """The ``postgres`` source, by reference: its modules load when a set uses it."""
    register.source("backupkit.sources.postgres.source:PostgresSource", id="postgres")


__getattr__ = lazy_exports(__name__, {"PostgresSource": "backupkit.sources.postgres.source"})
