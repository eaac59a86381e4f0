"""Checks that turn a command's silent "nothing here" into an error naming what to fix:
a sink directory that is missing or a file, a set that is not there, and a sink whose
backups sit under a prefix of it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from backupkit.engine.layout import Layout
from backupkit.engine.scan import scan
from backupkit.errors import ConfigError, NotFoundError


def check_sink_path(location: str, given_as: str) -> None:
    """Refuse a local sink *location* (given as ``--sink`` or ``$BACKUP_DIR``) to read
    from that does not exist or is not a directory."""
    if "://" in location:
        return
    if not os.path.exists(location):  # not "no backups": a typo in a cron job must not look fine
        raise NotFoundError(f"sink {location} does not exist ({given_as}); check the path")
    if not os.path.isdir(location):
        raise NotFoundError(
            f"sink {location} is a file, not a directory ({given_as}); give the directory "
            "the backups are stored in"
        )


def check_set_known(set_name: str | None, known: Iterable[str], where: str) -> None:
    """Refuse ``--set NAME`` when *known* (the configured sets and those with backups)
    does not hold it."""
    known = sorted(set(known))
    if set_name is not None and set_name not in known:
        raise ConfigError(
            f"unknown backup set {set_name!r} in {where}; sets there: {', '.join(known) or 'none'}"
        )


def check_not_nested(engine: Any) -> None:
    """With no backup in any sink, refuse a sink whose backups are under prefixes
    (``--sink s3://bucket`` for ``s3://bucket/app``), naming those prefixes."""
    for sink in engine.parts.sinks():
        found = scan([sink], engine.keyring)
        layout = Layout.of(sink)
        roots = sorted({r for k in found.foreign if (r := layout.root_of(k)) is not None})
        if roots and not found.catalog:
            where = ", ".join(f"{sink.location.rstrip('/')}/{r}" for r in roots)
            raise NotFoundError(
                f"no backups in {sink.location} itself; backups are under {where}; pass one "
                "of those as --sink"
            )
