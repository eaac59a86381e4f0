"""A tiny Django project for backupkit.contrib.django's tests, configured by the test
through the environment:

- ``TEST_DB``: ``postgres`` (with ``TEST_PG_HOST``, ``TEST_PG_PORT``, ``TEST_PG_NAME``,
  ``TEST_PG_USER``, ``TEST_PG_PASSWORD``) or ``sqlite`` (``TEST_SQLITE_PATH``)
- ``TEST_EXTRA_DATABASES``: JSON, more ``DATABASES`` aliases
- ``TEST_MEDIA_ROOT``: ``MEDIA_ROOT``
- ``TEST_BACKUPKIT``: JSON, the ``BACKUPKIT`` setting (``null``: not set at all)
- ``TEST_BACKUPKIT_API``: JSON, the ``BACKUPKIT_API`` setting (``null``: not set)
- ``TEST_AUTH=1``: Django's auth and sessions, for the JSON views' logged-in users
"""

import json
import os

SECRET_KEY = "backupkit-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "notes", "backupkit.contrib.django"]
ROOT_URLCONF = "project.urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
if os.environ.get("TEST_AUTH") == "1":
    INSTALLED_APPS += ["django.contrib.auth", "django.contrib.sessions"]
    MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware",
                  "django.contrib.auth.middleware.AuthenticationMiddleware"]

if os.environ.get("TEST_DB", "sqlite") == "postgres":
    default = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ["TEST_PG_HOST"],
        "PORT": os.environ["TEST_PG_PORT"],
        "NAME": os.environ["TEST_PG_NAME"],
        "USER": os.environ["TEST_PG_USER"],
        "PASSWORD": os.environ["TEST_PG_PASSWORD"],
    }
else:
    default = {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["TEST_SQLITE_PATH"]}
DATABASES = {"default": default, **json.loads(os.environ.get("TEST_EXTRA_DATABASES", "{}"))}

MEDIA_ROOT = os.environ.get("TEST_MEDIA_ROOT", "")

_backupkit = json.loads(os.environ.get("TEST_BACKUPKIT", "null"))
if _backupkit is not None:
    BACKUPKIT = _backupkit

_api = json.loads(os.environ.get("TEST_BACKUPKIT_API", "null"))
if _api is not None:
    BACKUPKIT_API = _api
