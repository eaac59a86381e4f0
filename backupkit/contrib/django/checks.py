"""System checks (``manage.py check``) for the ``BACKUPKIT`` setting.

======================  ======================================================================
``backupkit.E001``      ``BACKUPKIT`` is not set
``backupkit.E002``      ``BACKUPKIT`` is not a valid backupkit configuration (the message says why)
``backupkit.E003``      a set has no sink (and ``BACKUP_DIR`` is not set)
``backupkit.E004``      a ``django-db`` source names an alias that is not in ``DATABASES``
``backupkit.E005``      a ``django-db`` source's database is neither PostgreSQL nor SQLite
``backupkit.E006``      a database or ``MEDIA_ROOT`` setting a Django source needs is missing or
                        cannot be passed on (no ``NAME``, ``OPTIONS['service']``, ``:memory:``)
======================  ======================================================================
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from backupkit.contrib.django.conf import (
    SETTING,
    SettingsError,
    build,
    expand_source,
    set_bodies,
    source_where,
    sources_of,
)
from backupkit.errors import ConfigError

HINTS = {
    "backupkit.E001": "Add BACKUPKIT = {'sets': {'site': {'sink': '/var/backups/site'}}} to the "
                      "settings; see docs/django.md.",
    "backupkit.E002": "BACKUPKIT is a dict with the keys of backupkit.toml ('sets', 'timezone', ...); "
                      "see docs/django.md.",
    "backupkit.E003": "Give the set a 'sink' (a directory, or a URL such as s3://bucket/prefix), or "
                      "set BACKUP_DIR in the environment.",
    "backupkit.E004": "Name an alias of settings.DATABASES, or remove the source.",
    "backupkit.E005": "A django-db source backs up PostgreSQL or SQLite; give another database a "
                      "source of its own.",
    "backupkit.E006": "Fix the setting named, or list the set's sources yourself.",
}


def _error(message: str, check_id: str) -> Any:
    checks = importlib.import_module("django.core.checks")
    return checks.Error(message, hint=HINTS[check_id], id=check_id)


def messages(settings: Any, env: Mapping[str, str] | None = None) -> list[Any]:
    """The check messages for *settings* (any object with Django's setting attributes)."""
    env = os.environ if env is None else env
    try:
        bodies = set_bodies(settings)
    except SettingsError as exc:
        return [_error(str(exc), exc.check_id)]
    found = []
    for name, body in bodies.items():
        if not isinstance(body, Mapping):
            continue
        if "sink" not in body and not env.get("BACKUP_DIR"):
            found.append(_error(f"settings.{SETTING}: set {name!r} has no sink", "backupkit.E003"))
        sources = sources_of(body, settings)
        for i, source in enumerate(sources if isinstance(sources, list) else ()):
            try:
                expand_source(source, settings, source_where(name, i))
            except SettingsError as exc:
                found.append(_error(str(exc), exc.check_id))
    if not found:
        try:
            build(settings).parse(env)
        except ConfigError as exc:
            found.append(_error(str(exc), "backupkit.E002"))
    return found


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """The ``backupkit`` system check: :func:`messages` for ``django.conf.settings``."""
    return messages(importlib.import_module("django.conf").settings)
