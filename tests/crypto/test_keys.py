"""Keys: how they are written, where they come from, their ids, and that they never print."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest

from backupkit.crypto.keys import KEY_ENV, KEY_FILE_ENV, Key, Keyring, read_key_file
from backupkit.errors import ConfigError, KeyMissingError

RAW = bytes(range(32))
B64 = base64.b64encode(RAW).decode()
PASSPHRASE = "correct horse battery staple"


def forms(raw: bytes) -> list[str]:
    """Every printable form of a secret a leak could take."""
    return [
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
    ]


@pytest.mark.parametrize(
    "text",
    [
        f"base64:{B64}",
        B64,
        B64.rstrip("="),
        base64.urlsafe_b64encode(RAW).decode(),
        f"  base64:{B64}\n",
    ],
)
def test_base64_key_is_read_with_or_without_prefix(text: str) -> None:
    key = Key.parse(text, origin="test")
    assert key.kind == "key"
    assert key == Key("key", RAW)


@pytest.mark.parametrize("text", [f"passphrase:{PASSPHRASE}", PASSPHRASE, "your-encryption-key"])
def test_anything_not_a_base64_key_is_a_passphrase(text: str) -> None:
    key = Key.parse(text, origin="test")
    assert key.kind == "passphrase"
    assert key.encode() == "passphrase:" + text.removeprefix("passphrase:")


def test_passphrase_prefix_keeps_a_base64_looking_value_a_passphrase() -> None:
    assert Key.parse(f"passphrase:{B64}", origin="test").kind == "passphrase"


@pytest.mark.parametrize(
    "text, message",
    [
        ("base64:" + base64.b64encode(b"x" * 16).decode(), "not base64 for a 32-byte key"),
        ("base64:not base64 at all!!", "not base64 for a 32-byte key"),
        ("short", "at least 12 characters"),
        ("passphrase:tiny-secret", "at least 12 characters"),
    ],
)
def test_bad_key_is_a_config_error_that_does_not_echo_it(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Key.parse(text, origin=KEY_ENV)
    assert KEY_ENV in str(info.value)
    secret_part = text.split(":", 1)[-1]
    assert secret_part not in str(info.value)


def test_generated_key_round_trips_through_its_encoding() -> None:
    key = Key.generate()
    text = key.encode()
    assert text.startswith("base64:") and len(text) == len("base64:") + 44
    again = Key.parse(text, origin="test")
    assert again == key and again.id == key.id
    assert Key.generate() != key


def test_key_id_is_16_hex_digits_stable_and_distinct() -> None:
    key = Key("key", RAW)
    assert len(key.id) == 16 and int(key.id, 16) >= 0
    assert key.id == Key("key", RAW).id
    assert key.id != Key("key", bytes(32)).id
    assert key.id not in RAW.hex()


def test_passphrase_key_id_is_stable_and_not_a_plain_hash() -> None:
    import hashlib

    key = Key.parse(PASSPHRASE, origin="test")
    assert key.id == Key.parse(f"passphrase:{PASSPHRASE}", origin="other").id
    assert key.id != Key.parse(PASSPHRASE + "!", origin="test").id
    assert key.id not in hashlib.sha256(PASSPHRASE.encode()).hexdigest()


def test_key_and_keyring_print_ids_only() -> None:
    key = Key("key", RAW, origin=KEY_ENV)
    phrase = Key.parse(PASSPHRASE, origin="key file k line 2")
    ring = Keyring([key, phrase])
    _ = key.id  # a computed id shows up; one not computed yet prints as "?"
    texts = [repr(key), str(key), repr(phrase), repr(ring), str(ring), f"{ring!r} {key}"]
    for text in texts:
        for form in forms(RAW):
            assert form not in text
        assert PASSPHRASE not in text
    assert key.id in repr(key) and key.id in repr(ring)


def test_first_key_writes_and_all_keys_read() -> None:
    old, new = Key("key", RAW), Key.generate()
    ring = Keyring([new, old])
    assert ring.writer is new
    assert ring.get(old.id) is old and ring.get(new.id) is new
    assert ring.ids() == [new.id, old.id]
    assert Keyring([old, new], writer=new).writer is new
    assert len(Keyring([old, Key("key", RAW)])) == 1  # duplicates dropped


def test_missing_key_error_names_the_needed_id_and_the_configured_ones() -> None:
    have, need = Key.generate(), Key.generate()
    with pytest.raises(KeyMissingError) as info:
        Keyring([have]).find(need.id, what="backup X")
    message = str(info.value)
    assert info.value.key_id == need.id
    assert "backup X" in message and need.id in message and have.id in message
    assert "\n" not in message
    with pytest.raises(KeyMissingError, match="configured: none"):
        Keyring().find(need.id, what="backup X")
    with pytest.raises(KeyMissingError, match="no encryption key is configured"):
        Keyring().writing_key(what="set 'app'")


def write_key_file(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def test_key_file_holds_one_key_per_line_with_comments(tmp_path: Path) -> None:
    new, old = Key.generate(), Key("key", RAW)
    path = write_key_file(
        tmp_path / "keys",
        "# rotated 2024-06",
        new.encode(),
        "",
        f"  {B64}  ",
        f"passphrase:{PASSPHRASE}",
    )
    keys = read_key_file(path)
    assert [k.kind for k in keys] == ["key", "key", "passphrase"]
    assert keys[0] == new and keys[1] == old
    assert "line 2" in keys[0].origin and str(path) in keys[0].origin


def test_key_file_problems_are_one_line_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_key_file(tmp_path / "missing")
    empty = write_key_file(tmp_path / "empty", "# nothing here")
    with pytest.raises(ConfigError, match="holds no key"):
        read_key_file(empty)
    bad = write_key_file(tmp_path / "bad", B64, "base64:AAAA")
    with pytest.raises(ConfigError, match="line 2") as info:
        read_key_file(bad)
    assert B64 not in str(info.value)


def test_key_file_readable_by_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_key_file(tmp_path / "keys", B64)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="backupkit"):
        read_key_file(path)
    assert "chmod 600" in caplog.text and B64 not in caplog.text


def test_keyring_from_env_explicit_key_file_writes_then_env_then_env_file(tmp_path: Path) -> None:
    file_key, env_key, env_file_key = Key.generate(), Key.generate(), Key.generate()
    explicit = write_key_file(tmp_path / "explicit", file_key.encode())
    env_file = write_key_file(tmp_path / "env-file", env_file_key.encode())
    env = {KEY_ENV: env_key.encode(), KEY_FILE_ENV: str(env_file)}
    ring = Keyring.from_env(env, key_files=[explicit])
    assert ring.ids() == [file_key.id, env_key.id, env_file_key.id]
    assert ring.writer == file_key
    assert Keyring.from_env(env).writer == env_key
    assert Keyring.from_env({KEY_FILE_ENV: str(env_file)}).writer == env_file_key
    assert not Keyring.from_env({KEY_ENV: "  "})
    assert not Keyring.from_env({})


def test_keyring_from_env_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = Key.generate()
    monkeypatch.setenv(KEY_ENV, key.encode())
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    assert Keyring.from_env().ids() == [key.id]
    assert os.environ[KEY_ENV] == key.encode()


# -- a slightly wrong key is refused, not taken as a new passphrase -----------------------------


def test_byte_order_mark_and_crlf_around_a_key_are_ignored(tmp_path: Path) -> None:
    key = Key("key", RAW)
    assert Key.parse(f"\ufeffbase64:{B64}\r\n", origin="test") == key
    path = tmp_path / "keys"
    path.write_bytes(b"\xef\xbb\xbf" + f"base64:{B64}\r\n".encode())  # Notepad, PowerShell
    path.chmod(0o600)
    assert read_key_file(path) == [key]


def test_comment_after_a_prefixed_key_on_a_key_file_line_is_ignored(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "keys", f"base64:{B64}   # 2024 key", f"base64:{B64}\t#old")
    assert read_key_file(path) == [Key("key", RAW), Key("key", RAW)]


@pytest.mark.parametrize(
    "line", [f"{B64}  # 2024 key", f"passphrase:{PASSPHRASE}  # old one", f"base64:{B64[:40]} # x"]
)
def test_ambiguous_comment_on_a_key_file_line_is_refused(tmp_path: Path, line: str) -> None:
    path = write_key_file(tmp_path / "keys", "# keys", line)
    with pytest.raises(ConfigError, match="line 2") as info:
        read_key_file(path)
    message = str(info.value)
    assert "\n" not in message and B64[:40] not in message and PASSPHRASE not in message


@pytest.mark.parametrize(
    "text",
    [
        B64[:40],  # a paste cut short
        f"base64:{B64}"[:40],  # prefix and all, cut short: still a base64: error
        "0123456789abcdef0123456789abcdef",  # hex, 16 bytes
        f"{B64}   # 2024 key",  # an inline comment
        f"Base64:{B64}",  # a mistyped prefix
        f"passphrase = {PASSPHRASE}",
    ],
)
def test_text_that_looks_like_a_damaged_key_is_refused_not_taken_as_a_passphrase(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        Key.parse(text, origin=KEY_ENV)
    message = str(info.value)
    assert message.startswith(KEY_ENV) and "\n" not in message
    assert "check the key" in message or "not base64 for a 32-byte key" in message
    assert B64[:30] not in message and PASSPHRASE not in message


def test_damaged_key_message_says_how_to_mean_a_passphrase() -> None:
    with pytest.raises(ConfigError, match="write 'passphrase:' in front"):
        Key.parse(B64[:40], origin=KEY_ENV)
    assert Key.parse(f"passphrase:{B64[:40]}", origin=KEY_ENV).kind == "passphrase"


@pytest.mark.parametrize("setting", ["env", "key_files"])
@pytest.mark.parametrize(
    "value, holds_a_key",
    [
        (f"base64:{B64}", True),
        (B64, True),
        (f"passphrase:{PASSPHRASE}", True),
        (PASSPHRASE, False),
        (B64[:40], False),
    ],
)
def test_key_or_passphrase_given_as_a_key_file_is_never_echoed(
    setting: str, value: str, holds_a_key: bool
) -> None:
    env, key_files = ({KEY_FILE_ENV: value}, []) if setting == "env" else ({}, [value])
    with pytest.raises(ConfigError) as info:
        Keyring.from_env(env, key_files=key_files)
    message = str(info.value)
    secret = value.split(":", 1)[-1]
    assert secret not in message and secret[:12] not in message and "\n" not in message
    assert KEY_ENV in message
    assert ("holds a key, not a file name" in message) == holds_a_key
    assert (KEY_FILE_ENV in message) == (setting == "env")


def test_missing_key_file_names_its_absolute_path_and_the_key_backups_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        Keyring.from_env({KEY_FILE_ENV: "keys"})
    message = str(info.value)
    assert f"key file {tmp_path / 'keys'} does not exist" in message
    assert "the backups were made with" in message and "keys generate" in message
