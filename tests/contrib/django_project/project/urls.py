"""The test project's URLs: backupkit's JSON views at the paths of ``backupkit serve``."""

from django.urls import include, path

urlpatterns = [path("", include("backupkit.contrib.django.urls"))]
