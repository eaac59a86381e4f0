"""Every built-in passes the plugin-author kit's conformance suites (one line each)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from backupkit.crypto.keys import Key, Keyring
from backupkit.plugin import Source, Transform
from backupkit.testing.fakes import MemorySink, MemoryStore
from backupkit.testing.sink_suite import SinkConformance
from backupkit.testing.source_suite import SourceConformance
from backupkit.testing.transform_suite import TransformConformance
from backupkit.transforms.aes import AesTransform
from backupkit.transforms.gzip import GzipTransform
from backupkit.transforms.zstd import ZstdTransform


def tree_of(root: Path) -> dict[str, bytes] | None:
    if not root.exists():
        return None
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class TestFilesystemSource(SourceConformance):
    @pytest.fixture
    def params(self, tmp_path: Path) -> dict[str, Any]:
        data = tmp_path / "data"
        (data / "sub").mkdir(parents=True)
        (data / "a.txt").write_text("alpha\n")
        (data / "sub" / "b.bin").write_bytes(os.urandom(70_000))
        (data / "empty").write_bytes(b"")
        return {"type": "filesystem", "paths": [str(data)]}

    @pytest.fixture
    def target(self, tmp_path: Path) -> Path:
        return tmp_path / "restored"

    def expected(self, source: Source) -> Any:
        return tree_of(Path(source.paths[0]).parent)  # type: ignore[attr-defined]

    def restored(self, target: Path) -> Any:
        return tree_of(target)

    def change(self, source: Source) -> None:
        root = Path(source.paths[0])  # type: ignore[attr-defined]
        (root / "a.txt").write_text("alpha, changed\n")
        (root / "sub" / "b.bin").unlink()
        (root / "new.txt").write_text("new\n")


class TestMemorySink(SinkConformance):
    @pytest.fixture
    def sink(self) -> MemorySink:
        return MemorySink(MemoryStore().name)

    @pytest.fixture
    def other_sink(self, sink: MemorySink) -> MemorySink:
        return MemorySink(sink.store_name)


class TestGzip(TransformConformance):
    @pytest.fixture
    def transform(self) -> Transform:
        return GzipTransform()


class TestZstd(TransformConformance):
    detects_truncation = False
    # The default worker thread keeps up to a few jobs of input (8 MiB each at level 3)
    # before their output leaves; 15 MiB measured.
    holds_back = 32 << 20

    @pytest.fixture
    def transform(self) -> Transform:
        return ZstdTransform()


class TestZstdInTheEnginesThread(TransformConformance):
    detects_truncation = False

    @pytest.fixture
    def transform(self) -> Transform:
        return ZstdTransform(threads=0)


class TestAesGcm(TransformConformance):
    @pytest.fixture
    def keyring(self) -> Keyring:
        return Keyring([Key.generate()])

    @pytest.fixture
    def transform(self, keyring: Keyring) -> Transform:
        return AesTransform().with_keyring(keyring)


class TestSqliteExamplePlugin(SourceConformance):
    """The third-party example, found through its entry point like any installed plugin."""

    @pytest.fixture
    def params(self, tmp_path: Path) -> dict[str, Any]:
        db = tmp_path / "app.db"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            conn.executemany("INSERT INTO t (body) VALUES (?)", [(f"row {i}",) for i in range(500)])
        conn.close()
        return {"type": "sqlite", "path": str(db)}

    @pytest.fixture
    def target(self, tmp_path: Path) -> Path:
        return tmp_path / "restored"

    @staticmethod
    def rows(db: Path) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(db)
        try:
            return conn.execute("SELECT id, body FROM t ORDER BY id").fetchall()
        finally:
            conn.close()

    def expected(self, source: Source) -> Any:
        return self.rows(Path(source.path))  # type: ignore[attr-defined]

    def restored(self, target: Path) -> Any:
        db = target / "app.db"
        return self.rows(db) if db.exists() else None
