"""URLs of the JSON views (:mod:`.views`): ``path("", include("backupkit.contrib.django.urls"))``
serves the routes of ``backupkit serve`` at the same paths (``/api/backup``...); under
another prefix they move with it. Names are in the ``backupkit`` namespace."""

from __future__ import annotations

import importlib

from backupkit.contrib.django import views

path = importlib.import_module("django.urls").path  # Django has no type hints

app_name = "backupkit"
urlpatterns = [
    path("api/backup", views.backup, name="backup"),
    path("api/backup/status", views.status, name="status"),
    path("api/backup/runs/<str:run_id>", views.run, name="run"),
    path("api/backup/scheduler", views.scheduler, name="scheduler"),
    path("api/admin/backup", views.admin_backup, name="admin-backup"),
    path("api/admin/backup/status", views.admin_status, name="admin-status"),
    path("api/admin/backup/download-url", views.download_url, name="download-url"),
    path("metrics", views.metrics, name="metrics"),
]
