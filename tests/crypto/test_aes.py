"""The ``aes`` transform on its own: round trips, the byte layout, and every tamper case."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backupkit.crypto.keys import Key, Keyring
from backupkit.crypto.sealed import open_manifest, seal_manifest
from backupkit.crypto.stream import HEADER, HEADER_SIZE, MAGIC, TAG_SIZE
from backupkit.errors import ConfigError, IntegrityError, KeyMissingError, ManifestError
from backupkit.params import public_params
from backupkit.plugin import check_chain
from backupkit.testing.damage import flip
from backupkit.transforms.aes import AesTransform
from backupkit.transforms.gzip import GzipTransform
from backupkit.transforms.zstd import ZstdTransform

SMALL = 4096
KEY = Key("key", bytes(range(32)))
RING = Keyring([KEY])


def aes(chunk_size: int = SMALL, keyring: Keyring = RING, **params: object) -> AesTransform:
    transform = AesTransform.from_params({"chunk_size": chunk_size, **params})
    assert isinstance(transform, AesTransform)
    return transform.with_keyring(keyring)


def encrypt(t: AesTransform, data: bytes, piece: int = 1000) -> bytes:
    out = io.BytesIO()
    enc = t.encoder(out)
    for i in range(0, len(data), piece):
        enc.write(data[i : i + piece])
    enc.close()
    assert not out.closed
    return out.getvalue()


def decrypt(t: AesTransform, blob: bytes, read: int = 777) -> bytes:
    dec = t.decoder(io.BytesIO(blob))
    parts = []
    while part := dec.read(read):
        parts.append(part)
    return b"".join(parts)


def split(blob: bytes, chunk_size: int = SMALL) -> tuple[bytes, list[bytes]]:
    sealed = chunk_size + TAG_SIZE
    body = blob[HEADER_SIZE:]
    return blob[:HEADER_SIZE], [body[i : i + sealed] for i in range(0, len(body), sealed)]


def data_of(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize("chunk_size", [SMALL, 1 << 16])
@pytest.mark.parametrize("delta", ["0", "1", "chunk-1", "chunk", "chunk+1", "3chunks"])
def test_round_trip_at_chunk_boundaries(chunk_size: int, delta: str) -> None:
    n = {
        "0": 0,
        "1": 1,
        "chunk-1": chunk_size - 1,
        "chunk": chunk_size,
        "chunk+1": chunk_size + 1,
        "3chunks": 3 * chunk_size,
    }[delta]
    t = aes(chunk_size)
    data = data_of(n)
    blob = encrypt(t, data, piece=max(1, chunk_size // 3))
    chunks = max(1, -(-n // chunk_size))
    assert len(blob) == HEADER_SIZE + n + chunks * TAG_SIZE
    assert decrypt(t, blob) == data
    assert t.decoder(io.BytesIO(blob)).read() == data
    assert t.decoder(io.BytesIO(blob)).read(-1) == data


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=3 * SMALL + 10),
    pieces=st.lists(st.integers(1, 2 * SMALL), min_size=1, max_size=8),
    read=st.integers(1, 3 * SMALL),
)
def test_round_trip_with_any_write_and_read_sizes(
    data: bytes, pieces: list[int], read: int
) -> None:
    t = aes()
    out = io.BytesIO()
    enc = t.encoder(out)
    pos, i = 0, 0
    while pos < len(data):
        step = pieces[i % len(pieces)]
        assert enc.write(data[pos : pos + step]) == len(data[pos : pos + step])
        pos, i = pos + step, i + 1
    enc.close()
    enc.close()  # idempotent
    assert decrypt(t, out.getvalue(), read) == data


class _Trickle(io.RawIOBase):
    """A reader that returns at most a few bytes per call, like a pipe or a network stream."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self.inner.read(min(size, 37) if size >= 0 else 37)


def test_decoder_copes_with_short_reads_from_its_input() -> None:
    t = aes()
    data = data_of(3 * SMALL + 5)
    assert t.decoder(_Trickle(encrypt(t, data))).read() == data


def _stream(total: int, piece: int = 1 << 20) -> Iterator[bytes]:
    rng = random.Random(1)
    block = rng.randbytes(piece)
    for i in range(0, total, piece):
        yield (block[i % 251 :] + block[: i % 251])[: total - i]


@pytest.mark.slow
def test_round_trip_of_100_megabytes_streams(tmp_path: Path) -> None:
    t = aes(1 << 16)
    total = 100 * 1000 * 1000
    want = hashlib.sha256()
    path = tmp_path / "big.bkenc"
    with path.open("wb") as fh:
        enc = t.encoder(fh)
        for piece in _stream(total):
            want.update(piece)
            enc.write(piece)
        enc.close()
    assert path.stat().st_size == HEADER_SIZE + total + -(-total // (1 << 16)) * TAG_SIZE
    got = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        dec = t.decoder(fh)
        while piece := dec.read(1 << 20):
            got.update(piece)
            size += len(piece)
    assert size == total and got.hexdigest() == want.hexdigest()


def test_memory_stays_flat_while_streaming(tmp_path: Path) -> None:
    t = aes(1 << 16)
    path = tmp_path / "mem.bkenc"
    piece = data_of(1 << 20)
    tracemalloc.start()
    try:
        with path.open("wb") as fh:
            enc = t.encoder(fh)
            for _ in range(24):
                enc.write(piece)
            enc.close()
        with path.open("rb") as fh:
            dec = t.decoder(fh)
            while dec.read(1 << 20):
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 6 << 20, f"peak {peak} bytes for a 24 MiB stream"


def test_header_layout_is_as_documented() -> None:
    t = aes()
    blob = encrypt(t, b"hello")
    magic, version, kdf, log_n, r, p, size, key_id, _salt, _prefix = HEADER.unpack(
        blob[:HEADER_SIZE]
    )
    assert HEADER_SIZE == 48 and magic == MAGIC == b"\x89BKENC\r\n"
    assert (version, kdf, log_n, r, p, size) == (1, 1, 0, 0, 0, SMALL)
    assert key_id.hex() == KEY.id
    other = encrypt(t, b"hello")
    assert other[25:48] != blob[25:48], "salt and nonce prefix must be fresh per artifact"
    assert other[HEADER_SIZE:] != blob[HEADER_SIZE:]


def test_passphrase_round_trip_stores_scrypt_parameters(passphrase_ring: Keyring) -> None:
    t = aes(keyring=passphrase_ring, scrypt_log_n=10)
    data = data_of(2 * SMALL + 3)
    blob = encrypt(t, data)
    _, _, kdf, log_n, r, p, *_ = HEADER.unpack(blob[:HEADER_SIZE])
    assert (kdf, log_n, r, p) == (2, 10, 8, 1)
    assert decrypt(t, blob) == data


@pytest.fixture(scope="module")
def passphrase_ring() -> Keyring:
    key = Key.parse("passphrase:a long enough test passphrase", origin="test")
    _ = key.id  # scrypt once per module
    return Keyring([key])


# -- tampering -----------------------------------------------------------------------------


def _blob(n_chunks: int = 4, seed: int = 0) -> bytes:
    return encrypt(aes(), data_of(n_chunks * SMALL - 100, seed))


def truncate_at_chunk_boundary(blob: bytes) -> bytes:
    header, chunks = split(blob)
    return header + b"".join(chunks[:-1])


def truncate_to_first_chunk(blob: bytes) -> bytes:
    header, chunks = split(blob)
    return header + chunks[0]


def truncate_inside_a_chunk(blob: bytes) -> bytes:
    return blob[:-7]


def truncate_to_header(blob: bytes) -> bytes:
    return blob[:HEADER_SIZE]


def truncate_inside_header(blob: bytes) -> bytes:
    return blob[:20]


def truncate_to_nothing(blob: bytes) -> bytes:
    return b""


def extend_with_a_copy_of_a_chunk(blob: bytes) -> bytes:
    return blob + split(blob)[1][1]


def extend_with_one_byte(blob: bytes) -> bytes:
    return blob + b"\0"


def extend_with_a_final_chunk_of_another_artifact(blob: bytes) -> bytes:
    return blob + split(_blob(seed=7))[1][-1]


def reorder_two_chunks(blob: bytes) -> bytes:
    header, c = split(blob)
    return header + c[1] + c[0] + b"".join(c[2:])


def drop_a_middle_chunk(blob: bytes) -> bytes:
    header, c = split(blob)
    return header + c[0] + b"".join(c[2:])


def duplicate_a_chunk(blob: bytes) -> bytes:
    header, c = split(blob)
    return header + c[0] + c[0] + b"".join(c[1:])


def swap_in_a_chunk_of_another_artifact(blob: bytes) -> bytes:
    header, c = split(blob)
    other = split(_blob(seed=0))[1]  # same key, same plaintext, same position
    return header + c[0] + other[1] + b"".join(c[2:])


def swap_in_the_header_of_another_artifact(blob: bytes) -> bytes:
    return split(_blob(seed=0))[0] + blob[HEADER_SIZE:]


def flip_bit_in_first_chunk(blob: bytes) -> bytes:
    return flip(blob, HEADER_SIZE + 5, 0x01)


def flip_bit_in_last_tag(blob: bytes) -> bytes:
    return flip(blob, -1, 0x01)


TAMPERS: list[Callable[[bytes], bytes]] = [
    truncate_at_chunk_boundary,
    truncate_to_first_chunk,
    truncate_inside_a_chunk,
    truncate_to_header,
    truncate_inside_header,
    truncate_to_nothing,
    extend_with_a_copy_of_a_chunk,
    extend_with_one_byte,
    extend_with_a_final_chunk_of_another_artifact,
    reorder_two_chunks,
    drop_a_middle_chunk,
    duplicate_a_chunk,
    swap_in_a_chunk_of_another_artifact,
    swap_in_the_header_of_another_artifact,
    flip_bit_in_first_chunk,
    flip_bit_in_last_tag,
]


@pytest.mark.parametrize("tamper", TAMPERS, ids=[f.__name__ for f in TAMPERS])
def test_tampering_is_detected(tamper: Callable[[bytes], bytes]) -> None:
    blob = _blob()
    assert decrypt(aes(), blob)  # the original is fine
    with pytest.raises(IntegrityError):
        decrypt(aes(), tamper(blob))


@pytest.mark.parametrize("offset", range(HEADER_SIZE))
@pytest.mark.parametrize("bit", [0, 7])
def test_a_flipped_bit_anywhere_in_the_header_is_detected(offset: int, bit: int) -> None:
    with pytest.raises(IntegrityError):
        decrypt(aes(), flip(_blob(2), offset, 1 << bit))


def test_a_flipped_bit_anywhere_in_a_small_stream_is_detected() -> None:
    t = aes()
    blob = encrypt(t, b"0123456789" * 3)
    for offset in range(len(blob)):
        with pytest.raises(IntegrityError):
            decrypt(t, flip(blob, offset, 1 << offset % 8))


def test_no_plaintext_is_returned_from_a_chunk_that_fails() -> None:
    t = aes()
    blob = flip(_blob(), HEADER_SIZE + SMALL + TAG_SIZE + 3, 0x01)  # second chunk
    dec = t.decoder(io.BytesIO(blob))
    assert len(dec.read(SMALL)) == SMALL  # the first chunk is good
    with pytest.raises(IntegrityError, match="chunk 1"):
        dec.read(1)


def test_an_empty_last_chunk_is_refused_even_if_it_authenticates() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from backupkit.crypto.stream import Header

    t = aes()
    blob = encrypt(t, data_of(SMALL))  # exactly one full (last) chunk
    header = Header.unpack(blob[:HEADER_SIZE])
    aead = AESGCM(header.payload_key(KEY))

    def nonce(i: int, last: int) -> bytes:
        return header.nonce_prefix + struct.pack(">I", i) + bytes([last])

    forged = (
        blob[:HEADER_SIZE]
        + aead.encrypt(nonce(0, 0), data_of(SMALL), blob[:HEADER_SIZE])
        + aead.encrypt(nonce(1, 1), b"", blob[:HEADER_SIZE])
    )
    with pytest.raises(IntegrityError, match="empty chunk"):
        decrypt(t, forged)


def test_hostile_scrypt_parameters_are_refused_before_deriving(passphrase_ring: Keyring) -> None:
    t = aes(keyring=passphrase_ring, scrypt_log_n=10)
    blob = bytearray(encrypt(t, b"x"))
    blob[10] = 30  # log2 N = 30, r = 8: 128 GiB of scrypt memory
    with pytest.raises(IntegrityError, match="scrypt parameters"):
        decrypt(t, bytes(blob))


# -- keys --------------------------------------------------------------------------------------


def test_wrong_key_says_which_key_id_is_needed() -> None:
    blob = _blob(1)
    other = Keyring([Key.generate()])
    with pytest.raises(KeyMissingError) as info:
        decrypt(AesTransform(chunk_size=SMALL, keyring=other), blob)
    assert info.value.key_id == KEY.id and KEY.id in str(info.value)
    with pytest.raises(KeyMissingError, match=KEY.id):
        aes(keyring=other, key_id=KEY.id).check_keys("backup X")


def test_header_naming_another_key_than_the_manifest_is_an_integrity_error() -> None:
    blob = _blob(1)
    other = Key.generate()
    t = AesTransform(key_id=other.id, chunk_size=SMALL, keyring=Keyring([KEY, other]))
    with pytest.raises(IntegrityError, match="header names key"):
        decrypt(t, blob)


def test_no_writing_key_is_a_key_missing_error() -> None:
    t = AesTransform().with_keyring(Keyring())
    assert t.key_id is None
    with pytest.raises(KeyMissingError, match="no encryption key is configured"):
        t.check_keys("set 'app'")
    with pytest.raises(KeyMissingError):
        t.encoder(io.BytesIO())


def test_key_id_param_picks_the_writing_key_from_the_keyring() -> None:
    other = Key.generate()
    ring = Keyring([KEY, other])
    t = aes(keyring=ring, key_id=other.id)
    blob = encrypt(t, b"data")
    assert blob[17:25].hex() == other.id
    reader = AesTransform(chunk_size=SMALL, keyring=Keyring([Key.generate(), other]))
    assert decrypt(reader, blob) == b"data"  # any configured key reads
    assert aes(keyring=ring).key_id == KEY.id  # default: the keyring's writer


# -- parameters and secrets --------------------------------------------------------------------


def test_keyring_is_a_secret_field_kept_out_of_describe_and_repr() -> None:
    t = aes()
    assert set(t.describe()) == {"key_id", "chunk_size", "scrypt_log_n"} == set(public_params(t))
    assert t.describe()["key_id"] == KEY.id
    field = attrs.fields(AesTransform).keyring
    assert field.metadata.get("backupkit_secret") and field.repr is False
    text = repr(t) + str(t.describe())
    assert bytes(range(32)).hex() not in text and "keyring" not in text


@pytest.mark.parametrize(
    "params, message",
    [
        ({"chunk_size": 1000}, "chunk_size"),
        ({"chunk_size": 1 << 25}, "chunk_size"),
        ({"key_id": "XYZ"}, "key_id"),
        ({"scrypt_log_n": 40}, "scrypt_log_n"),
        ({"keyring": "my secret key"}, "keyring"),
        ({"key": "my secret key"}, "unknown key 'key'"),
    ],
)
def test_bad_parameters_are_config_errors(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        AesTransform.from_params(params)
    assert "my secret key" not in str(info.value)


def test_order_rule_compress_then_encrypt_is_enforced() -> None:
    check_chain([ZstdTransform(), aes()], where="set 'app'")
    check_chain([aes()], where="set 'app'")
    for chain in ([aes(), ZstdTransform()], [aes(), GzipTransform()]):
        with pytest.raises(ConfigError, match="put compression before encryption"):
            check_chain(chain, where="set 'app'")


@pytest.mark.parametrize(
    "value, looks_like_a_key",
    [
        (KEY.encode(), True),
        (KEY.encode().removeprefix("base64:"), True),
        ("passphrase:correct horse battery staple", True),
        ("9f1c0e8d2b7a4c5", False),  # one digit short: a mistyped id
    ],
)
def test_bad_key_id_never_echoes_the_value_and_spots_a_key_given_as_id(
    value: str, looks_like_a_key: bool
) -> None:
    with pytest.raises(ConfigError, match="not a 16-hex-digit key id") as info:
        AesTransform.from_params({"key_id": value})
    message = str(info.value)
    assert value.split(":", 1)[-1][:12] not in message and "\n" not in message
    assert ("looks like a key itself" in message) == looks_like_a_key
    assert "backupkit keys id" in message


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """The (log2 N, r, p) of every scrypt derivation backupkit makes from now on."""
    import backupkit.crypto.keys as keys_module

    made: list[tuple[int, int, int]] = []
    real = keys_module.scrypt

    def counting(secret: bytes, salt: bytes, log_n: int, r: int, p: int) -> bytes:
        made.append((log_n, r, p))
        return real(secret, salt, log_n, r, p)

    monkeypatch.setattr(keys_module, "scrypt", counting)
    return made


@pytest.mark.parametrize("offset, value", [(10, 20), (11, 9), (12, 2)])  # log2 N, r, p
def test_scrypt_parameters_unlike_the_manifests_are_refused_before_deriving(
    passphrase_ring: Keyring, offset: int, value: int, derivations: list[tuple[int, int, int]]
) -> None:
    t = aes(keyring=passphrase_ring, scrypt_log_n=10)
    blob = bytearray(encrypt(t, b"x"))
    derivations.clear()
    blob[offset] = value  # within the 1 GiB cap, so only the manifest can tell
    with pytest.raises(IntegrityError, match="but the manifest records") as info:
        decrypt(t, bytes(blob))
    tampered = [10, 8, 1]
    tampered[offset - 10] = value
    assert tuple(tampered) not in derivations  # refused before any key was derived with them
    assert "\n" not in str(info.value)


def test_sealed_manifest_with_other_scrypt_parameters_is_refused_before_deriving(
    passphrase_ring: Keyring, derivations: list[tuple[int, int, int]]
) -> None:
    (key,) = passphrase_ring
    envelope = json.loads(seal_manifest(b'{"id": "x"}', key))
    body = bytearray(base64.b64decode(envelope["body"]))
    body[10] = 20  # log2 N: 1 GiB of scrypt, within the cap
    envelope["body"] = base64.b64encode(bytes(body)).decode()
    derivations.clear()
    with pytest.raises(ManifestError, match="but the manifest records"):
        open_manifest(json.dumps(envelope).encode(), passphrase_ring, origin="m.json")
    assert (20, 8, 1) not in derivations
