"""The s3 sink against a real S3 HTTP endpoint (moto's server mode on 127.0.0.1).

Failures are injected with botocore event hooks on the sink's own client: the
requests still go over HTTP to the server, only the ones a test drops or answers
with 503 never arrive.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ConnectionClosedError, NoCredentialsError
from hypothesis import given
from hypothesis import strategies as st

from backupkit import Engine, RetentionPolicy
from backupkit.core.manifest import MANIFEST_SUFFIX
from backupkit.errors import ConfigError, NotFoundError, SinkError
from backupkit.sinks.s3 import S3Sink, part_size_for, translate_error
from backupkit.sinks.s3 import writer as s3_module
from backupkit.testing.s3server import S3Server, s3, s3_server  # noqa: F401

pytestmark = pytest.mark.integration

MiB = 1 << 20
BUCKET = "backups"


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Any:
        yield self.body


def slow_down(request: Any) -> AWSResponse:
    """A 503 SlowDown answer, as S3 gives under load."""
    body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    return AWSResponse(request.url, 503, {"Content-Type": "application/xml"}, _Raw(body))


def access_denied(request: Any) -> AWSResponse:
    body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    return AWSResponse(request.url, 403, {"Content-Type": "application/xml"}, _Raw(body))


def precondition_failed(request: Any) -> AWSResponse:
    body = b"<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>"  # noqa: E501
    return AWSResponse(request.url, 412, {"Content-Type": "application/xml"}, _Raw(body))


def no_such_upload(request: Any) -> AWSResponse:
    body = b"<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>"
    return AWSResponse(request.url, 404, {"Content-Type": "application/xml"}, _Raw(body))


class Hooks:
    """botocore event handlers installed on every client an S3Sink makes."""

    def __init__(self) -> None:
        self.handlers: list[tuple[str, Callable[..., Any]]] = []
        self.lock = threading.Lock()

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        self.handlers.append((event, handler))

    def count(self, event: str) -> dict[str, int]:
        """Count requests of *event* (``before-send.s3.UploadPart``) as they are sent."""
        seen = {"n": 0}

        def counter(**kwargs: Any) -> None:
            with self.lock:
                seen["n"] += 1

        self.on(event, counter)
        return seen

    def fail(self, event: str, answer: Callable[[Any], Any], *, times: int = 1_000_000,
             after: int = 0) -> dict[str, int]:
        """Let *after* requests through, then answer the next *times* with *answer*."""
        seen = {"n": 0, "failed": 0}

        def handler(request: Any, **kwargs: Any) -> Any:
            with self.lock:
                seen["n"] += 1
                if seen["n"] <= after or seen["failed"] >= times:
                    return None
                seen["failed"] += 1
            return answer(request)

        self.on(event, handler)
        return seen


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Hooks:
    hooks = Hooks()
    made = S3Sink.client

    def client(self: S3Sink) -> Any:
        c = made.fget(self)  # type: ignore[attr-defined]
        if not self._cache.get("hooked"):
            for event, handler in hooks.handlers:
                c.meta.events.register(event, handler)
            self._cache["hooked"] = True
        return c

    monkeypatch.setattr(S3Sink, "client", property(client))
    return hooks


@pytest.fixture
def bucket(s3: S3Server) -> Any:  # noqa: F811
    s3.create_bucket(BUCKET)
    return s3.client()


def config(src: Path, **sink: Any) -> dict[str, Any]:
    return {
        "hostname": "prod-server",
        "sets": {
            "app": {
                "sources": [{"type": "filesystem", "name": "files", "paths": [str(src)]}],
                "compress": sink.pop("compress", "zstd"),
                "sink": {"type": "s3", "bucket": BUCKET, "prefix": "app", **sink},
            }
        },
    }


def small_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n" * 1000)
    (root / "sub" / "b.bin").write_bytes(os.urandom(50_000))
    return root


def one_file_tree(root: Path, size: int) -> Path:
    """*root* holding ``data.bin``: *size* random (incompressible) bytes."""
    root.mkdir(parents=True)
    (root / "data.bin").write_bytes(os.urandom(size))
    return root


def keys(client: Any, prefix: str = "") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))


def uploads(client: Any) -> list[Any]:
    return list(client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and text, text
    assert "testing" not in text  # the fake secret key never shows
    return text


# -- streaming multipart upload ------------------------------------------------------------
def test_50mb_artifact_is_uploaded_in_8mib_parts_and_restores(
    tmp_path: Path, bucket: Any, hooks: Hooks
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    payload = os.urandom(50 * 1000 * 1000)  # incompressible: ~50 MB stored
    (src / "big.bin").write_bytes(payload)
    parts = hooks.count("before-send.s3.UploadPart")
    in_flight = {"now": 0, "max": 0}

    def started(**kwargs: Any) -> None:
        with hooks.lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])

    def finished(**kwargs: Any) -> None:
        with hooks.lock:
            in_flight["now"] -= 1

    hooks.on("before-call.s3.UploadPart", started)
    hooks.on("after-call.s3.UploadPart", finished)
    engine = Engine.from_config(config(src, compress="none", part_size=8 * MiB, concurrency=3))

    manifest = engine.backup("app")

    artifact = manifest.artifacts[0]
    assert artifact.stored_size > 50_000_000
    assert parts["n"] == -(-artifact.stored_size // (8 * MiB)) == 6
    assert 1 <= in_flight["max"] <= 3
    head = bucket.head_object(Bucket=BUCKET, Key=f"app/{artifact.key}")
    assert head["ETag"].endswith('-6"')  # a multipart object of 6 parts
    checked = bucket.head_object(Bucket=BUCKET, Key=f"app/{artifact.key}", ChecksumMode="ENABLED")
    assert checked["ChecksumCRC32"]  # S3 checked a CRC32 of every part (composite checksum)
    assert head["ContentLength"] == artifact.stored_size
    assert uploads(bucket) == []

    restored = tmp_path / "restored"
    engine.restore("latest", to=restored)
    assert (restored / "src" / "big.bin").read_bytes() == payload


def test_part_size_doubles_every_thousand_parts_so_big_artifacts_fit(
    tmp_path: Path, bucket: Any, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every 2 parts instead of 1,000, so 5 parts show two doublings: 5, 5, 10, 10, 20 MiB.
    monkeypatch.setattr(s3_module, "PARTS_PER_SIZE", 2)
    src = tmp_path / "src"
    src.mkdir()
    payload = os.urandom(48 * MiB)
    (src / "big.bin").write_bytes(payload)
    sizes: dict[int, int] = {}

    def sent(params: dict[str, Any], **kwargs: Any) -> None:
        with hooks.lock:
            sizes[params["PartNumber"]] = len(params["Body"])

    hooks.on("before-parameter-build.s3.UploadPart", sent)
    engine = Engine.from_config(config(src, compress="none", part_size=5 * MiB, concurrency=2))

    manifest = engine.backup("app")

    stored = manifest.artifacts[0].stored_size
    assert [sizes[n] for n in sorted(sizes)] == [5 * MiB, 5 * MiB, 10 * MiB, 10 * MiB, stored - 30 * MiB]
    head = bucket.head_object(Bucket=BUCKET, Key=f"app/{manifest.artifacts[0].key}")
    assert head["ETag"].endswith('-5"') and head["ContentLength"] == stored
    engine.restore("latest", to=tmp_path / "restored")
    assert (tmp_path / "restored" / "src" / "big.bin").read_bytes() == payload


def test_fewer_parts_are_in_flight_as_parts_grow_so_memory_stays_capped(
    tmp_path: Path, bucket: Any, hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parts of 5, 5, 10, 10, 20 MiB with concurrency 2: at most 10 MiB in flight, so two
    # parts of 5 MiB at once, then one at a time.
    monkeypatch.setattr(s3_module, "PARTS_PER_SIZE", 2)
    src = one_file_tree(tmp_path / "src", 48 * MiB)
    started = {n: threading.Event() for n in range(1, 7)}
    in_flight: list[int] = []
    seen: dict[int, int] = {}  # part size -> most parts of that size in flight at once

    def part_starts(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        number, size = params["PartNumber"], len(params["Body"])
        context["part"] = number
        with hooks.lock:
            in_flight.append(number)
            seen[size] = max(seen.get(size, 0), len(in_flight))
        started[number].set()
        if number == 1:  # part 2 may start alongside, and must: wait for it (a hang guard)
            started[2].wait(timeout=60)
        elif number == 3:  # part 4 must not start alongside: give it a chance to, wrongly
            started[4].wait(timeout=2)

    def part_ends(context: dict[str, Any], **kwargs: Any) -> None:
        with hooks.lock:
            in_flight.remove(context["part"])

    hooks.on("before-parameter-build.s3.UploadPart", part_starts)
    hooks.on("after-call.s3.UploadPart", part_ends)
    engine = Engine.from_config(config(src, compress="none", part_size=5 * MiB, concurrency=2))

    engine.backup("app")

    assert sorted(seen.items())[:2] == [(5 * MiB, 2), (10 * MiB, 1)]
    assert len(seen) == 3 and max(seen.values()) == 2


def test_artifact_needing_more_parts_than_s3_allows_fails_cleanly(
    tmp_path: Path, bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "MAX_PARTS", 3)  # S3's 10,000, scaled down
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(21 * MiB))  # 5 parts of 5 MiB
    engine = Engine.from_config(config(src, compress="none", part_size=5 * MiB))

    with pytest.raises(SinkError) as caught:
        engine.backup("app")

    message = one_line(caught.value)
    assert "3 parts an S3 multipart upload allows" in message and "'part_size'" in message
    assert not [k for k in keys(bucket) if k.endswith(MANIFEST_SUFFIX)]
    assert uploads(bucket) == []


@given(first=st.integers(5 * MiB, 5 * 1024 * MiB), number=st.integers(1, 10_000))
def test_part_sizes_stay_within_s3_limits_and_only_grow(first: int, number: int) -> None:
    size = part_size_for(number, first)
    assert 5 * MiB <= size <= 5 * 1024 * MiB
    assert part_size_for(number, first) >= part_size_for(max(1, number - 1), first)
    if number <= 1_000:
        assert size == first  # an artifact under 1,000 parts uses the configured size only


@given(first=st.integers(5 * MiB, 5 * 1024 * MiB))
def test_ten_thousand_parts_hold_s3s_largest_object_from_5_13_mib_up(first: int) -> None:
    capacity = sum(part_size_for(n, first) for n in range(1, 10_001))
    if first >= 5.13 * MiB:  # what docs/s3.md promises
        assert capacity >= 5 * (1 << 40)
    elif first < 5.12 * MiB:
        assert capacity < 5 * (1 << 40)


@pytest.mark.parametrize("checksums", [True, False])
def test_checksums_can_be_turned_off_for_stores_that_refuse_them(
    tmp_path: Path, bucket: Any, hooks: Hooks, checksums: bool
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(12 * MiB))  # parts, and small objects after them
    sent: list[tuple[str, bool]] = []

    def record(request: Any, event_name: str, **kwargs: Any) -> None:
        headers = {k.lower() for k in request.headers}
        with hooks.lock:
            sent.append((event_name.rsplit(".", 1)[-1], any("checksum" in h for h in headers)))

    hooks.on("before-send.s3", record)
    engine = Engine.from_config(
        config(src, compress="none", part_size=5 * MiB, checksums=checksums)
    )
    manifest = engine.backup("app")

    writes = [(op, has) for op, has in sent if op in ("UploadPart", "PutObject")]
    assert {op for op, _ in writes} == {"UploadPart", "PutObject"}
    assert all(has == checksums for _, has in writes), writes
    engine.restore("latest", to=tmp_path / "out")  # the manifest's sha256 still checks every byte
    assert (tmp_path / "out/src/big.bin").read_bytes() == (src / "big.bin").read_bytes()
    assert manifest.artifacts[0].stored_size > 12 * MiB


def test_storage_class_and_encryption_per_object_kind(tmp_path: Path, bucket: Any) -> None:
    engine = Engine.from_config(config(small_tree(tmp_path / "src")))
    manifest = engine.backup("app")
    data = bucket.head_object(Bucket=BUCKET, Key=f"app/{manifest.artifacts[0].key}")
    assert data["StorageClass"] == "STANDARD_IA"
    assert data["ServerSideEncryption"] == "AES256"
    manifest_key = next(k for k in keys(bucket) if k.endswith(MANIFEST_SUFFIX))
    meta = bucket.head_object(Bucket=BUCKET, Key=manifest_key)
    assert meta.get("StorageClass", "STANDARD") == "STANDARD"  # S3 omits it for STANDARD
    assert meta["ServerSideEncryption"] == "AES256"
    acl = bucket.get_object_acl(Bucket=BUCKET, Key=manifest_key)
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]  # private: owner only


def test_sse_kms_with_key_id(tmp_path: Path, bucket: Any) -> None:
    key_id = "arn:aws:kms:us-east-1:123456789012:key/backups"
    engine = Engine.from_config(config(small_tree(tmp_path / "src"), sse="aws:kms", kms_key_id=key_id))
    manifest = engine.backup("app")
    head = bucket.head_object(Bucket=BUCKET, Key=f"app/{manifest.artifacts[0].key}")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == key_id


def test_tiered_layout_is_prefix_hostname_tier(tmp_path: Path, bucket: Any) -> None:
    manifest = Engine.from_config(config(small_tree(tmp_path / "src"))).backup("app")
    stem = f"app_full_{manifest.id}"
    stored = [f"app/{a.key}" for a in manifest.artifacts]
    assert manifest.tier == "monthly"  # the first full backup of its month
    assert f"app/prod-server/monthly/{stem}.files.tar.zst" in stored
    assert keys(bucket) == sorted([
        *stored,
        f"app/prod-server/monthly/{stem}{MANIFEST_SUFFIX}",
        f"app/logs/prod-server/{stem}.log",
    ])


def test_flat_layout_matches_seed_000(tmp_path: Path, bucket: Any) -> None:
    at = dt.datetime(2025, 10, 26, 0, 0, tzinfo=dt.UTC)
    engine = Engine.from_config(
        config(small_tree(tmp_path / "src"), compress="gzip", layout="flat"), clock=lambda: at
    )
    manifest = engine.backup("app", reason="auto")
    stamp = "2025-10-26T00-00-00"
    assert f"backups/{stamp}-auto-backup-{stamp}.files.tar.gz" in [a.key for a in manifest.artifacts]
    assert keys(bucket, "app/backups/") == sorted([
        *(f"app/{a.key}" for a in manifest.artifacts),
        f"app/backups/{stamp}-auto-backup-{stamp}{MANIFEST_SUFFIX}",
    ])
    assert [m.id for m in engine.catalog()] == [manifest.id]
    second = engine.backup("app", reason="before ../../migrate")  # free text, safe key
    assert second.artifacts[0].key.startswith(f"backups/{stamp}-before-..-..-migrate-backup-")


def test_listing_pages_past_1000_keys_and_deletes_in_batches_of_1000(
    bucket: Any, hooks: Hooks
) -> None:
    deletes = hooks.count("before-send.s3.DeleteObjects")
    sink = S3Sink(bucket=BUCKET, prefix="many")
    names = [f"host/daily/set_full_{i:05d}{MANIFEST_SUFFIX}" for i in range(1001)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: bucket.put_object(Bucket=BUCKET, Key=f"many/{k}", Body=b"{}"), names))

    assert sorted(sink.list_manifest_keys()) == names  # two pages: 1000 + 1

    sink.delete(names)
    assert deletes["n"] == 2  # 1000 + 1
    assert keys(bucket) == []


def test_prune_on_s3_deletes_in_batches_and_takes_the_logs_along(tmp_path: Path, bucket: Any, hooks: Hooks) -> None:
    deletes = hooks.count("before-send.s3.DeleteObjects")
    clock = iter(dt.datetime(2025, 1, day, 2, tzinfo=dt.UTC) for day in (1, 2, 3, 4))
    engine = Engine.from_config(config(small_tree(tmp_path / "src")), clock=lambda: next(clock))
    old = engine.backup("app")
    new = engine.backup("app")

    engine.prune("app", policy=RetentionPolicy(keep_last=1), dry_run=False)

    assert [m.id for m in engine.catalog()] == [new.id]
    left = keys(bucket)
    assert not [k for k in left if old.id in k]
    assert [k for k in left if k.startswith("app/logs/prod-server/")] == [
        f"app/logs/prod-server/app_full_{new.id}.log"
    ]
    assert 1 <= deletes["n"] <= 3  # manifest first, then its artifacts in one batch, then its log


# -- failures ------------------------------------------------------------------------------
def test_connection_dropped_mid_upload_leaves_no_manifest_and_no_parts(
    tmp_path: Path, bucket: Any, hooks: Hooks
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(30 * MiB))

    def drop(request: Any) -> Any:
        raise ConnectionClosedError(endpoint_url=request.url)

    injected = hooks.fail("before-send.s3.UploadPart", drop, after=2)
    engine = Engine.from_config(config(src, compress="none", part_size=5 * MiB, max_attempts=2))

    with pytest.raises(SinkError) as caught:
        engine.backup("app")

    assert injected["failed"] >= 2  # each dropped part was retried once
    message = one_line(caught.value)
    assert "cannot reach S3" in message and "after 2 attempts" in message
    assert [k for k in keys(bucket) if not k.endswith(".log")] == []
    assert uploads(bucket) == []
    assert len(engine.catalog()) == 0


def test_abort_sends_abort_multipart_upload_before_waiting_for_parts_in_flight(
    bucket: Any, hooks: Hooks
) -> None:
    part_in_flight, abort_seen = threading.Event(), threading.Event()
    seen_while_in_flight = []

    def slow_part(**kwargs: Any) -> None:
        part_in_flight.set()
        seen_while_in_flight.append(abort_seen.wait(timeout=5))  # held until Abort is sent

    hooks.on("before-send.s3.UploadPart", slow_part)
    hooks.on("before-send.s3.AbortMultipartUpload", lambda **kwargs: abort_seen.set())
    aborts = hooks.count("before-send.s3.AbortMultipartUpload")
    # moto answers a part of an aborted upload with a 500 (S3: 404 NoSuchUpload): no retries
    sink = S3Sink(bucket=BUCKET, prefix="app", part_size=5 * MiB, concurrency=1, max_attempts=1)
    writer = sink.open_artifact("host/daily/x.tar", run_id="r")
    writer.write(os.urandom(6 * MiB))  # part 1 in flight, 1 MiB buffered
    assert part_in_flight.wait(timeout=5)

    writer.abort()

    assert seen_while_in_flight and all(seen_while_in_flight)  # every send came after Abort
    assert aborts["n"] == 2  # at once, and again once the part in flight had ended
    assert uploads(bucket) == []
    assert keys(bucket) == []


def complete_then_answer(
    bucket: Any, hooks: Hooks, first_attempt: Callable[[dict[str, Any]], Any],
    retry_answer: Callable[[Any], AWSResponse],
) -> None:
    """CompleteMultipartUpload's first attempt is *first_attempt* (its answer lost on the
    way back), and the client sees *retry_answer*, what S3 answers botocore's retry.

    moto 5.2.5 cannot show this by itself: it answers a repeated Complete with 200
    (verified 2026-11-30), and its composite CRC32 lacks S3's "-<parts>" suffix.
    """
    captured: dict[str, Any] = {}
    hooks.on("before-parameter-build.s3.CompleteMultipartUpload",
             lambda params, **kwargs: captured.update(params))

    def lost(request: Any) -> AWSResponse:
        first_attempt(captured)
        return retry_answer(request)

    hooks.fail("before-send.s3.CompleteMultipartUpload", lost, times=1)


@pytest.mark.parametrize("retry_answer", [precondition_failed, no_such_upload])
def test_a_retried_complete_whose_first_attempt_succeeded_keeps_the_backup(
    tmp_path: Path, bucket: Any, hooks: Hooks, retry_answer: Callable[[Any], AWSResponse]
) -> None:
    src = one_file_tree(tmp_path / "src", 12 * MiB)  # 3 parts
    complete_then_answer(
        bucket, hooks, lambda params: bucket.complete_multipart_upload(**params), retry_answer
    )
    heads = hooks.count("before-send.s3.HeadObject")
    engine = Engine.from_config(config(src, compress="none", part_size=5 * MiB))

    manifest = engine.backup("app")

    assert heads["n"] == 1  # the stored object checked: size, 3 parts, composite CRC32
    assert [m.id for m in engine.catalog()] == [manifest.id]
    assert engine.verify("latest").ok
    assert uploads(bucket) == []


def store_a_lookalike(bucket: Any, params: dict[str, Any]) -> None:
    """Another upload to the key with the same part sizes (so the same size and ETag
    suffix) but other bytes: only the composite CRC32 tells it apart."""
    sizes = [p["Size"] for p in bucket.list_parts(
        Bucket=BUCKET, Key=params["Key"], UploadId=params["UploadId"])["Parts"]]
    upload = bucket.create_multipart_upload(Bucket=BUCKET, Key=params["Key"], ChecksumAlgorithm="CRC32")
    parts = []
    for number, size in enumerate(sizes, 1):
        part = bucket.upload_part(Bucket=BUCKET, Key=params["Key"], UploadId=upload["UploadId"],
                                  PartNumber=number, Body=os.urandom(size), ChecksumAlgorithm="CRC32")
        parts.append({"PartNumber": number, "ETag": part["ETag"], "ChecksumCRC32": part["ChecksumCRC32"]})
    bucket.complete_multipart_upload(Bucket=BUCKET, Key=params["Key"], UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": parts})


@pytest.mark.parametrize("other", ["smaller", "same size and parts"])
def test_a_complete_refused_because_another_object_took_the_key_still_fails(
    tmp_path: Path, bucket: Any, hooks: Hooks, other: str
) -> None:
    src = one_file_tree(tmp_path / "src", 12 * MiB)

    def first_attempt(params: dict[str, Any]) -> None:
        if other == "smaller":
            bucket.put_object(Bucket=BUCKET, Key=params["Key"], Body=b"not ours")
        else:
            store_a_lookalike(bucket, params)

    complete_then_answer(bucket, hooks, first_attempt, precondition_failed)
    engine = Engine.from_config(config(src, compress="none", part_size=5 * MiB))

    with pytest.raises(SinkError) as caught:
        engine.backup("app")

    assert "already exists; refusing to overwrite a stored backup" in one_line(caught.value)
    assert uploads(bucket) == []
    assert len(engine.catalog()) == 0


@pytest.mark.parametrize("failure", ["503 SlowDown", "connection reset"])
def test_retries_recover_from_transient_failures(
    tmp_path: Path, bucket: Any, hooks: Hooks, failure: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    payload = os.urandom(12 * MiB)
    (src / "data.bin").write_bytes(payload)

    def reset(request: Any) -> Any:
        raise ConnectionClosedError(endpoint_url=request.url)

    answer = slow_down if failure == "503 SlowDown" else reset
    part_failures = hooks.fail("before-send.s3.UploadPart", answer, times=2)
    put_failures = hooks.fail("before-send.s3.PutObject", answer, times=1)
    engine = Engine.from_config(config(src, compress="none", part_size=5 * MiB, max_attempts=4))

    manifest = engine.backup("app")

    assert part_failures["failed"] == 2 and put_failures["failed"] == 1
    assert [m.id for m in engine.catalog()] == [manifest.id]
    assert engine.verify("latest").ok
    assert uploads(bucket) == []


def test_persistent_slowdown_ends_in_a_clear_error(tmp_path: Path, bucket: Any, hooks: Hooks) -> None:
    hooks.fail("before-send.s3.PutObject", slow_down)
    tries: dict[str, int] = {}

    def count(request: Any, **kwargs: Any) -> None:
        with hooks.lock:
            tries[request.url] = tries.get(request.url, 0) + 1

    hooks.on("before-send.s3.PutObject", count)
    engine = Engine.from_config(config(small_tree(tmp_path / "src"), max_attempts=2))
    with pytest.raises(SinkError) as caught:
        engine.backup("app")
    message = one_line(caught.value)
    assert "SlowDown" in message and "after 2 attempts" in message and "try again later" in message
    assert tries and set(tries.values()) == {2}  # max_attempts counts the first try, as said


def test_access_denied_on_put_names_the_permission(tmp_path: Path, bucket: Any, hooks: Hooks) -> None:
    hooks.fail("before-send.s3.PutObject", access_denied)
    engine = Engine.from_config(config(small_tree(tmp_path / "src")))
    with pytest.raises(SinkError) as caught:
        engine.backup("app")
    message = one_line(caught.value)
    assert message.startswith("access denied: s3:PutObject on s3://backups/app/")
    assert "grant s3:PutObject on arn:aws:s3:::backups/app/*" in message
    assert "SSE-KMS" in message  # the other common cause, named
    assert keys(bucket) == []


def test_missing_bucket_is_a_config_error(tmp_path: Path, s3: S3Server) -> None:  # noqa: F811
    engine = Engine.from_config(config(small_tree(tmp_path / "src")))
    with pytest.raises(ConfigError) as caught:
        engine.backup("app")
    assert one_line(caught.value) == (
        "S3 bucket 'backups' does not exist; create it or fix the bucket name "
        "(bucket, AWS_S3_BUCKET_NAME or BACKUP_S3_BUCKET)"
    )


def test_no_credentials_is_a_config_error(
    tmp_path: Path, bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    engine = Engine.from_config(config(small_tree(tmp_path / "src")))
    with pytest.raises(ConfigError, match="^no AWS credentials for s3://backups/app; set AWS_ACCESS"):
        engine.backup("app")


def test_bucket_comes_from_the_seed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_S3_BUCKET_NAME", raising=False)
    monkeypatch.setenv("BACKUP_S3_BUCKET", "from-002")
    assert S3Sink().bucket == "from-002"
    monkeypatch.setenv("AWS_S3_BUCKET_NAME", "from-000")
    assert S3Sink().bucket == "from-000"
    monkeypatch.delenv("AWS_S3_BUCKET_NAME")
    monkeypatch.delenv("BACKUP_S3_BUCKET")
    with pytest.raises(ConfigError, match="AWS_S3_BUCKET_NAME or BACKUP_S3_BUCKET"):
        S3Sink.from_params({})


def test_an_endpoint_without_scheme_is_a_config_error_that_shows_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError) as caught:
        S3Sink.from_params({"bucket": "b", "endpoint_url": "minio:9000"})
    assert one_line(caught.value) == (
        "sink 's3': endpoint_url 'minio:9000' has no scheme; write it as 'http://minio:9000' "
        "(or https://)"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", "minio:9000")
    with pytest.raises(ConfigError) as caught:
        next(S3Sink(bucket="b").list_manifest_keys())
    message = one_line(caught.value)
    assert message.startswith("cannot use the S3 endpoint for s3://b (Invalid endpoint: minio:9000)")
    assert "e.g. http://minio:9000" in message


def test_secrets_never_reach_describe_or_repr() -> None:
    sink = S3Sink.from_params(
        {"bucket": "b", "access_key_id": "AKIAEXAMPLE", "secret_access_key": "SeCrEt"}
    )
    for text in (repr(sink), str(sink.describe()), sink.location):
        assert "SeCrEt" not in text and "AKIAEXAMPLE" not in text


@pytest.mark.parametrize(
    ("code", "status", "message", "permission", "expected"),
    [
        ("AccessDenied", 403, "User: x is not authorized to perform: kms:GenerateDataKey",
         "s3:PutObject", "KMS refused"),
        ("InvalidArgument", 400, "Server Side Encryption with AWS KMS is required",
         "s3:PutObject", 'set sse = "aws:kms"'),
        ("InvalidAccessKeyId", 403, "The key does not exist", "s3:PutObject",
         "AWS rejected the credentials"),
        ("PreconditionFailed", 412, "If-None-Match", "s3:PutObject", "already exists"),
        ("NoSuchKey", 404, "gone", "s3:GetObject", "does not exist"),
    ],
)
def test_errors_are_translated_into_one_line_that_says_what_to_do(
    code: str, status: int, message: str, permission: str, expected: str
) -> None:
    exc = ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )
    error = translate_error(exc, S3Sink(bucket="b", prefix="p"), permission, "k")
    assert expected in one_line(error)
    assert isinstance(translate_error(NoCredentialsError(), S3Sink(bucket="b"), "s3:GetObject"),
                      ConfigError)


# -- reading ----------------------------------------------------------------------------------
class Dropping:
    """A response body whose connection drops on read number *at* (once)."""

    def __init__(self, body: Any, at: int) -> None:
        self.body, self.reads, self.at = body, 0, at

    def read(self, size: int | None = None) -> bytes:
        self.reads += 1
        if self.reads == self.at:
            raise ConnectionResetError("connection reset by peer")
        return bytes(self.body.read(size))

    def close(self) -> None:
        self.body.close()


def test_reads_resume_after_the_connection_drops(bucket: Any) -> None:
    sink = S3Sink(bucket=BUCKET)
    data = os.urandom(3 * MiB)
    bucket.put_object(Bucket=BUCKET, Key="obj", Body=data)

    with sink.open_read("obj") as fh:
        fh._body = Dropping(fh._body, at=3)  # type: ignore[attr-defined]
        got = b"".join(iter(lambda: fh.read(256 * 1024), b""))
    assert got == data


def test_a_connection_dropped_after_the_last_byte_is_the_end_of_the_object(bucket: Any) -> None:
    sink = S3Sink(bucket=BUCKET)
    data = os.urandom(MiB)
    bucket.put_object(Bucket=BUCKET, Key="obj", Body=data)

    with sink.open_read("obj") as fh:
        fh._body = Dropping(fh._body, at=2)  # type: ignore[attr-defined]
        assert fh.read(MiB) == data
        assert fh.read(MiB) == b""


def test_an_object_replaced_while_being_read_is_reported_as_changed(bucket: Any) -> None:
    sink = S3Sink(bucket=BUCKET, prefix="p")
    bucket.put_object(Bucket=BUCKET, Key="p/obj", Body=os.urandom(MiB))

    with sink.open_read("obj") as fh:
        fh._body = Dropping(fh._body, at=2)  # type: ignore[attr-defined]
        fh.read(1000)
        bucket.put_object(Bucket=BUCKET, Key="p/obj", Body=os.urandom(MiB))
        with pytest.raises(SinkError) as caught:
            fh.read(1000)
    assert one_line(caught.value).startswith(
        "s3://backups/p/obj changed while being read (it was replaced); read it again"
    )


def test_missing_object_is_not_found(bucket: Any) -> None:
    with pytest.raises(NotFoundError, match="^s3://backups/nope/x does not exist$"):
        S3Sink(bucket=BUCKET, prefix="nope").get_bytes("x")


def test_begin_run_aborts_stale_multipart_uploads(bucket: Any) -> None:
    bucket.create_multipart_upload(Bucket=BUCKET, Key="app/host/daily/dead-run.tar.zst")
    bucket.create_multipart_upload(Bucket=BUCKET, Key="elsewhere/not-ours")
    sink = S3Sink(bucket=BUCKET, prefix="app")
    assert sink.abort_stale_uploads(older_than=dt.timedelta(0)) == ["app/host/daily/dead-run.tar.zst"]
    assert [u["Key"] for u in uploads(bucket)] == ["elsewhere/not-ours"]


# -- presigned URLs ------------------------------------------------------------------------------
def test_presigned_url_downloads_the_artifact(tmp_path: Path, bucket: Any) -> None:
    engine = Engine.from_config(config(small_tree(tmp_path / "src")))
    manifest = engine.backup("app")
    url = engine.presigned_url(manifest.id[:10], expires=600)
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["600"]
    signed_at = dt.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert abs((now - signed_at).total_seconds()) < 60
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    stored = bucket.get_object(Bucket=BUCKET, Key=f"app/{manifest.artifacts[0].key}")["Body"].read()
    assert body == stored and len(body) == manifest.artifacts[0].stored_size
    # an object URL (seed 002's download-url {"backupPath": "s3://..."}) signs as is
    direct = engine.presigned_url(f"s3://{BUCKET}/app/{manifest.artifacts[0].key}", expires=60)
    with urllib.request.urlopen(direct, timeout=10) as response:
        assert response.read() == stored


def test_presigned_url_is_signed_for_the_buckets_own_region(tmp_path: Path, s3: S3Server) -> None:  # noqa: F811
    s3.client().create_bucket(
        Bucket="eu-backups", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    engine = Engine.from_config(config(small_tree(tmp_path / "src"), bucket="eu-backups"))
    manifest = engine.backup("app")  # the sink's region is us-east-1, from the environment

    url = engine.presigned_url(manifest.id, expires=600)

    # AWS refuses a URL signed for another region than the bucket's; it cannot be redirected.
    credential = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["X-Amz-Credential"][0]
    assert credential.split("/")[2] == "eu-west-1"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert len(response.read()) == manifest.artifacts[0].stored_size


@pytest.mark.xfail(
    strict=True,
    reason="moto 5.2.5 does not check X-Amz-Expires (verified 2026-11-23: 200 after expiry); "
    "real S3 answers 403 'Request has expired'",
)
def test_presigned_url_fails_after_expiry(tmp_path: Path, bucket: Any) -> None:
    engine = Engine.from_config(config(small_tree(tmp_path / "src")))
    engine.backup("app")
    url = engine.presigned_url("latest", expires=1)
    time.sleep(2)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=10).close()
    assert caught.value.code == 403


def test_presign_refuses_bad_expiry_and_ambiguous_artifacts(tmp_path: Path, bucket: Any) -> None:
    cfg = config(small_tree(tmp_path / "src"))
    cfg["sets"]["app"]["sources"].append(
        {"type": "filesystem", "name": "more", "paths": [str(small_tree(tmp_path / "more"))]}
    )
    engine = Engine.from_config(cfg)
    engine.backup("app")
    with pytest.raises(ConfigError, match="has 2 artifacts \\(files, more\\); name one with --artifact"):
        engine.presigned_url("latest")
    with pytest.raises(ConfigError, match="expires must be from 1 to 604800"):
        engine.presigned_url("latest", "files", expires=8 * 24 * 3600)
    assert engine.presigned_url("latest", "more", expires=5).startswith(s3_url := os.environ["AWS_ENDPOINT_URL"])
    assert s3_url.startswith("http://127.0.0.1:")


# -- the command line, as on a fresh machine ----------------------------------------------------
def test_cli_round_trip_with_an_s3_url(
    tmp_path: Path, bucket: Any, s3: S3Server, cli: Any  # noqa: F811
) -> None:
    cli.env.update(s3.env())
    src = small_tree(tmp_path / "src")
    sink = f"s3://{BUCKET}/cli"

    done = cli("backup", "--source", src, "--sink", sink, "--json")
    assert done.returncode == 0, done.stderr
    listed = cli("list", "--sink", sink)
    assert listed.returncode == 0 and "default" in listed.stdout
    status = cli("status", "--sink", sink)
    assert status.returncode == 0 and sink in status.stdout

    out = tmp_path / "by-latest"
    restored = cli("restore", "latest", "--sink", sink, "--to", out)
    assert restored.returncode == 0, restored.stderr
    assert (out / "src" / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()

    manifest_key = next(k for k in keys(bucket, "cli/") if k.endswith(MANIFEST_SUFFIX))
    out2 = tmp_path / "by-url"
    by_url = cli("restore", f"s3://{BUCKET}/{manifest_key}", "--to", out2)  # no --sink, no config
    assert by_url.returncode == 0, by_url.stderr
    assert (out2 / "src" / "a.txt").read_text() == (src / "a.txt").read_text()

    verified = cli("verify", f"s3://{BUCKET}/{manifest_key}")
    assert verified.returncode == 0, verified.stderr
    url = cli("url", "latest", "--sink", sink, "--expires", "120")
    assert url.returncode == 0 and "X-Amz-Expires=120" in url.stdout


def test_cli_errors_for_missing_bucket_and_credentials_are_one_line(
    tmp_path: Path, s3: S3Server, cli: Any  # noqa: F811
) -> None:
    cli.env.update(s3.env())
    src = small_tree(tmp_path / "src")
    missing = cli("backup", "--source", src, "--sink", "s3://no-such-bucket/p")
    assert missing.returncode == 2
    cli.error_line(missing, "'no-such-bucket' does not exist", "create it")

    del cli.env["AWS_ACCESS_KEY_ID"], cli.env["AWS_SECRET_ACCESS_KEY"]
    anonymous = cli("list", "--sink", "s3://no-such-bucket/p")
    assert anonymous.returncode == 2
    cli.error_line(anonymous, "no AWS credentials", "AWS_ACCESS_KEY_ID")
