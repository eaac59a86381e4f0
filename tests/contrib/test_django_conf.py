"""How backupkit.contrib.django reads Django's settings (in this process, on plain objects
standing in for ``django.conf.settings``: Django itself is never configured here)."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

import backupkit.contrib.django as site
from backupkit.contrib.django.checks import messages
from backupkit.contrib.django.conf import (
    SettingsError,
    api_settings,
    build,
    postgres_params,
    postgres_url,
)
from backupkit.engine.restore import redacted
from backupkit.errors import ConfigError
from backupkit.sources.postgres.connection import Conn

PG = {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "web", "PASSWORD": "s3cr:t/@pw%",
      "HOST": "db.internal", "PORT": 5433, "OPTIONS": {"sslmode": "require"}}


def _settings(backupkit: Any = None, **overrides: Any) -> SimpleNamespace:
    values: dict[str, Any] = {"DATABASES": {"default": PG}, "MEDIA_ROOT": "/srv/shop/media",
                              "BACKUPKIT": backupkit or {"sets": {"site": {"sink": "/var/backups/shop"}}}}
    return SimpleNamespace(**{**values, **overrides})


def test_a_set_without_sources_backs_up_the_default_database_and_media_root() -> None:
    config = build(_settings())
    db, media = config.data["sets"]["site"]["sources"]
    assert db == {"type": "postgres", "name": "db", "host": "db.internal", "port": 5433, "user": "web",
                  "dbname": "shop", "password": "s3cr:t/@pw%", "sslmode": "require"}
    assert media == {"type": "filesystem", "name": "media", "paths": ["/srv/shop/media"]}
    targets = config.targets["site"]
    assert targets["db"].label == "database 'default'"
    assert targets["media"].label == "MEDIA_ROOT /srv/shop/media" and targets["media"].location == "/srv/shop"


def test_the_restore_url_keeps_the_login_for_libpq_and_masks_the_password() -> None:
    url = postgres_url(postgres_params(PG, "here"))
    conn = Conn.resolve(url, {}, None, env={})
    assert conn.password == "s3cr:t/@pw%"
    assert conn.keywords == {"host": "db.internal", "port": "5433", "user": "web", "dbname": "shop",
                             "sslmode": "require"}
    assert "s3cr" not in redacted(url)
    socket = postgres_url(postgres_params({**PG, "HOST": "/run/postgresql", "PASSWORD": ""}, "here"))
    assert Conn.resolve(socket, {}, None, env={}).keywords["host"] == "/run/postgresql"


def test_sources_name_their_alias_and_pass_their_own_parameters_on() -> None:
    lite = {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/shop/db.sqlite3"}
    settings = _settings({"sets": {"site": {"sink": "/b", "sources": [
        {"type": "django-db", "alias": "default", "exclude_tables": ["public.django_session"]},
        {"type": "django-db", "alias": "cache"}, "django-media",
        {"type": "redis", "url": "redis://localhost"}]}}}, DATABASES={"default": PG, "cache": lite})
    config = build(settings)
    db, cache, media, redis = config.data["sets"]["site"]["sources"]
    assert db["exclude_tables"] == ["public.django_session"] and db["type"] == "postgres"
    assert cache == {"type": "json", "name": "db-cache", "url": "sqlite:////srv/shop/db.sqlite3"}
    assert media["type"] == "filesystem"
    assert redis == {"type": "redis", "url": "redis://localhost"}
    assert set(config.targets["site"]) == {"db", "db-cache", "media"}


@pytest.mark.parametrize(("database", "check_id", "named"), [
    ({"ENGINE": "django.db.backends.mysql", "NAME": "x"}, "backupkit.E005", "django.db.backends.mysql"),
    ({**PG, "OPTIONS": {"service": "shop"}}, "backupkit.E006", "PGSERVICE"),
    ({**PG, "NAME": ""}, "backupkit.E006", "has no NAME"),
    ({"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}, "backupkit.E006", "path of a SQLite file"),
])
def test_a_database_backupkit_cannot_back_up_is_refused_with_its_check_id(
        database: dict[str, Any], check_id: str, named: str) -> None:
    with pytest.raises(SettingsError, match=named) as raised:
        build(_settings(DATABASES={"default": database}))
    assert raised.value.check_id == check_id
    assert "s3cr" not in str(raised.value)


def test_the_parsed_config_names_the_setting_and_hides_the_password() -> None:
    config = build(_settings()).parse()
    assert "s3cr" not in repr(config)
    with pytest.raises(ConfigError, match="settings.BACKUPKIT: set 'site': unknown key 'compres'"):
        build(_settings({"sets": {"site": {"sink": "/b", "compres": "zstd"}}})).parse()


def _ids(found: list[Any]) -> list[str]:
    return [m.id for m in found]


def test_checks_report_each_fault_with_an_id_and_a_hint() -> None:
    assert messages(_settings(), env={}) == []
    missing = _settings()
    del missing.BACKUPKIT
    assert _ids(messages(missing, env={})) == ["backupkit.E001"]
    assert _ids(messages(_settings(BACKUPKIT=["site"]), env={})) == ["backupkit.E002"]
    bad = _settings({"sets": {"a": {"sources": [{"type": "django-db", "alias": "nope"}]},
                              "b": {"sink": "/b", "sources": ["django-db"]}}},
                    DATABASES={"default": {"ENGINE": "django.db.backends.oracle", "NAME": "x"}})
    found = messages(bad, env={})
    assert _ids(found) == ["backupkit.E003", "backupkit.E004", "backupkit.E005"]
    assert all(m.hint for m in found)
    assert messages(_settings({"sets": {"a": {}}}), env={"BACKUP_DIR": "/b"}) == []
    assert _ids(messages(_settings({"sets": {"a": {"sink": "/b", "tags": "x"}}}), env={})) == ["backupkit.E002"]


def test_the_engine_is_built_once_and_again_after_reset(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    settings = _settings({"sets": {"site": {"sink": str(tmp_path)}}})
    monkeypatch.setattr(site, "_settings", lambda: settings)
    site.reset()
    first = site.engine()
    assert site.engine() is first and site.default_targets("site")["db"].label == "database 'default'"
    settings.BACKUPKIT = {"sets": {"other": {"sink": str(tmp_path)}}}
    assert site.engine() is first
    site.reset()
    assert list(site.engine().config.sets) == ["other"]
    site.reset()


def test_importing_the_app_and_its_commands_reads_no_setting() -> None:
    modules = ["backupkit.contrib.django", "backupkit.contrib.django.apps", "backupkit.contrib.django.checks",
               *(f"backupkit.contrib.django.management.commands.backupkit_{c}"
                 for c in ("backup", "restore", "list", "run"))]
    code = (f"import importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
            "from django.conf import settings\nassert not settings.configured\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "no.such.settings"}  # reading it would fail
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr


def _scope(request: Any) -> str:
    return "read"


def test_api_settings_join_the_setting_and_the_environment_and_name_each_fault(tmp_path: Any) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("# ops\nfile:sha256:" + "ab" * 32 + ":admin\n")
    api = api_settings(_settings(BACKUPKIT_API={
        "tokens": ["viewer:read-token-0123456789:read"], "token_file": str(token_file),
        "access": f"{__name__}._scope", "url_expires": 60}),
        env={"BACKUPKIT_API_TOKENS": "env:env-token-0123456789:admin"})
    assert [(t.id, t.scope) for t in api.tokens.tokens] == [("viewer", "read"), ("env", "admin"), ("file", "admin")]
    assert api.tokens.check("read-token-0123456789").id == "viewer"  # type: ignore[union-attr]
    assert api.access is _scope and api.url_expires == 60
    assert "read-token" not in repr(api)
    assert api_settings(_settings(), env={}).tokens.tokens == ()  # no setting: no tokens, every call 401
    for value, named in [("x", "must be a dict"), ({"token": []}, "unknown key 'token'"),
                         ({"tokens": "a:b:read"}, "list of 'id:token:scope'"),
                         ({"tokens": ["a:short:read"]}, "shorter than 16"),
                         ({"access": "no.such.module.f"}, "cannot import 'no.such.module.f'"),
                         ({"access": 5}, "callable"), ({"url_expires": 0}, "1 to 604800")]:
        with pytest.raises(ConfigError, match="settings.BACKUPKIT_API") as caught:
            api_settings(_settings(BACKUPKIT_API=value), env={})
        assert named in str(caught.value) and "\n" not in str(caught.value)
