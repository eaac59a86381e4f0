"""Encrypted backups end to end: engine, configuration, CLI, the documented format, secrecy.

Every tamper case fails restore and ``verify`` with an :class:`IntegrityError` naming the
artifact, both when only the artifact was changed and when the attacker also rewrote the
manifest's checksums (then only AES-GCM can tell). Keys are looked for in every file of the
sink, every ``--json`` output, every message and log: they are never there.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import zstandard

from backupkit import Engine, Manifest
from backupkit.crypto.keys import KEY_ENV, Key, Keyring
from backupkit.crypto.stream import HEADER_SIZE, TAG_SIZE
from backupkit.errors import (
    BackupkitError,
    ConfigError,
    IntegrityError,
    KeyMissingError,
    ManifestError,
)
from backupkit.testing import fakes
from backupkit.testing.damage import flip

if TYPE_CHECKING:
    from conftest import Cli

# The repository root: the nearest folder above this file that holds pyproject.toml.
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
SMALL = 4096
PASSPHRASE = "a passphrase nobody will guess 7f3c"
MANIFEST_GLOB = "*/*.manifest.json"


def make_source(root: Path, seed: int = 3) -> Path:
    import random

    rng = random.Random(seed)
    (root / "sub").mkdir(parents=True)
    (root / "random.bin").write_bytes(rng.randbytes(40_000))  # incompressible: many chunks
    (root / "sub" / "text.txt").write_text("hello\n" * 500)
    (root / "empty").write_bytes(b"")
    return root


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_source(tmp_path / "src" / "data")


@pytest.fixture
def key() -> Key:
    return Key.generate()


TRANSFORMS: list[Any] = ["zstd", {"type": "aes", "chunk_size": SMALL}]


def config(sink: Path, src: Path, **set_body: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sources": [{"type": "filesystem", "name": "files", "paths": [str(src)]}],
        "sink": str(sink),
        "transforms": TRANSFORMS,
        **set_body,
    }
    return {"sets": {"app": body}}


def engine_for(sink: Path, src: Path, key_text: str | None, **kw: Any) -> Engine:
    """Set ``app`` over *src*, zstd then aes unless *kw* says otherwise; *key_text* in the env."""
    env = {KEY_ENV: key_text} if key_text else {}
    return fakes.engine_for(src, sink=sink, env=env, **{"transforms": TRANSFORMS, **kw})


def main_artifact(manifest: Manifest) -> Any:
    return manifest.artifact("files")


def restored_tree(target: Path, src: Path) -> Path:
    return target / src.name


def same_tree(a: Path, b: Path) -> bool:
    def files(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
        }

    return files(a) == files(b)


# -- round trips ---------------------------------------------------------------------------------


def test_encrypted_backup_restores_byte_identical(tmp_path: Path, src: Path, key: Key) -> None:
    engine = engine_for(tmp_path / "sink", src, key.encode())
    manifest = engine.backup()
    artifact = main_artifact(manifest)
    assert artifact.key.endswith(".tar.zst.bkenc")
    assert [t.id for t in artifact.transforms] == ["zstd", "aes"]
    assert artifact.transforms[1].params == {
        "key_id": key.id,
        "chunk_size": SMALL,
        "scrypt_log_n": 17,
    }
    stored = (tmp_path / "sink" / artifact.key).read_bytes()
    assert stored[17:25].hex() == key.id and b"random.bin" not in stored
    for side in manifest.artifacts:  # the incremental index sidecar is encrypted too
        assert side.key.endswith(".bkenc")
    engine.restore(manifest.id, to=tmp_path / "out")
    assert same_tree(src, restored_tree(tmp_path / "out", src))
    assert engine.verify(manifest.id).ok


def test_encrypt_true_adds_aes_after_compression(tmp_path: Path, src: Path, key: Key) -> None:
    cfg = config(tmp_path / "sink", src, compress="gzip", encrypt=True)
    del cfg["sets"]["app"]["transforms"]
    engine = Engine.from_config(cfg, env={KEY_ENV: key.encode()})
    assert [t.id for t in engine.config.sets["app"].transforms] == ["gzip", "aes"]
    manifest = engine.backup()
    assert main_artifact(manifest).key.endswith(".tar.gz.bkenc")
    engine.restore("latest", to=tmp_path / "out")
    assert same_tree(src, restored_tree(tmp_path / "out", src))


@pytest.mark.parametrize(
    "env, body, expected",
    [
        ({"BACKUP_ENCRYPTION": "true"}, {}, ["zstd", "aes"]),
        ({"BACKUP_ENCRYPTION": "1"}, {"compress": "none"}, ["aes"]),
        ({"BACKUP_ENCRYPTION": "true"}, {"encrypt": False}, ["zstd"]),
        ({"BACKUP_ENCRYPTION": "false"}, {}, ["zstd"]),
        ({}, {"encrypt": True}, ["zstd", "aes"]),
        ({}, {"encrypt": True, "transforms": ["zstd", {"type": "aes"}]}, ["zstd", "aes"]),
        ({}, {}, ["zstd"]),
    ],
)
def test_backup_encryption_env_turns_encryption_on_for_configured_sets(
    tmp_path: Path, src: Path, env: dict[str, str], body: dict[str, Any], expected: list[str]
) -> None:
    cfg = config(tmp_path / "sink", src, **body)
    if "transforms" not in body:
        del cfg["sets"]["app"]["transforms"]
    from backupkit.config import Config

    assert [t.id for t in Config.from_dict(cfg, env=env).sets["app"].transforms] == expected


@pytest.mark.parametrize(
    "env, body, message",
    [
        ({"BACKUP_ENCRYPTION": "maybe"}, {}, "BACKUP_ENCRYPTION must be true or false"),
        ({}, {"encrypt": "yes"}, "'encrypt' must be true or false"),
    ],
)
def test_bad_encryption_switch_is_a_config_error(
    tmp_path: Path, src: Path, env: dict[str, str], body: dict[str, Any], message: str
) -> None:
    cfg = config(tmp_path / "sink", src, **body)
    del cfg["sets"]["app"]["transforms"]
    with pytest.raises(ConfigError, match=message):
        Engine.from_config(cfg, env=env)


def test_encrypting_before_compressing_is_refused(tmp_path: Path, src: Path, key: Key) -> None:
    engine = engine_for(tmp_path / "sink", src, key.encode(), transforms=["aes", "zstd"])
    with pytest.raises(ConfigError, match="put compression before encryption"):
        engine.backup()
    assert not list((tmp_path / "sink").glob(MANIFEST_GLOB))


def test_passphrase_backup_round_trip(tmp_path: Path, src: Path) -> None:
    engine = engine_for(
        tmp_path / "sink",
        src,
        f"passphrase:{PASSPHRASE}",
        transforms=["zstd", {"type": "aes", "scrypt_log_n": 10}],
    )
    manifest = engine.backup()
    stored = (tmp_path / "sink" / main_artifact(manifest).key).read_bytes()
    assert stored[9:13] == bytes([2, 10, 8, 1])  # scrypt, log2 N, r, p
    engine.restore("latest", to=tmp_path / "out")
    assert same_tree(src, restored_tree(tmp_path / "out", src))


def test_key_rotation_new_key_writes_old_keys_still_read(tmp_path: Path, src: Path) -> None:
    old, new = Key.generate(), Key.generate()
    sink = tmp_path / "sink"
    first = engine_for(sink, src, old.encode()).backup()
    keys = tmp_path / "keys"
    keys.write_text(f"# new key first\n{new.encode()}\n{old.encode()}\n")
    keys.chmod(0o600)
    engine = engine_for(sink, src, None, key_file=keys)
    assert engine.keyring.ids() == [new.id, old.id]
    second = engine.backup()
    assert main_artifact(first).transforms[1].params["key_id"] == old.id
    assert main_artifact(second).transforms[1].params["key_id"] == new.id
    for i, manifest in enumerate((first, second)):
        engine.restore(manifest.id, to=tmp_path / f"out{i}")
        assert same_tree(src, restored_tree(tmp_path / f"out{i}", src))
    only_new = engine_for(sink, src, new.encode())
    with pytest.raises(KeyMissingError, match=old.id):
        only_new.restore(first.id, to=tmp_path / "out-old")


def test_key_file_from_config(tmp_path: Path, src: Path, key: Key) -> None:
    keys = tmp_path / "keys"
    keys.write_text(key.encode() + "\n")
    keys.chmod(0o600)
    cfg = config(tmp_path / "sink", src)
    cfg["key_file"] = str(keys)
    engine = Engine.from_config(cfg, env={})
    assert engine.keyring.ids() == [key.id]
    engine.backup()
    engine.restore("latest", to=tmp_path / "out")


# -- wrong and missing keys --------------------------------------------------------------------


def test_wrong_key_names_the_key_id_needed(tmp_path: Path, src: Path, key: Key) -> None:
    sink = tmp_path / "sink"
    manifest = engine_for(sink, src, key.encode()).backup()
    other = Key.generate()
    engine = engine_for(sink, src, other.encode())
    with pytest.raises(KeyMissingError) as info:
        engine.restore(manifest.id, to=tmp_path / "out")
    message = str(info.value)
    assert key.id in message and other.id in message and manifest.id in message
    assert info.value.key_id == key.id and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_missing_key_when_the_manifest_says_encrypted(tmp_path: Path, src: Path, key: Key) -> None:
    sink = tmp_path / "sink"
    manifest = engine_for(sink, src, key.encode()).backup()
    engine = engine_for(sink, src, None)
    assert not engine.keyring
    with pytest.raises(KeyMissingError, match=f"encrypted with key {key.id}.*configured: none"):
        engine.restore(manifest.id, to=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_encrypting_without_a_key_fails_before_anything_is_written(
    tmp_path: Path, src: Path
) -> None:
    engine = engine_for(tmp_path / "sink", src, None)
    with pytest.raises(KeyMissingError, match="no encryption key is configured"):
        engine.backup()
    assert not list((tmp_path / "sink").rglob("*.bkenc"))
    assert not list((tmp_path / "sink").glob(MANIFEST_GLOB))


# -- tampering through the engine ----------------------------------------------------------------


def _split(blob: bytes) -> tuple[bytes, list[bytes]]:
    sealed = SMALL + TAG_SIZE
    body = blob[HEADER_SIZE:]
    return blob[:HEADER_SIZE], [body[i : i + sealed] for i in range(0, len(body), sealed)]


def truncate_at_chunk_boundary(blob: bytes, other: bytes) -> bytes:
    header, chunks = _split(blob)
    return header + b"".join(chunks[:-1])


def extend_with_a_chunk(blob: bytes, other: bytes) -> bytes:
    return blob + _split(blob)[1][0]


def reorder_two_chunks(blob: bytes, other: bytes) -> bytes:
    header, c = _split(blob)
    return header + c[1] + c[0] + b"".join(c[2:])


def swap_chunk_from_another_artifact(blob: bytes, other: bytes) -> bytes:
    header, c = _split(blob)
    return header + c[0] + _split(other)[1][1] + b"".join(c[2:])


def flip_bit_in_header(blob: bytes, other: bytes) -> bytes:
    return flip(blob, 30, 0x10)  # inside the salt


def flip_bit_in_body(blob: bytes, other: bytes) -> bytes:
    return flip(blob, HEADER_SIZE + SMALL + 100, 0x10)


def strip_mac(sink: Path, manifest: Manifest) -> None:
    """What an attacker does next: drop the MAC, as if an older backupkit wrote the manifest."""
    (path,) = [p for p in sink.glob(MANIFEST_GLOB) if manifest.id in p.name]
    doc = json.loads(path.read_text())
    del doc["mac"]
    path.write_text(json.dumps(doc))


TAMPERS = [
    truncate_at_chunk_boundary,
    extend_with_a_chunk,
    reorder_two_chunks,
    swap_chunk_from_another_artifact,
    flip_bit_in_header,
    flip_bit_in_body,
]


def rewrite_manifest_checksums(sink: Path, manifest: Manifest, name: str, data: bytes) -> None:
    """What an attacker who can also write manifests does: make the stored checksum match."""
    import hashlib

    (path,) = [p for p in sink.glob(MANIFEST_GLOB) if manifest.id in p.name]
    doc = json.loads(path.read_text())
    for artifact in doc["artifacts"]:
        if artifact["name"] == name:
            artifact["stored_size"] = len(data)
            artifact["stored_sha256"] = hashlib.sha256(data).hexdigest()
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("also_manifest", [False, True], ids=["artifact-only", "manifest-too"])
@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.__name__ for t in TAMPERS])
def test_tampering_fails_restore_and_verify_naming_the_artifact(
    tmp_path: Path,
    src: Path,
    key: Key,
    tamper: Callable[[bytes, bytes], bytes],
    also_manifest: bool,
) -> None:
    sink = tmp_path / "sink"
    engine = engine_for(sink, src, key.encode())
    victim = engine.backup()
    donor = engine.backup()  # same key, same data: a chunk from it is the best forgery there is
    artifact = main_artifact(victim)
    path = sink / artifact.key
    original = path.read_bytes()
    assert len(_split(original)[1]) >= 4
    tampered = tamper(original, (sink / main_artifact(donor).key).read_bytes())
    assert tampered != original
    path.write_bytes(tampered)
    if also_manifest:
        rewrite_manifest_checksums(sink, victim, "files", tampered)
        # The manifest's MAC (key derived from the set's key) no longer matches: refused, named.
        for attempt in (lambda: engine.restore(victim.id, to=tmp_path / "out"), lambda: engine.verify(victim.id)):
            with pytest.raises(ManifestError, match=f"{victim.id}.manifest.json was edited after it was written"):
                attempt()
        strip_mac(sink, victim)  # and without its MAC, AES-GCM still catches the data

    label = f"artifact files of backup {victim.id}"
    with pytest.raises(IntegrityError) as info:
        engine.restore(victim.id, to=tmp_path / "out")
    assert label in str(info.value) and artifact.key in str(info.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    result = engine.verify(victim.id)
    (bad,) = [c for c in result.checks if not c.ok]
    assert bad.artifact == "files" and label in (bad.error or "")
    if also_manifest:  # the checksums match now: AES-GCM is what caught it
        assert "encrypted stream failed authentication" in str(info.value)
        assert "encrypted stream failed authentication" in (bad.error or "")


def test_verify_without_the_key_checks_the_stored_checksum_and_says_so(
    tmp_path: Path, src: Path, key: Key
) -> None:
    sink = tmp_path / "sink"
    manifest = engine_for(sink, src, key.encode()).backup()
    keyless = engine_for(sink, src, None)
    with_key = engine_for(sink, src, key.encode())

    result = keyless.verify(manifest.id)
    assert result.ok
    for check in result.checks:
        assert check.note and key.id in check.note and "AEAD" in check.note
    assert all(c.note is None for c in with_key.verify(manifest.id).checks)

    path = sink / main_artifact(manifest).key
    original = path.read_bytes()
    path.write_bytes(flip(original, len(original) // 2, 0x10))
    result = keyless.verify(manifest.id)
    assert not result.ok  # the stored checksum suffices
    assert "does not match its manifest checksum" in (result.checks[0].error or "")

    rewrite_manifest_checksums(sink, manifest, "files", path.read_bytes())
    assert keyless.verify(manifest.id).ok  # without the key nothing more can be known
    with pytest.raises(ManifestError, match="was edited after it was written"):
        with_key.verify(manifest.id)  # with it, the manifest's MAC catches the forgery
    strip_mac(sink, manifest)
    result = with_key.verify(manifest.id)
    assert not result.ok  # and without the MAC, AES-GCM
    assert "failed authentication" in (result.checks[0].error or "")


# -- the documented format -----------------------------------------------------------------------


def documented_decrypt() -> Callable[[Any, Any, bytes], None]:
    text = (ROOT / "docs" / "encryption.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    (code,) = [b for b in blocks if "def decrypt_backupkit" in b]
    assert 30 <= len(code.splitlines()) <= 50, "the documented function should stay about 40 lines"
    assert not re.search(r"^\s*(from|import) backupkit", code, flags=re.MULTILINE)
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/encryption.md", "exec"), namespace)  # noqa: S102 - our own docs
    return namespace["decrypt_backupkit"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["key", "passphrase"])
def test_documented_decryption_function_recovers_a_real_artifact(
    tmp_path: Path, src: Path, kind: str
) -> None:
    import hashlib

    key_text = Key.generate().encode() if kind == "key" else f"passphrase:{PASSPHRASE}"
    engine = engine_for(
        tmp_path / "sink",
        src,
        key_text,
        transforms=["zstd", {"type": "aes", "chunk_size": SMALL, "scrypt_log_n": 10}],
    )
    manifest = engine.backup()
    artifact = main_artifact(manifest)
    if kind == "key":
        secret = base64.b64decode(key_text.removeprefix("base64:"))
    else:
        secret = PASSPHRASE.encode()
    decrypt = documented_decrypt()
    compressed = io.BytesIO()
    with (tmp_path / "sink" / artifact.key).open("rb") as fh:
        decrypt(fh, compressed, secret)
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(compressed.getvalue())).read()
    assert hashlib.sha256(raw).hexdigest() == artifact.raw_sha256
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        tar.extractall(tmp_path / "plain", filter="data")
    assert same_tree(src, tmp_path / "plain" / src.name)

    from cryptography.exceptions import InvalidTag

    stored = (tmp_path / "sink" / artifact.key).read_bytes()
    with pytest.raises(InvalidTag):
        decrypt(io.BytesIO(truncate_at_chunk_boundary(stored, b"")), io.BytesIO(), secret)


# -- the command line ----------------------------------------------------------------------------


def json_of(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli_keys_generate_and_id(tmp_path: Path, cli: Cli) -> None:
    generated = cli("keys", "generate")
    assert generated.returncode == 0, generated.stderr
    text = generated.stdout.strip()
    key = Key.parse(text, origin="test")
    assert key.kind == "key" and text.startswith("base64:")
    as_json = json_of(cli("keys", "generate", "--json"))
    assert Key.parse(as_json["key"], origin="t").id == as_json["key_id"]

    cli.env[KEY_ENV] = text
    shown = cli("keys", "id")
    assert shown.returncode == 0 and shown.stdout.split()[0] == key.id
    assert text.removeprefix("base64:") not in shown.stdout

    other = Key.generate()
    keys = tmp_path / "keys"
    keys.write_text(other.encode() + "\n")
    keys.chmod(0o600)
    listed = json_of(cli("keys", "id", "--key-file", keys, "--json"))["keys"]
    assert [(k["key_id"], k["writes"]) for k in listed] == [(other.id, True), (key.id, False)]

    del cli.env[KEY_ENV]
    cli.error_line(cli("keys", "id"), "no encryption key is configured")


def test_cli_encrypted_backup_restore_verify(tmp_path: Path, src: Path, cli: Cli, key: Key) -> None:
    sink, out = tmp_path / "sink", tmp_path / "out"
    cli.env[KEY_ENV] = key.encode()
    backup = json_of(cli("backup", "--source", src, "--sink", sink, "--encrypt", "--json"))
    artifact = next(a for a in backup["artifacts"] if a["name"] == "files")
    assert artifact["key"].endswith(".tar.zst.bkenc")
    assert artifact["transforms"][-1] == {
        "id": "aes",
        "params": {"key_id": key.id, "chunk_size": 65536, "scrypt_log_n": 17},
    }
    verified = json_of(cli("verify", "--sink", sink, "--json"))
    assert verified["ok"] and all("note" not in a for a in verified["artifacts"])
    json_of(cli("restore", "latest", "--sink", sink, "--to", out, "--json"))
    assert same_tree(src, restored_tree(out, src))

    del cli.env[KEY_ENV]
    cli.error_line(cli("restore", "latest", "--sink", sink, "--to", tmp_path / "o2"), key.id)
    assert not (tmp_path / "o2").exists()
    keyless = json_of(cli("verify", "--sink", sink, "--json"))
    assert keyless["ok"] and all(key.id in a["note"] for a in keyless["artifacts"])
    text = cli("verify", "--sink", sink)
    assert "stored checksum only" in text.stdout and "AEAD" in text.stdout

    keys = tmp_path / "keys"
    keys.write_text(f"{Key.generate().encode()}\n{key.encode()}\n")
    keys.chmod(0o600)
    json_of(
        cli(
            "restore",
            "latest",
            "--sink",
            sink,
            "--to",
            tmp_path / "o3",
            "--key-file",
            keys,
            "--json",
        )
    )
    assert same_tree(src, restored_tree(tmp_path / "o3", src))

    cli.env[KEY_ENV] = Key.generate().encode()
    cli.error_line(cli("restore", "latest", "--sink", sink, "--to", tmp_path / "o4"), key.id)


def test_cli_encrypt_errors_are_one_line(tmp_path: Path, src: Path, cli: Cli) -> None:
    sink = tmp_path / "sink"
    result = cli("backup", "--source", src, "--sink", sink, "--encrypt")
    cli.error_line(result, "no encryption key is configured", KEY_ENV)
    assert result.returncode == 2
    assert not list(sink.glob(MANIFEST_GLOB)) if sink.exists() else True
    cli.env[KEY_ENV] = "short"
    cli.error_line(
        cli("backup", "--source", src, "--sink", sink, "--encrypt"), KEY_ENV, "12 characters"
    )
    del cli.env[KEY_ENV]
    (tmp_path / "backupkit.toml").write_text(
        f'[sets.app]\nsink = "{sink}"\n'
        f'[[sets.app.sources]]\ntype = "filesystem"\npaths = ["{src}"]\n'
    )
    cli.error_line(cli("backup", "--encrypt"), "--encrypt", "encrypt = true")
    cli.error_line(cli("list", "--key-file", tmp_path / "nope"), "does not exist")


def test_cli_backup_encryption_env_with_a_config_file(
    tmp_path: Path, src: Path, cli: Cli, key: Key
) -> None:
    sink = tmp_path / "sink"
    (tmp_path / "backupkit.toml").write_text(
        f'[sets.app]\nsink = "{sink}"\n[[sets.app.sources]]\ntype = "filesystem"\n'
        f'name = "files"\npaths = ["{src}"]\n'
    )
    cli.env.update({"BACKUP_ENCRYPTION": "true", KEY_ENV: key.encode()})
    backup = json_of(cli("backup", "--json"))
    assert [t["id"] for t in backup["artifacts"][0]["transforms"]] == ["zstd", "aes"]
    json_of(cli("restore", "latest", "--to", tmp_path / "out", "--json"))
    assert same_tree(src, restored_tree(tmp_path / "out", src))


# -- secrets never leak ---------------------------------------------------------------------------


def leak_forms(key: Key, passphrase: str) -> list[bytes]:
    raw = base64.b64decode(key.encode().removeprefix("base64:"))
    b64 = base64.b64encode(raw)
    return [
        raw,
        b64,
        b64.rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        raw.hex().encode(),
        passphrase.encode(),
        base64.b64encode(passphrase.encode()).rstrip(b"="),
        passphrase.encode().hex().encode(),
    ]


def assert_no_leak(where: str, data: bytes | str, forms: list[bytes]) -> None:
    blob = data.encode() if isinstance(data, str) else data
    for form in forms:
        assert form not in blob, f"a secret ({len(form)} bytes) leaked into {where}"


def test_keys_and_passphrases_appear_nowhere(
    tmp_path: Path, src: Path, cli: Cli, key: Key, caplog: pytest.LogCaptureFixture
) -> None:
    forms = leak_forms(key, PASSPHRASE)
    key_sink, phrase_sink = tmp_path / "sink-key", tmp_path / "sink-phrase"
    outputs: list[tuple[str, str]] = []

    def run(*args: Any) -> Any:
        result = cli(*args)
        outputs.append((" ".join(map(str, args)) + " stdout", result.stdout))
        outputs.append((" ".join(map(str, args)) + " stderr", result.stderr))
        return result

    (tmp_path / "phrase.toml").write_text(
        f'[sets.phrase]\nsink = "{phrase_sink}"\n'
        'transforms = ["zstd", { type = "aes", scrypt_log_n = 10 }]\nencrypt_manifest = true\n'
        f'[[sets.phrase.sources]]\ntype = "filesystem"\npaths = ["{src}"]\n'
    )
    # A key, then a passphrase, through every command with --json, and failures.
    for secret, sink, backup_args in (
        (key.encode(), key_sink, ("backup", "--source", src, "--sink", key_sink, "--encrypt")),
        (f"passphrase:{PASSPHRASE}", phrase_sink, ("backup", "--config", tmp_path / "phrase.toml")),
    ):
        cli.env[KEY_ENV] = secret
        assert run(*backup_args, "--json").returncode == 0
        assert run(*backup_args, "--reason", "second").returncode == 0
        for command in ("list", "status", "verify"):
            assert run(command, "--sink", sink, "--json").returncode == 0
        assert (
            run(
                "restore", "latest", "--sink", sink, "--to", tmp_path / f"o-{sink.name}", "--json"
            ).returncode
            == 0
        )
        assert run("keys", "id", "--json").returncode == 0
        cli.env[KEY_ENV] = Key.generate().encode()  # the wrong key: error messages
        assert run("restore", "latest", "--sink", sink, "--to", tmp_path / "never").returncode != 0
        run("verify", "--sink", sink, "--json")  # without the key: stored checksums only
        run("list", "--sink", sink, "--json")  # sealed manifests: reported as problems
        del cli.env[KEY_ENV]
    for victim in key_sink.rglob("*.tar.zst.bkenc"):
        victim.write_bytes(flip(victim.read_bytes(), 200, 0x10))
    cli.env[KEY_ENV] = key.encode()
    assert run("verify", "--sink", key_sink, "--json").returncode != 0
    assert run("restore", "latest", "--sink", key_sink, "--to", tmp_path / "never2").returncode != 0
    cli.env[KEY_ENV] = "passphrase:" + PASSPHRASE[:5]  # too short: the error must not echo it
    assert run("list", "--sink", key_sink, "--json").returncode != 0

    # In process: exception texts, log records, reprs.
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        engine = engine_for(key_sink, src, key.encode())
        texts += [repr(engine), repr(engine.keyring), str(engine.config)]
        for attempt in (
            lambda: engine.restore("latest", to=tmp_path / "never3"),
            lambda: engine_for(key_sink, src, Key.generate().encode()).restore(
                "latest", to=tmp_path / "n4"
            ),
            lambda: engine_for(key_sink, src, "tiny").backup(),
            lambda: engine_for(key_sink, src, "base64:" + PASSPHRASE).backup(),
        ):
            with pytest.raises(BackupkitError) as info:  # refused, not crashed
                attempt()
            texts.append(f"{info.value!s} {info.value!r}")
        texts += [str(c) for c in engine.verify().checks]
        phrase_engine = engine_for(phrase_sink, src, f"passphrase:{PASSPHRASE}")
        texts += [
            repr(phrase_engine),
            repr(phrase_engine.parts.transforms(phrase_engine.config.sets["app"].transforms, "x")),
        ]
    texts.append(caplog.text)

    checked_files = 0
    for sink in (key_sink, phrase_sink):
        for path in sink.rglob("*"):
            if path.is_file():
                assert_no_leak(str(path), path.read_bytes(), forms)
                checked_files += 1
    assert checked_files >= 8 and list(key_sink.rglob("logs/*.log"))
    for where, text in outputs:
        assert_no_leak(where, text, forms)
    for text in texts:
        assert_no_leak("an exception, log or repr", text, forms)
    assert any(key.id in text for _, text in outputs)  # the id, by contrast, is shown
    assert Keyring([key]).ids() == [key.id]


def test_incremental_backup_of_an_encrypted_set_reads_its_encrypted_parent(
    tmp_path: Path, src: Path, key: Key
) -> None:
    engine = engine_for(tmp_path / "sink", src, key.encode())
    full = engine.backup()
    (src / "sub" / "new.txt").write_text("added after the full backup\n")
    (src / "empty").unlink()
    incremental = engine.backup(kind="incremental")
    assert incremental.kind == "incremental" and incremental.parent_id == full.id
    assert all(a.key.endswith(".bkenc") for a in incremental.artifacts)
    engine.restore(incremental.id, to=tmp_path / "out")
    assert same_tree(src, restored_tree(tmp_path / "out", src))


# -- sealed manifests ------------------------------------------------------------------------------

def test_encrypt_manifest_leaves_only_format_and_key_id_in_the_clear(
    tmp_path: Path, src: Path, key: Key
) -> None:
    sink = tmp_path / "sink"
    engine = engine_for(sink, src, key.encode(), encrypt_manifest=True)
    manifest = engine.backup()
    (path,) = sink.glob(MANIFEST_GLOB)
    envelope = json.loads(path.read_bytes())
    assert set(envelope) == {"sealed_manifest", "key_id", "body"}
    assert envelope["sealed_manifest"] == 1 and envelope["key_id"] == key.id
    for clear in (str(src), "random.bin", "raw_sha256", "filesystem", f'"{manifest.hostname}"'):
        assert clear.encode() not in path.read_bytes()

    assert engine.catalog().get(manifest.id) == manifest
    engine.restore("latest", to=tmp_path / "out")
    assert same_tree(src, restored_tree(tmp_path / "out", src))
    assert engine.verify().ok

    keyless = engine_for(sink, src, None).catalog()
    assert len(keyless) == 0
    (problem,) = keyless.problems
    assert key.id in problem.message and str(path) in problem.message

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # a base64 character of the body
    path.write_bytes(bytes(data))
    (problem,) = engine.catalog().problems
    assert str(path) in problem.message and "manifest" in problem.message


def test_encrypt_manifest_needs_encryption(tmp_path: Path, src: Path) -> None:
    with pytest.raises(ConfigError, match="'encrypt_manifest' needs encryption"):
        engine_for(tmp_path / "sink", src, None, transforms=["zstd"], encrypt_manifest=True)


# -- key material in the wrong place -------------------------------------------------------------


def test_key_given_where_a_key_file_or_key_id_is_expected_is_never_echoed(
    tmp_path: Path, src: Path, cli: Cli, key: Key
) -> None:
    secret = key.encode().removeprefix("base64:")
    cli.env["BACKUP_ENCRYPTION_KEY_FILE"] = key.encode()
    result = cli("keys", "id")
    cli.error_line(result, "BACKUP_ENCRYPTION_KEY_FILE holds a key, not a file name", KEY_ENV)
    del cli.env["BACKUP_ENCRYPTION_KEY_FILE"]
    results = [result, cli("keys", "id", "--key-file", secret)]
    cli.error_line(results[-1], "holds a key, not a file name", KEY_ENV)
    results.append(cli("keys", "id", "--key-file", PASSPHRASE))
    cli.error_line(results[-1], "looks like a key or passphrase (not shown)")

    toml = tmp_path / "backupkit.toml"
    sets = (
        f'[sets.app]\nsink = "{tmp_path / "sink"}"\n'
        f'[[sets.app.sources]]\ntype = "filesystem"\npaths = ["{src}"]\n'
    )
    toml.write_text(f'key_file = "{key.encode()}"\n{sets}')
    results.append(cli("backup"))
    cli.error_line(results[-1], "holds a key, not a file name", KEY_ENV)
    toml.write_text(f'{sets}[[sets.app.transforms]]\ntype = "aes"\nkey_id = "{key.encode()}"\n')
    cli.env[KEY_ENV] = key.encode()
    results.append(cli("backup"))
    cli.error_line(results[-1], "this looks like a key itself", "backupkit keys id")
    for result in results:
        assert secret not in result.stderr and secret[:12] not in result.stderr
        assert "nobody" not in result.stderr


def test_relative_key_file_in_a_config_file_works_from_any_working_directory(
    tmp_path: Path, src: Path, cli: Cli, key: Key
) -> None:
    cfgdir = tmp_path / "cfgdir"
    cfgdir.mkdir()
    (cfgdir / "keys").write_text(key.encode() + "\n")
    (cfgdir / "keys").chmod(0o600)
    toml = cfgdir / "backupkit.toml"
    toml.write_text(
        f'key_file = "keys"\n[sets.app]\nsink = "{tmp_path / "sink"}"\nencrypt = true\n'
        f'[[sets.app.sources]]\ntype = "filesystem"\npaths = ["{src}"]\n'
    )
    backup = json_of(cli("backup", "--config", toml, "--json", cwd=Path("/")))
    assert backup["artifacts"][-1]["transforms"][-1]["params"]["key_id"] == key.id
    restored = cli("restore", "latest", "--config", toml, "--to", tmp_path / "out", cwd=Path("/"))
    assert restored.returncode == 0, restored.stderr
    assert same_tree(src, restored_tree(tmp_path / "out", src))

    (cfgdir / "keys").unlink()
    line = cli.error_line(
        cli("restore", "latest", "--config", toml, "--to", tmp_path / "o2", cwd=Path("/")),
        f"key file {cfgdir / 'keys'} does not exist",
    )
    assert "the backups were made with" in line and "keys generate" in line
