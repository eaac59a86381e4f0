"""A third-party transform: recorded in the manifest, reversed on restore, its parameters checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
from plugin_helpers import _autoload_on, files_config  # noqa: F401

import backupkit
from backupkit.errors import ConfigError
from backupkit.params import check_range
from backupkit.plugin import Encoder, Reader, Register, Writer


# -- a third-party transform -----------------------------------------------------------------
class _XorStream:
    def __init__(self, inner: Any, key: int) -> None:
        self.inner = inner
        self.table = bytes(b ^ key for b in range(256))

    def write(self, data: bytes, /) -> int:
        self.inner.write(bytes(data).translate(self.table))
        return len(data)

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self.inner.read(size)
        return data.translate(self.table)

    def close(self) -> None:
        pass


@attrs.frozen
class XorTransform(backupkit.plugin.Transform):
    id: ClassVar[str] = "xor-test"
    extension: ClassVar[str] = ".xor"

    key: int = attrs.field(default=0x5A, validator=check_range(1, 255))

    def encoder(self, out: Writer) -> Encoder:
        return _XorStream(out, self.key)

    def decoder(self, inp: Reader) -> Reader:
        return _XorStream(inp, self.key)


class XorPlugin:
    @backupkit.hookimpl
    def backupkit_register_transforms(self, register: Register) -> None:
        register.transform(XorTransform)


def test_a_third_party_transform_is_recorded_and_reversed_on_restore(tmp_path: Path) -> None:
    transforms = ["zstd", {"type": "xor-test", "key": 7}]
    config = files_config(tmp_path, str(tmp_path / "sink"), transforms=transforms)
    engine = backupkit.Engine.from_config(config, plugins=[XorPlugin()])
    manifest = engine.backup()
    artifact = manifest.artifact("files")
    assert [t.id for t in artifact.transforms] == ["zstd", "xor-test"]
    assert artifact.transforms[1].params == {"key": 7}
    assert artifact.key.endswith(".tar.zst.xor")

    engine.restore(to=tmp_path / "restored")
    assert (tmp_path / "restored" / "data" / "hello.txt").read_text() == "hello\n"


def test_a_bad_transform_parameter_value_is_a_config_error(tmp_path: Path) -> None:
    config = files_config(
        tmp_path, str(tmp_path / "sink"), transforms=[{"type": "xor-test", "key": 0}]
    )
    engine = backupkit.Engine.from_config(config, plugins=[XorPlugin()])
    with pytest.raises(
        ConfigError, match="transform 'xor-test': key must be an integer from 1 to 255"
    ):
        engine.backup()
