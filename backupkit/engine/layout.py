"""Where a sink puts a backup's files, read off its ``key_for``: so that the catalog
skips manifests that are not the sink's own, and prune collects only its orphans."""

from __future__ import annotations

import datetime as dt
import posixpath
import re

import attrs

from backupkit.core.manifest import backup_id
from backupkit.core.tiers import TIERS
from backupkit.plugin import RunInfo, Sink

_TIER, _HOST = "bktierslot", "bkhostslot"  # placeholders re.escape leaves alone


@attrs.frozen
class Layout:
    """Where a sink puts a backup's files, read off its ``key_for``.

    A key fits when it has the same directories as ``key_for`` gives, with any tier
    in the tier's place and any name in the host's, and a file name last; keys of a
    backupkit sink nested in this one have more directories and never fit.
    """

    pattern: re.Pattern[str]

    @classmethod
    def of(cls, sink: Sink) -> Layout:
        """The layout of *sink*, read off one ``key_for`` call with placeholder values."""
        started = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        run = RunInfo(
            run_id=backup_id(started, "0" * 6), set_name="set", kind="full", reason="manual",
            started_at=started, sink=sink.location, hostname=_HOST,
        )
        directory = posixpath.dirname(sink.key_for(_TIER, "file", run=run))
        shape = re.escape(directory).replace(_TIER, "(?:{})".format("|".join(TIERS)))
        shape = shape.replace(_HOST, "(?P<host>[^/]+)", 1).replace(_HOST, "(?P=host)")
        return cls(re.compile(f"{shape}/[^/]+" if directory else "[^/]+"))

    def fits(self, key: str, *, hostname: str | None = None) -> bool:
        """Whether this sink would store a file of a backup (made on *hostname*) at *key*."""
        match = self.pattern.fullmatch(key)
        if match is None:
            return False
        return hostname is None or "host" not in self.pattern.groupindex or match["host"] == hostname

    def root_of(self, key: str) -> str | None:
        """The directory of a sink nested in this one that *key* (which does not fit here)
        would fit in, as a key prefix (``app`` for ``app/host/daily/x``); ``None`` if none."""
        parts = key.split("/")
        for i in range(1, len(parts)):
            if self.fits("/".join(parts[i:])):
                return "/".join(parts[:i])
        return None
