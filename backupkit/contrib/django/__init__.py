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
from typing import TYPE_CHECKING, Any

from backupkit.contrib.django import conf
from backupkit.contrib.django.conf import ApiSettings, DjangoConfig, Target, build
from backupkit.engine import Engine

if TYPE_CHECKING:
    from backupkit.server.service import Service

__all__ = ["ApiSettings", "Target", "api_settings", "default_targets", "engine", "reset", "service"]

_lock = threading.RLock()
_built: dict[str, tuple[DjangoConfig, Engine]] = {}
_api: dict[str, Any] = {}


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


def api_settings() -> ApiSettings:
    """The ``BACKUPKIT_API`` setting of the JSON views (read at the first call, then kept)."""
    with _lock:
        if "settings" not in _api:
            _api["settings"] = conf.api_settings(_settings())
        found: ApiSettings = _api["settings"]
        return found


def service() -> Service:
    """What the JSON views call: one :class:`~backupkit.server.service.Service` of
    :func:`engine`, with its background runs and scheduler (kept until :func:`reset`)."""
    from backupkit.server.service import Service

    with _lock:
        if "service" not in _api:
            _api["service"] = Service(engine(), url_expires=api_settings().url_expires)
        found: Service = _api["service"]
        return found


def reset() -> None:
    """Forget the cached engine, so that the next :func:`engine` reads the settings again
    (the app calls it when a test changes ``BACKUPKIT``, ``DATABASES`` or ``MEDIA_ROOT``)."""
    with _lock:
        _built.clear()
        running = _api.pop("service", None)
        _api.clear()
    if running is not None:
        running.stop_scheduler()
