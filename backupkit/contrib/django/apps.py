"""The Django application: registers the system checks and drops the cached engine when
a test changes the settings it was built from."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import backupkit.contrib.django as site
from backupkit.contrib.django.checks import check_settings

if TYPE_CHECKING:  # Django has no type hints: the part of AppConfig used here

    class AppConfig:
        """Django's ``django.apps.AppConfig``."""

        name: str
        label: str

else:
    from django.apps import AppConfig

#: Settings the engine is built from.
WATCHED = ("BACKUPKIT", "BACKUPKIT_API", "DATABASES", "MEDIA_ROOT")


def _setting_changed(sender: Any, setting: str = "", **kwargs: Any) -> None:
    if setting in WATCHED:
        site.reset()


class BackupkitConfig(AppConfig):
    """``backupkit.contrib.django``: the ``backupkit_*`` commands and ``backupkit.*`` checks."""

    name = "backupkit.contrib.django"
    label = "backupkit"
    verbose_name = "backupkit"

    def ready(self) -> None:
        """Register the checks (tag ``backupkit``) and the ``setting_changed`` receiver."""
        importlib.import_module("django.core.checks").register(check_settings, "backupkit")
        signal = importlib.import_module("django.core.signals").setting_changed
        signal.connect(_setting_changed, dispatch_uid="backupkit.contrib.django.reset")
