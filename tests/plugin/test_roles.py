"""Configuration and engine know transforms by their stage, not by plugin id, and read
the environment they are given, not the process's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

import backupkit
from backupkit.config import Config, compress_choices
from backupkit.core.durations import Duration
from backupkit.plugin import Encoder, Reader, Register, Stage, Transform, Writer, hookimpl
from backupkit.plugins import Roles, make_plugin_manager


@attrs.frozen
class Rot13Enc(Transform):
    """A toy 'encryption' (byte rotation): only its stage matters here."""

    id: ClassVar[str] = "rot13enc"
    extension: ClassVar[str] = ".rot"
    stage: ClassVar[Stage] = "encrypt"

    def encoder(self, out: Writer) -> Encoder:
        class Enc:
            def write(self, data: bytes, /) -> int:
                return out.write(bytes((b + 13) % 256 for b in data))

            def close(self) -> None:
                pass

        return Enc()

    def decoder(self, inp: Reader) -> Reader:
        class Dec:
            def read(self, size: int = -1, /) -> bytes:
                return bytes((b - 13) % 256 for b in inp.read(size))

        return Dec()


@attrs.frozen
class Squash(Transform):
    """A toy compressor that stores bytes as they are."""

    id: ClassVar[str] = "squash"
    stage: ClassVar[Stage] = "compress"

    def encoder(self, out: Writer) -> Encoder:
        class Enc:
            def write(self, data: bytes, /) -> int:
                return out.write(data)

            def close(self) -> None:
                pass

        return Enc()

    def decoder(self, inp: Reader) -> Reader:
        return inp


class ToyTransforms:
    @hookimpl
    def backupkit_register_transforms(self, register: Register) -> None:
        register.transform(Rot13Enc)
        register.transform(Squash)


def test_builtin_roles_put_each_stage_default_first() -> None:
    roles = make_plugin_manager(autoload=False).roles
    assert roles.of_stage("compress") == ("zstd", "gzip")
    assert roles.default("encrypt") == "aes"
    assert compress_choices(roles) == ("zstd", "gzip", "none")


def test_a_stage_with_one_transform_defaults_to_it() -> None:
    register = Register()
    register.transform(Squash)
    register.transform(Rot13Enc)
    roles = Roles.of(register)
    assert (roles.default("compress"), roles.default("encrypt")) == ("squash", "rot13enc")


def test_config_accepts_a_plugin_compressor_the_engine_registered(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x" * 100)
    body: dict[str, Any] = {"sets": {"app": {
        "sources": [{"type": "filesystem", "paths": [str(src)]}],
        "compress": "squash", "sink": str(tmp_path / "sink"),
    }}}
    with pytest.raises(backupkit.errors.ConfigError, match="compress must be one of zstd, gzip, none"):
        Config.from_dict(body, env={})
    engine = backupkit.Engine.from_config(body, plugins=[ToyTransforms()], env={})
    manifest = engine.backup("app")
    assert [t.id for t in manifest.artifacts[0].transforms] == ["squash"]


def test_the_downgrade_guard_knows_encryption_by_its_stage(tmp_path: Path) -> None:
    """A set encrypting with a third-party transform refuses a plain backup planted after
    its encrypted ones, exactly as with the built-in one."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("secret")
    sink = str(tmp_path / "sink")
    source = [{"type": "filesystem", "paths": [str(src)]}]
    encrypted = backupkit.Engine.from_config(
        {"sets": {"app": {"sources": source, "transforms": ["rot13enc"], "sink": sink}}},
        plugins=[ToyTransforms()], env={},
    )
    encrypted.backup("app")
    plain = backupkit.Engine.from_config(
        {"sets": {"app": {"sources": source, "compress": "none", "sink": sink}}}, env={},
    )
    planted = plain.backup("app")
    with pytest.raises(backupkit.errors.IntegrityError, match="not encrypted as the set is configured"):
        encrypted.restore(planted.id, to=tmp_path / "out")


def test_prune_uses_the_retention_days_of_the_env_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_RETENTION_DAYS", "not a number")  # must not be read
    src = tmp_path / "src"
    src.mkdir()
    cfg = {"sets": {"app": {"sources": [{"type": "filesystem", "paths": [str(src)]}],
                            "sink": str(tmp_path / "sink")}}}
    engine = backupkit.Engine.from_config(cfg, env={"BACKUP_RETENTION_DAYS": "3"})
    [result] = engine.prune("app", dry_run=True)
    assert result.plan.policy.keep_within == Duration.of(dt.timedelta(days=3))
    with pytest.raises(backupkit.errors.ConfigError, match="BACKUP_RETENTION_DAYS"):
        backupkit.Engine.from_config(cfg).prune("app", dry_run=True)  # the process's env
