"""Configuration: dicts, TOML files, the ad-hoc form, environment variables, one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from backupkit.config import Config, PluginRef, find_config_file
from backupkit.core.durations import Duration
from backupkit.errors import ConfigError


def base(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"sources": [{"type": "filesystem", "paths": ["/srv"]}], "sink": "/b"}
    body.update(overrides)
    return {"sets": {"app": body}}


def test_minimal_set_defaults_to_zstd_and_names_source_by_type() -> None:
    cfg = Config.from_dict(base(), env={})
    s = cfg.get_set(None)
    assert s.transforms == (PluginRef(id="zstd"),)
    assert s.sources[0].id == "filesystem" and s.sources[0].params == {"paths": ["/srv"]}
    assert s.sink == "/b"


@pytest.mark.parametrize(("compress", "ids"), [("gzip", ["gzip"]), ("none", []), (False, []), (True, ["zstd"])])
def test_compress_shorthand(compress, ids) -> None:  # type: ignore[no-untyped-def]
    s = Config.from_dict(base(compress=compress), env={}).get_set("app")
    assert [t.id for t in s.transforms] == ids


def test_backup_dir_env_is_the_default_sink() -> None:
    body = base()
    del body["sets"]["app"]["sink"]  # type: ignore[index]
    assert Config.from_dict(body, env={"BACKUP_DIR": "/var/backups/q"}).get_set("app").sink == "/var/backups/q"
    with pytest.raises(ConfigError, match="has no sink.*BACKUP_DIR"):
        Config.from_dict(body, env={})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (base(sinks="/x"), r"set 'app': unknown key 'sinks'; did you mean 'sink'\?"),
        ({"sets": {}}, "at least one backup set"),
        ({"set": {}}, "unknown key 'set'; did you mean 'sets'"),
        (base(sources=[]), "'sources' must list at least one source"),
        (base(sources=[{"paths": ["/x"]}]), r"sources\[0\] needs a 'type'"),
        (base(compress="lz4"), "compress must be one of zstd, gzip, none, got 'lz4'"),
        (base(compress="zstd", transforms=[]), "either 'compress' or 'transforms'"),
        (base(tags="prod"), "'tags' must be a list of strings"),
        (
            base(sources=[{"type": "filesystem", "paths": ["/a"]}, {"type": "filesystem", "paths": ["/b"]}]),
            "two sources are named 'filesystem'",
        ),
        ({"sets": {"a_b": base()["sets"]["app"]}}, "set names use"),  # type: ignore[index]
    ],
)
def test_bad_config_is_one_line_naming_the_key(data, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message) as info:
        Config.from_dict(data, env={})
    assert "\n" not in str(info.value)


def test_toml_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "backupkit.toml"
    bad.write_text("[sets.app\n")
    with pytest.raises(ConfigError, match=f"config file {bad} is not valid TOML"):
        Config.from_file(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Config.from_file(tmp_path / "missing.toml")
    bad.write_text('[sets.app]\nsink = "/b"\nsources = [{type = "filesystem", paths = ["/x"]}]\nfoo = 1\n')
    with pytest.raises(ConfigError, match=f"{bad}: set 'app': unknown key 'foo'"):
        Config.from_file(bad)


@pytest.mark.parametrize(("data", "message"), [
    ('# caf\xe9\n[sets.app]\n'.encode("latin-1"), r"is not UTF-8: byte 5 \(line 1\) is 0xe9; TOML files are UTF-8"),
    ("[sets.app]\n".encode("utf-16"), "is UTF-16 .*save it as UTF-8"),
    ("[sets.app]\n".encode("utf-16-be"), r"holds a NUL byte at byte 0 \(line 1\), as UTF-16 text does"),
])
def test_a_config_file_that_is_not_utf8_is_a_config_error_naming_file_and_byte(
        tmp_path: Path, data: bytes, message: str, cli: Any) -> None:
    bad = tmp_path / "backupkit.toml"
    bad.write_bytes(data)
    with pytest.raises(ConfigError, match=f"config file {bad} {message}"):
        Config.from_file(bad)
    result = cli("list")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "save it as UTF-8" in result.stderr


def test_a_utf8_bom_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "backupkit.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'timezone = "Europe/Berlin"\n[sets.app]\nsink = "/b"\n'
                     b'sources = [{type = "filesystem", paths = ["/x"]}]\n')
    assert Config.from_file(path).timezone == "Europe/Berlin"


def test_find_config_file_prefers_explicit_then_cwd(tmp_path: Path) -> None:
    assert find_config_file(None, tmp_path) is None
    (tmp_path / "backupkit.toml").write_text("")
    assert find_config_file(None, tmp_path) == tmp_path / "backupkit.toml"
    assert find_config_file("other.toml", tmp_path) == Path("other.toml")


def test_adhoc_config_and_sink_only_config() -> None:
    cfg = Config.adhoc(sources=["/a", "/b"], sink="/s", compress="gzip", exclude=("*.pyc",), env={})
    s = cfg.get_set(None)
    assert s.sources[0].params == {"paths": ["/a", "/b"], "exclude": ["*.pyc"]}
    assert [t.id for t in s.transforms] == ["gzip"]
    with pytest.raises(ConfigError, match="--source"):
        Config.adhoc(sources=[], sink="/s", env={})
    assert Config.for_sink(None, env={"BACKUP_DIR": "/x"}).sink == "/x"
    with pytest.raises(ConfigError, match="no sink given"):
        Config.for_sink(None, env={})


def test_get_set_requires_a_name_when_several_sets() -> None:
    body = base()["sets"]["app"]  # type: ignore[index]
    cfg = Config.from_dict({"sets": {"app": body, "db": body}}, env={})
    with pytest.raises(ConfigError, match=r"several backup sets are configured \(app, db\)"):
        cfg.get_set(None)
    with pytest.raises(ConfigError, match="unknown backup set 'web'"):
        cfg.get_set("web")


def test_relative_key_file_in_a_toml_file_is_next_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfgdir = tmp_path / "cfgdir"
    cfgdir.mkdir()
    path = cfgdir / "backupkit.toml"
    sets = '[sets.app]\nsink = "/b"\nsources = [{type = "filesystem", paths = ["/x"]}]\n'
    monkeypatch.chdir(tmp_path)  # cron and systemd run from elsewhere
    for written, expected in [
        ("keys", cfgdir / "keys"),
        ("sub/../keys", cfgdir / "keys"),
        ("/etc/backupkit/keys", Path("/etc/backupkit/keys")),
    ]:
        path.write_text(f'key_file = "{written}"\n{sets}')
        assert Config.from_file(Path("cfgdir/backupkit.toml")).key_file == str(expected)
    assert Config.from_dict({"key_file": "keys", **base()}, env={}).key_file == "keys"


def test_repr_of_config_and_engine_hides_sink_credentials_and_url_passwords() -> None:
    from backupkit import Engine

    s3 = {
        "type": "s3",
        "bucket": "my-bucket",
        "access_key_id": "AKIAEXAMPLEID",
        "secret_access_key": "SUPERSECRET",
        "session_token": "SESSIONTOKEN",
        "kms_key_id": "alias/backups",
    }
    source = {"type": "pg", "dsn": "postgresql://app:pgpass%40x@db:5432/app", "password": "pw1234"}
    data = {
        "sets": {
            "app": base(sink=s3)["sets"]["app"],  # type: ignore[index]
            "db": base(sink="sftp://bob:hunter2@host/x", sources=[source])["sets"]["app"],  # type: ignore[index]
        },
    }
    cfg = Config.from_dict(data, env={})
    texts = [repr(cfg), repr(cfg.sets["app"]), repr(cfg.sets["db"]), repr(Engine.from_config(cfg))]
    texts.append(repr(Config.for_sink("sftp://bob:hunter2@host/x", env={})))
    texts.append(repr(attrs.evolve(cfg, key_file="base64:" + "A" * 43 + "=")))  # a key as file
    for text in texts:
        for secret in ("SUPERSECRET", "SESSIONTOKEN", "AKIAEXAMPLEID", "hunter2", "pgpass", "pw1234"):
            assert secret not in text
        assert "A" * 43 not in text
    assert "my-bucket" in texts[0] and "alias/backups" in texts[0]  # the rest still shows
    assert "sftp://bob:***@host/x" in texts[0] and "postgresql://app:***@db:5432/app" in texts[0]
    assert cfg.sets["db"].sink == "sftp://bob:hunter2@host/x"  # only the repr hides it


def test_a_toml_retention_table_takes_restics_names_and_units(tmp_path: Path) -> None:
    path = tmp_path / "backupkit.toml"
    path.write_text(
        '[sets.app]\nsources = [{type = "filesystem", paths = ["/srv"]}]\nsink = "/b"\n'
        'schedule = [{kind = "incremental", every = "90min"}]\n'
        '[sets.app.retention]\nkeep_daily = 7\nkeep_monthly = "all"\nkeep_within = "1y 6mo"\n'
        'keep_within_daily = "2w"\nkeep_tag = [["prod", "db"], "release"]\nwithin_anchor = "now"\n'
        'oldest_rule = false\n'
    )
    policy = Config.from_file(path).get_set("app").retention
    assert policy is not None and policy.keep_within == Duration(months=18) and policy.keep_monthly == -1
    assert policy.keep_tag == (("prod", "db"), ("release",)) and not policy.oldest_rule
    path.write_text(path.read_text().replace('every = "90min"', 'every = "90m"'))
    with pytest.raises(ConfigError, match="write '90min' for minutes"):
        Config.from_file(path)
