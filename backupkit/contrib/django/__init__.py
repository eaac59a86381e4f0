"""backupkit as a Django app: ``INSTALLED_APPS += ["backupkit.contrib.django"]`` and a
``BACKUPKIT`` setting (see docs/django.md).

The setting is a backupkit configuration mapping (the keys of ``backupkit.toml``) whose
sets may take their sources from Django's settings (:mod:`.conf`). It is read at first
use, never on import: :func:`engine` returns the :class:`backupkit.Engine` it describes,
built once and kept until a test changes the settings (:func:`reset`). The app adds the
management commands ``backupkit_backup``, ``backupkit_restore``, ``backupkit_list`` and
``backupkit_run`` and the system checks ``backupkit.E001``... (:mod:`.checks`).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from typing import Any

from backupkit.contrib.django.conf import DjangoConfig, Target, build
from backupkit.engine import Engine

__all__ = ["Target", "default_targets", "engine", "reset"]

_lock = threading.Lock()
_built: dict[str, tuple[DjangoConfig, Engine]] = {}


def _settings() -> Any:
    return importlib.import_module("django.conf").settings


def _site() -> tuple[DjangoConfig, Engine]:
    with _lock:
        if "site" not in _built:
            config = build(_settings())
            _built["site"] = config, Engine.from_config(config.parse())
        return _built["site"]


def engine() -> Engine:
    """The engine the ``BACKUPKIT`` setting describes (built at the first call, then
    cached); a :class:`~backupkit.errors.ConfigError` names what is wrong with it."""
    return _site()[1]


def default_targets(set_name: str) -> Mapping[str, Target]:
    """Where ``backupkit_restore`` puts each artifact of set *set_name* unless told
    otherwise: the Django database it came from, or ``MEDIA_ROOT``."""
    return _site()[0].targets.get(set_name, {})


def reset() -> None:
    """Forget the cached engine, so that the next :func:`engine` reads the settings again
    (the app calls it when a test changes ``BACKUPKIT``, ``DATABASES`` or ``MEDIA_ROOT``)."""
    with _lock:
        _built.clear()
