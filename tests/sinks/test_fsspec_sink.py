"""The generic fsspec sink: URL routing, backups through it, and what it keeps private."""

from __future__ import annotations

import errno
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.spec import AbstractFileSystem
from fsspec.utils import infer_storage_options

from backupkit import Config, Engine
from backupkit.cli import main
from backupkit.errors import ConfigError, SinkError
from backupkit.plugins import make_plugin_manager
from backupkit.sinks.fsspec import FsspecSink
from backupkit.testing.s3server import S3Server, s3, s3_server  # noqa: F401


@pytest.fixture
def memory_url() -> Iterator[str]:
    url = f"memory://backups-{uuid.uuid4().hex}"
    yield url
    memory = fsspec.filesystem("memory")
    if memory.exists(url):
        memory.rm(url, recursive=True)


class RefusingSFTP(AbstractFileSystem):  # type: ignore[misc]
    """An sftp filesystem whose server refuses the connection, as sshfs's does in __init__."""

    protocol = "sftp"

    def __init__(self, host: str, **kwargs: Any) -> None:
        raise ConnectionRefusedError(errno.ECONNREFUSED, f"Connection refused by {host}:22")

    @classmethod
    def _get_kwargs_from_urls(cls, path: str) -> dict[str, Any]:
        options = infer_storage_options(path)
        options.pop("path", None)
        options.pop("protocol", None)
        return options


@pytest.fixture
def refusing_sftp() -> Iterator[None]:
    """sftp:// goes to :class:`RefusingSFTP` for the test (paramiko need not be installed)."""
    registry = sys.modules["fsspec.registry"]._registry
    saved = registry.get("sftp")
    fsspec.register_implementation("sftp", RefusingSFTP, clobber=True)
    yield
    if saved is None:
        registry.pop("sftp", None)
    else:
        registry["sftp"] = saved


@pytest.mark.parametrize(
    ("url", "sink_id"),
    [
        ("memory://b/p", "fsspec"),
        ("gcs://bucket/p", "fsspec"),
        ("simplecache::s3://bucket/p", "fsspec"),
        ("s3://bucket/p", "s3"),
        ("file:///var/backups", "local"),
        ("/var/backups", "local"),
        ("relative/dir", "local"),
        ("nosuchproto://x", None),
    ],
)
def test_urls_go_to_the_sink_that_owns_them(url: str, sink_id: str | None) -> None:
    found = make_plugin_manager(autoload=False).hook.backupkit_sink_for_url(url=url)
    assert (found[0] if found else None) == sink_id


def test_a_url_nobody_owns_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no sink plugin handles 'nosuchproto://x'"):
        Engine(Config.for_sink("nosuchproto://x")).catalog()


def test_backup_list_restore_through_a_memory_url(
    source_tree: Path, tmp_path: Path, memory_url: str
) -> None:
    engine = Engine(Config.adhoc(sources=[str(source_tree)], sink=memory_url))
    manifest = engine.backup()
    assert engine.sink_for(memory_url).id == "fsspec"
    assert [m.id for m in Engine(Config.for_sink(memory_url)).catalog()] == [manifest.id]
    assert not fsspec.filesystem("memory").exists(f"{memory_url}/temp/{manifest.id}")

    Engine(Config.for_sink(memory_url)).restore("latest", to=tmp_path / "out")
    original = sorted(p.relative_to(source_tree) for p in source_tree.rglob("*"))
    restored_root = tmp_path / "out" / source_tree.name
    assert sorted(p.relative_to(restored_root) for p in restored_root.rglob("*")) == original


def test_the_cli_takes_an_fsspec_url_as_sink(
    source_tree: Path, memory_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backup", "--source", str(source_tree), "--sink", memory_url]) == 0
    assert main(["list", "--sink", memory_url, "--json"]) == 0
    assert '"set": "default"' in capsys.readouterr().out


def test_location_and_describe_keep_credentials_out() -> None:
    sink = FsspecSink.from_params(
        {"url": "sftp://backup:hunter2@nas.local/srv/backups/", "storage_options": {"password": "x"}}
    )
    assert sink.location == "sftp://nas.local/srv/backups"
    assert sink.describe() == {"url": "sftp://nas.local/srv/backups", "publish": "auto"}
    assert "hunter2" not in repr(sink) and "password" not in repr(sink)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("simplecache::sftp://bob:s3cret@nas.local/b", "simplecache::sftp://nas.local/b"),
        ("sftp://bob:s3cr@t@nas.local/b", "sftp://nas.local/b"),  # '@' in the password
        ("sftp://bob:s3cret@nas.local?x=a@b", "sftp://nas.local?x=a@b"),
    ],
)
def test_passwords_in_chained_urls_and_with_at_signs_never_show(
    url: str, shown: str, refusing_sftp: None
) -> None:
    sink = FsspecSink(url)
    assert sink.location == shown
    assert sink.describe()["url"] == shown
    assert repr(sink) == f"FsspecSink(url={shown!r}, publish='auto')"
    with pytest.raises(SinkError) as caught:
        sink.get_bytes("daily/x")
    message = str(caught.value)
    assert shown in message and "\n" not in message
    assert "s3cr" not in message and "bob" not in message


def test_an_sftp_server_that_refuses_is_a_one_line_error_for_list_backup_and_status(
    source_tree: Path, refusing_sftp: None
) -> None:
    url = "sftp://bob:s3cret@nas.local/srv/backups"
    sink = FsspecSink(url)
    for attempt in (lambda: sink.fs, lambda: list(sink.list_keys())):
        with pytest.raises(SinkError) as caught:
            attempt()
        message = str(caught.value)
        assert message.startswith("cannot open sftp://nas.local/srv/backups: ")
        assert "Connection refused by nas.local:22; check the URL" in message
        assert "\n" not in message and "s3cret" not in message
    sink.end_run("20240101T000000Z-aaaaaa")  # after a failed run: must not hide its error

    with pytest.raises(SinkError, match="^cannot open sftp://nas.local/srv/backups: "):
        Engine(Config.adhoc(sources=[str(source_tree)], sink=url)).backup()
    with pytest.raises(SinkError, match="^cannot open sftp://nas.local/srv/backups: "):
        Engine(Config.for_sink(url)).catalog()


def test_object_stores_publish_by_transaction_and_others_by_rename(tmp_path: Path) -> None:
    assert FsspecSink(f"file://{tmp_path}").mode == "rename"
    assert FsspecSink("memory://x").mode == "rename"
    assert FsspecSink("s3://bucket/p", storage_options={"anon": True}).mode == "transaction"
    assert FsspecSink("memory://x", publish="transaction").mode == "transaction"


def test_presign_without_support_is_a_config_error(memory_url: str) -> None:
    with pytest.raises(ConfigError, match="cannot make download URLs"):
        FsspecSink(memory_url).presign("daily/x")


@pytest.mark.integration
def test_presign_through_s3fs(s3: S3Server) -> None:  # noqa: F811
    s3.create_bucket("viafsspec")
    sink = FsspecSink("s3://viafsspec/p", storage_options={"skip_instance_cache": True})
    sink.put_bytes("daily/x.bin", b"signed bytes", run_id="r")
    with urllib.request.urlopen(sink.presign("daily/x.bin", expires=60), timeout=10) as response:
        assert response.read() == b"signed bytes"
