"""The contract every transform keeps, as a pytest suite to subclass.

A transform author writes one class::

    from backupkit.testing.transform_suite import TransformConformance

    class TestMyTransform(TransformConformance):
        @pytest.fixture
        def transform(self):
            return MyTransform(level=3)

(a transform that needs keys also provides a ``keyring`` fixture and returns the
transform with it) and gets every test below: a well-formed id, stage and extension,
``describe()`` as JSON without secrets that rebuilds a transform reading the same
bytes, round trips of empty, tiny, odd-sized and large streams written and read in
odd pieces, output that leaves the encoder while input goes in (bounded memory),
``close`` that leaves the wrapped writer open, and damaged or cut-short input refused
with an error of backupkit's own instead of wrong bytes.
"""

from __future__ import annotations

import io
import os
import random
import re
from typing import Any, ClassVar

import pytest

from backupkit.errors import BackupkitError
from backupkit.plugin import STAGE_ORDER, KeyedTransform, Transform
from backupkit.testing.checks import ID_PATTERN, assert_describe_hides_secrets


class _Out:
    """A writer that must never be closed by the encoder it is given to."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.closed = False

    def write(self, data: bytes, /) -> int:
        assert not self.closed
        self.buf += data
        return len(data)

    def close(self) -> None:  # pragma: no cover - the test fails if it is called
        self.closed = True


def _pieces(data: bytes, rng: random.Random, largest: int) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        n = rng.randint(1, largest)
        out.append(data[at : at + n])
        at += n
    return out


class TransformConformance:
    """Subclass it and provide a ``transform`` fixture (with its keys, if it needs any)."""

    #: Whether the format tells a stream cut short from a complete one (zstd read across
    #: frames does not: the engine's checksums of the stored bytes catch that).
    detects_truncation: ClassVar[bool] = True
    #: The size of the "large" inputs: several chunks or blocks of most transforms.
    large_size: ClassVar[int] = 3 * (1 << 20) + 17
    #: At most how many bytes of input the encoder keeps before their output leaves it
    #: (a compressor's jobs in flight, for one that compresses in worker threads).
    holds_back: ClassVar[int] = 0

    @pytest.fixture
    def transform(self) -> Transform:
        raise NotImplementedError("subclasses provide a 'transform' fixture")

    @pytest.fixture
    def keyring(self) -> Any:
        """The keyring a keyed transform was given (override for keyed transforms)."""
        return None

    # -- helpers ------------------------------------------------------------------------
    def encode(self, transform: Transform, data: bytes, *, seed: int = 0, largest: int = 70_001) -> bytes:
        """*data* through *transform*'s encoder, written in random pieces."""
        out = _Out()
        encoder = transform.encoder(out)
        for piece in _pieces(data, random.Random(seed), largest):
            encoder.write(piece)
        encoder.close()
        assert not out.closed, "Encoder.close closed the writer it was given"
        return bytes(out.buf)

    def decode(self, transform: Transform, data: bytes, *, seed: int = 0, largest: int = 70_001) -> bytes:
        """*data* through *transform*'s decoder, read in random sizes (and ``-1`` at the end)."""
        reader = transform.decoder(io.BytesIO(data))
        rng, parts = random.Random(seed), []
        while True:
            chunk = reader.read(rng.randint(1, largest))
            if not chunk:
                break
            parts.append(chunk)
        parts.append(reader.read())
        return b"".join(parts)

    @staticmethod
    def sample(size: int, seed: int = 1) -> bytes:
        """Half text-like (compressible), half random bytes."""
        rng = random.Random(seed)
        words = [b"backup", b"restore", b"manifest", b"\x00\x01", b"sink", b"\n"]
        text = b" ".join(rng.choice(words) for _ in range(size // 10 + 1))[: size // 2]
        return text + rng.randbytes(size - len(text))

    # -- identity -----------------------------------------------------------------------
    def test_the_transform_has_a_well_formed_id_stage_and_extension(self, transform: Transform) -> None:
        assert ID_PATTERN.match(transform.id), f"id {transform.id!r}: lower case, digits, - or _"
        assert transform.stage in STAGE_ORDER, transform.stage
        assert transform.extension == "" or re.match(r"\.[a-z0-9]+\Z", transform.extension)

    def test_describe_is_json_without_secrets_and_rebuilds_a_reader_of_the_same_bytes(
        self, transform: Transform, keyring: Any
    ) -> None:
        described = assert_describe_hides_secrets(transform)
        rebuilt = type(transform).from_params(described)
        if isinstance(rebuilt, KeyedTransform):
            assert keyring is not None, "a keyed transform's test provides a 'keyring' fixture"
            rebuilt = rebuilt.with_keyring(keyring)
        data = self.sample(100_000)
        assert self.decode(rebuilt, self.encode(transform, data)) == data

    # -- round trips --------------------------------------------------------------------
    @pytest.mark.parametrize("size", [0, 1, 2, 4095, 65_536, 1 << 20, 1 << 20 | 1])
    def test_a_stream_round_trips(self, transform: Transform, size: int) -> None:
        data = self.sample(size, seed=size)
        assert self.decode(transform, self.encode(transform, data, seed=size), seed=size) == data

    def test_a_large_stream_round_trips_in_tiny_and_huge_pieces(self, transform: Transform) -> None:
        data = self.sample(self.large_size)
        encoded = self.encode(transform, data, largest=5_000_000)
        assert self.decode(transform, encoded, largest=5_000_000) == data
        assert self.decode(transform, self.encode(transform, data[:200_000], largest=7), largest=7) == data[:200_000]

    def test_output_leaves_the_encoder_while_input_goes_in(self, transform: Transform) -> None:
        out = _Out()
        encoder = transform.encoder(out)
        data = os.urandom(self.large_size + 2 * self.holds_back)
        for at in range(0, len(data), 1 << 16):
            encoder.write(data[at : at + (1 << 16)])
        before_close = len(out.buf)
        encoder.close()
        # Random bytes do not shrink: an encoder that streams has passed most of them on.
        assert before_close >= len(data) // 2, f"{before_close} of {len(data)} bytes out before close"

    def test_two_encodings_of_the_same_bytes_both_decode(self, transform: Transform) -> None:
        data = self.sample(50_000)
        first, second = self.encode(transform, data), self.encode(transform, data, seed=9)
        assert self.decode(transform, first) == data
        assert self.decode(transform, second) == data

    # -- damage -------------------------------------------------------------------------
    def test_cut_short_input_is_refused(self, transform: Transform) -> None:
        data = self.sample(300_000)
        encoded = self.encode(transform, data)
        for cut in (len(encoded) // 2, len(encoded) - 1):
            if self.detects_truncation:
                with pytest.raises(BackupkitError):
                    self.decode(transform, encoded[:cut])
                continue
            try:
                decoded = self.decode(transform, encoded[:cut])
            except BackupkitError:
                continue
            # At most a prefix of the original (all of it when only a checksum was cut).
            assert data.startswith(decoded), "cut-short input decoded to other bytes"

    def test_damaged_input_is_refused_or_detected(self, transform: Transform) -> None:
        data = self.sample(300_000)
        encoded = bytearray(self.encode(transform, data))
        encoded[len(encoded) // 2] ^= 0x40
        try:
            decoded = self.decode(transform, bytes(encoded))
        except BackupkitError:
            return
        # A compressor without checksums may decode damage into other bytes; the engine's
        # checksums then catch it. It must not return the original as if nothing happened
        # and must not raise anything but backupkit's errors.
        assert decoded != data
