"""The ``s3`` sink: backups in an S3 bucket or an S3-compatible store, on boto3.

Layouts (keys under ``<prefix>/``)::

    tiered (default, seed 002)   <hostname>/<tier>/<set>_<kind>_<id>.<artifact><ext>
                                 <hostname>/<tier>/<set>_<kind>_<id>.manifest.json
                                 logs/<hostname>/<set>_<kind>_<id>.log
    flat (seed 000)              backups/<timestamp>-<reason>-backup-<timestamp>.<artifact><ext>
                                 backups/<timestamp>-<reason>-backup-<timestamp>.manifest.json
                                 logs/<set>_<kind>_<id>.log

An artifact streams into a multipart upload of parts of ``part_size`` bytes,
uploaded by a small thread pool with no local temporary copy: at most
``concurrency`` parts in flight, so memory stays near ``(concurrency + 1) *
part_size``. S3 allows 10,000 parts per upload and the artifact's size is not
known in advance, so the part size doubles every 1,000 parts
(:func:`part_size_for`): with the default 8 MiB, parts stay 8 MiB up to 7.8 GiB,
and 10,000 parts hold 7.8 TiB, more than S3's 5 TiB object limit. As parts grow,
fewer are in flight, at most ``concurrency * part_size`` bytes' worth (at least
one part), so memory is that plus the part being filled: 48 MiB at 16 MiB parts,
then two parts once one fills the cap (128 MiB for a 100 GiB artifact, defaults).

Nothing is visible until CompleteMultipartUpload; ``abort`` calls
AbortMultipartUpload, so no parts are left billing. Each part carries a CRC32 that
S3 checks (the upload's composite checksum, as boto3's transfer manager does). An
artifact smaller than one part is stored with a single PutObject. Every write is
conditional (``If-None-Match: *``): a stored backup is never overwritten.

Artifacts get ``storage_class`` (STANDARD_IA), manifests and run logs
``manifest_storage_class`` (STANDARD: they are small and read often). Objects are
private, encrypted with ``sse`` (``AES256`` or ``aws:kms`` with ``kms_key_id``).

Credentials come from the standard AWS chain (environment, profile, instance
role); the bucket from ``bucket``, else ``AWS_S3_BUCKET_NAME`` or
``BACKUP_S3_BUCKET``; the region from ``region``, else ``AWS_REGION``. boto3 also
honours ``AWS_ENDPOINT_URL``. botocore errors are translated here, at the
boundary, into one-line :mod:`backupkit.errors` that say what to do.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import logging
import os
import re
import socket
import threading
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, cast

import attrs

from backupkit.errors import BackupkitError, ConfigError, NotFoundError, SinkError
from backupkit.params import check_range, secret
from backupkit.plugin import ArtifactWriter, Register, Sink, hookimpl

if TYPE_CHECKING:
    from backupkit.plugin.run import RunInfo

log = logging.getLogger("backupkit.s3")

MiB = 1 << 20
LAYOUTS = ("tiered", "flat")
MAX_PARTS = 10_000  # S3's limit for one multipart upload
MAX_PART_SIZE = 5 * 1024 * MiB  # S3's limit for one part
PARTS_PER_SIZE = 1_000  # parts uploaded at one size before it doubles


def part_size_for(number: int, first: int) -> int:
    """The size of part *number* (from 1) of an upload whose first parts are *first*
    bytes: doubled every :data:`PARTS_PER_SIZE` parts, at most S3's 5 GiB. An artifact's
    size is not known until its end, and this lets the 10,000 parts S3 allows hold
    ``first * 1000 * 1023`` bytes (7.8 TiB for 8 MiB) while a small artifact's memory
    stays at *first*-sized parts."""
    return min(first << ((number - 1) // PARTS_PER_SIZE), MAX_PART_SIZE)
SSE_CHOICES = ("AES256", "aws:kms", "none")
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's limit
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
STALE_UPLOAD_AGE = dt.timedelta(days=2)
_RESUME_ATTEMPTS = 3
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")  # a reason is free text; keys get a safe form
_OVERLOADED = {
    "SlowDown", "ServiceUnavailable", "503", "InternalError", "500", "RequestTimeout",
    "RequestTimeTooSkewed", "Throttling", "ThrottlingException", "RequestLimitExceeded",
}
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "InvalidClientTokenId", "AuthorizationHeaderMalformed",
}


def _env_bucket() -> str:
    return os.environ.get("AWS_S3_BUCKET_NAME") or os.environ.get("BACKUP_S3_BUCKET") or ""


def _env_region() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def _check_bucket(inst: object, attribute: object, value: str) -> None:
    if not value:
        raise ConfigError(
            "sink 's3' has no bucket; use s3://BUCKET/PREFIX, set bucket = \"NAME\", "
            "or set AWS_S3_BUCKET_NAME or BACKUP_S3_BUCKET"
        )
    if "/" in value or value != value.strip():
        raise ConfigError(f"sink 's3': {value!r} is not a bucket name; put the path in 'prefix'")


def _check_endpoint(inst: object, attribute: object, value: str | None) -> None:
    if value is not None and "://" not in value:
        raise ConfigError(
            f"sink 's3': endpoint_url {value!r} has no scheme; write it as 'http://{value}' "
            "(or https://)"
        )


def _strip_slashes(value: object) -> str:
    return str(value).strip("/")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _import_boto() -> tuple[Any, Any, Any]:
    try:
        import boto3  # type: ignore[import-untyped]
        import botocore.config  # type: ignore[import-untyped]
        import botocore.exceptions  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "the s3 sink needs boto3; install it with: pip install 'backupkit[s3]'"
        ) from None
    return boto3, botocore.config.Config, botocore.exceptions


@functools.cache
def _boto_errors() -> tuple[type[BaseException], ...]:
    """What botocore raises: translated by :func:`translate_error`; anything else is a bug."""
    _, _, exceptions = _import_boto()
    return (exceptions.BotoCoreError, exceptions.ClientError)


@attrs.frozen
class S3Sink(Sink):
    """Backups in an S3 bucket, under an optional key prefix."""

    id: ClassVar[str] = "s3"

    bucket: str = attrs.field(factory=_env_bucket, validator=_check_bucket)
    prefix: str = attrs.field(default="", converter=_strip_slashes)
    layout: str = attrs.field(default="tiered", validator=attrs.validators.in_(LAYOUTS))
    region: str | None = attrs.field(factory=_env_region)
    endpoint_url: str | None = attrs.field(default=None, validator=_check_endpoint)
    profile: str | None = None
    storage_class: str = "STANDARD_IA"
    manifest_storage_class: str = "STANDARD"
    sse: str = attrs.field(default="AES256", validator=attrs.validators.in_(SSE_CHOICES))
    kms_key_id: str | None = None
    part_size: int = attrs.field(default=8 * MiB, validator=check_range(5 * MiB, 5 * 1024 * MiB))
    concurrency: int = attrs.field(default=4, validator=check_range(1, 64))
    max_attempts: int = attrs.field(default=5, validator=check_range(1, 20))
    #: CRC32 checksums on uploads, which S3 checks; off for S3-compatible stores that
    #: refuse them (the stored sha256 in the manifest still checks every byte on restore).
    checksums: bool = True
    access_key_id: str | None = secret(default=None)
    secret_access_key: str | None = secret(default=None)
    session_token: str | None = secret(default=None)
    _cache: dict[str, Any] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.kms_key_id and self.sse != "aws:kms":
            raise ConfigError("sink 's3': kms_key_id needs sse = \"aws:kms\"")

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    # -- boto3 ------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The boto3 S3 client (thread-safe; made on first use)."""
        return self._client_for(self.region)

    def _client_for(self, region: str | None) -> Any:
        """A client for *region* (None: the AWS configuration's), made once."""
        name = f"client:{region}"
        with self._lock:
            if name not in self._cache:
                boto3, Config, exceptions = _import_boto()
                try:
                    session = boto3.session.Session(
                        profile_name=self.profile,
                        aws_access_key_id=self.access_key_id,
                        aws_secret_access_key=self.secret_access_key,
                        aws_session_token=self.session_token,
                        region_name=region,
                    )
                except exceptions.ProfileNotFound:
                    raise ConfigError(
                        f"AWS profile {self.profile!r} does not exist; fix 'profile' or ~/.aws/config"
                    ) from None
                config = Config(
                    retries={"mode": "standard", "total_max_attempts": self.max_attempts},  # retries included
                    # an artifact and its sidecar may upload at once, each with its parts
                    max_pool_connections=max(10, 2 * self.concurrency + 2),
                    signature_version="s3v4",
                    # without checksums, none at all: botocore would add its own CRC32
                    request_checksum_calculation="when_supported" if self.checksums else "when_required",
                    connect_timeout=10,
                    read_timeout=120,
                )
                try:
                    self._cache[name] = session.client(
                        "s3", endpoint_url=self.endpoint_url, config=config
                    )
                except ValueError as exc:  # "Invalid endpoint: minio:9000" from AWS_ENDPOINT_URL
                    raise ConfigError(
                        f"cannot use the S3 endpoint for {self.location} ({_one_line(exc)}); set "
                        "endpoint_url or AWS_ENDPOINT_URL to a full URL, e.g. http://minio:9000"
                    ) from None
            return self._cache[name]

    def _object_key(self, key: str) -> str:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts):
            raise SinkError(f"invalid key {key!r} for sink {self.location}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _url(self, key: str | None) -> str:
        return f"{self.location}/{key}" if key else self.location

    def _write_args(self, storage_class: str) -> dict[str, Any]:
        args: dict[str, Any] = {"StorageClass": storage_class}
        if self.sse != "none":
            args["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args

    def _error(self, exc: BaseException, permission: str, key: str | None = None) -> BackupkitError:
        """Translate a botocore exception into a one-line backupkit error."""
        return translate_error(exc, self, permission, key)

    # -- run lifecycle ------------------------------------------------------------------
    def begin_run(self, run_id: str) -> None:
        """Fail fast on a missing bucket or credentials; abort stale multipart uploads."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except _boto_errors() as exc:
            if _status(exc) != 403:  # a write-only identity may not list: go on
                raise self._error(exc, "s3:ListBucket") from None
        self.abort_stale_uploads()

    def abort_stale_uploads(self, older_than: dt.timedelta = STALE_UPLOAD_AGE) -> list[str]:
        """Abort multipart uploads under the prefix left by runs that died (kill -9).

        Best effort: without s3:ListBucketMultipartUploads nothing is done. A bucket
        lifecycle rule (AbortIncompleteMultipartUpload) is the belt to these braces.
        """
        root = f"{self.prefix}/" if self.prefix else ""
        cutoff = dt.datetime.now(dt.UTC) - older_than
        aborted = []
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root):
                for upload in page.get("Uploads", ()):
                    if upload["Initiated"] < cutoff:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted.append(upload["Key"])
        except Exception as exc:  # cleanup must never fail a backup
            log.debug("could not collect stale multipart uploads in %s: %s", self.location, exc)
        if aborted:
            log.info("aborted %d stale multipart upload(s) in %s", len(aborted), self.location)
        return aborted

    # -- layout -------------------------------------------------------------------------
    def key_for(self, tier: str, filename: str, *, run: RunInfo | None = None) -> str:
        if self.layout == "flat":
            if run is None:
                return f"backups/{filename}"
            stamp = run.started_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H-%M-%S")
            rest = filename.partition(run.run_id)[2] or f".{filename}"
            reason = _UNSAFE.sub("-", run.reason) or "manual"
            return f"backups/{stamp}-{reason}-backup-{stamp}{rest}"
        return f"{_host(run)}/{tier}/{filename}"

    def log_key(self, filename: str, *, run: RunInfo | None = None) -> str:
        if self.layout == "flat":
            return f"logs/{filename}"
        return f"logs/{_host(run)}/{filename}"  # under logs/: prune never takes logs for orphans

    # -- primitives -------------------------------------------------------------------
    def open_artifact(self, key: str, *, run_id: str) -> ArtifactWriter:
        return _MultipartWriter(self, key, self._object_key(key), self._write_args(self.storage_class))

    def put_bytes(self, key: str, data: bytes, *, run_id: str) -> None:
        self._put_object(key, data, self._write_args(self.manifest_storage_class))

    def _put_object(self, key: str, data: bytes, args: dict[str, Any]) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._object_key(key), Body=data, IfNoneMatch="*", **args
            )
        except _boto_errors() as exc:
            if _status(exc) == 412 and self._holds(key, data):
                return  # a retried PUT whose first attempt had succeeded
            raise self._error(exc, "s3:PutObject", key) from None

    def _holds(self, key: str, data: bytes) -> bool:
        try:
            return self.get_bytes(key) == data
        except BackupkitError:
            return False

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as fh:
            return fh.read()

    def open_read(self, key: str) -> BinaryIO:
        return cast(BinaryIO, _ObjectReader(self, key))

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root + prefix):
                for obj in page.get("Contents", ()):
                    yield obj["Key"][len(root):]
        except _boto_errors() as exc:
            raise self._error(exc, "s3:ListBucket") from None

    def delete(self, keys: Iterable[str]) -> None:
        """Delete in batches of up to 1000 keys (DeleteObjects); missing keys are fine."""
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, keys: list[str]) -> None:
        objects = [{"Key": self._object_key(k)} for k in keys]
        try:
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )
        except _boto_errors() as exc:
            raise self._error(exc, "s3:DeleteObject") from None
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            code, message = first.get("Code", "?"), _one_line(first.get("Message", ""))
            hint = "; grant s3:DeleteObject to this identity" if code == "AccessDenied" else ""
            raise SinkError(
                f"could not delete {len(errors)} of {len(keys)} objects in {self.location}, "
                f"e.g. {first.get('Key')}: {code} {message}{hint}"
            )

    # -- extras -------------------------------------------------------------------------
    def presign(self, key: str, *, expires: int = 3600) -> str:
        """A SigV4 GET URL for *key* that expires after *expires* seconds (at most 7 days)."""
        if not isinstance(expires, int) or not 1 <= expires <= MAX_PRESIGN_SECONDS:
            raise ConfigError(
                f"expires must be from 1 to {MAX_PRESIGN_SECONDS} seconds (7 days), got {expires!r}"
            )
        client = self.client
        region = self._bucket_region()
        if region is not None and region != client.meta.region_name:
            # Other requests follow S3's redirect to the bucket's region; a URL cannot, and
            # one signed for the wrong region is refused (AuthorizationQueryParametersError).
            client = self._client_for(region)
        try:
            url: str = client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._object_key(key)},
                ExpiresIn=expires,
            )
        except _boto_errors() as exc:
            raise self._error(exc, "s3:GetObject", key) from None
        return url

    def _bucket_region(self) -> str | None:
        """The bucket's region, from HeadBucket (S3 names it even when it refuses the
        request); None if it cannot be learnt, e.g. from an S3-compatible store."""
        try:
            response = self.client.head_bucket(Bucket=self.bucket)
        except _boto_errors() as exc:
            response = getattr(exc, "response", None) or {}
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        region = response.get("BucketRegion") or headers.get("x-amz-bucket-region")
        return str(region) if region else None

    def head(self, key: str) -> dict[str, Any]:
        """HeadObject of *key*: size, storage class, encryption (for checks and tests)."""
        try:
            response: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket, Key=self._object_key(key)
            )
        except _boto_errors() as exc:
            raise self._error(exc, "s3:GetObject", key) from None
        return response


def _host(run: RunInfo | None) -> str:
    return run.hostname if run is not None else socket.gethostname()


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def _code(exc: BaseException) -> str:
    """The error code of a botocore ClientError (``NoSuchUpload``), else ``""``."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def translate_error(
    exc: BaseException, sink: S3Sink, permission: str, key: str | None = None
) -> BackupkitError:
    """One line that says what went wrong with *sink* and what to do about it.

    :param permission: the IAM action the failed call needs, e.g. ``s3:PutObject``.
    :param key: the sink key concerned, if any.
    """
    if isinstance(exc, BackupkitError):
        return exc
    where = sink._url(key)
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return ConfigError(
            f"no AWS credentials for {sink.location}; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an IAM role"
        )
    if name in ("EndpointConnectionError", "ConnectionClosedError", "ConnectTimeoutError",
                "ReadTimeoutError", "ProxyConnectionError", "SSLError", "ResponseStreamingError"):
        return SinkError(
            f"cannot reach S3 for {where} (still failing after {sink.max_attempts} attempts): "
            f"{_one_line(exc)}; check the network, the region and endpoint_url / AWS_ENDPOINT_URL"
        )
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or "Error" not in response:
        return SinkError(f"S3 request for {where} failed: {name}: {_one_line(exc)}")
    code = str(response["Error"].get("Code", ""))
    message = _one_line(response["Error"].get("Message", ""))
    status = _status(exc)
    if code == "NoSuchBucket" or (code == "404" and key is None):
        return ConfigError(
            f"S3 bucket {sink.bucket!r} does not exist; create it or fix the bucket name "
            "(bucket, AWS_S3_BUCKET_NAME or BACKUP_S3_BUCKET)"
        )
    if code in ("NoSuchKey", "404", "NotFound"):
        return NotFoundError(f"{where} does not exist")
    if code in _BAD_CREDENTIALS:
        return ConfigError(
            f"AWS rejected the credentials for {sink.location} ({code}); check "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, refresh the session token, or fix the clock"
        )
    if code in ("InvalidArgument", "InvalidRequest", "InvalidEncryptionAlgorithmError") and (
        "encrypt" in message.lower() or "kms" in message.lower()
    ):
        return SinkError(
            f"S3 requires other server-side encryption for {where} ({message}); "
            "set sse = \"aws:kms\" and kms_key_id as the bucket policy requires"
        )
    kms_problem = code.startswith("KMS.") or "kms" in message.lower()
    if kms_problem and (code != "AccessDenied" or "kms:" in message):
        key_id = sink.kms_key_id or "the bucket's default key"
        return SinkError(
            f"KMS refused to encrypt or decrypt {where} ({code}: {message}); check kms_key_id "
            f"and grant kms:GenerateDataKey and kms:Decrypt on {key_id} to this identity"
        )
    if code == "AccessDenied" or status == 403:
        hint = ""
        if permission == "s3:PutObject" and sink.sse != "aws:kms":
            hint = (
                "; if the bucket policy requires SSE-KMS, set sse = \"aws:kms\" and kms_key_id"
            )
        return SinkError(
            f"access denied: {permission} on {where}; grant {permission} on "
            f"arn:aws:s3:::{sink.bucket}/{sink.prefix + '/' if sink.prefix else ''}* "
            f"to this identity{hint}"
        )
    if code in ("PreconditionFailed", "412") and permission == "s3:GetObject":  # IfMatch
        return SinkError(
            f"{where} changed while being read (it was replaced); read it again, and make sure "
            "nothing else writes to this prefix"
        )
    if code in ("PreconditionFailed", "412"):
        return SinkError(f"{where} already exists; refusing to overwrite a stored backup")
    if code == "InvalidStorageClass":
        return ConfigError(
            f"this S3 store does not support the storage class for {where} ({message}); "
            "set storage_class / manifest_storage_class to one it supports, e.g. STANDARD"
        )
    if code in _OVERLOADED or status in (500, 502, 503, 504):
        return SinkError(
            f"S3 stayed overloaded or unavailable for {where} ({code}) after "
            f"{sink.max_attempts} attempts; try again later, or lower 'concurrency'"
        )
    return SinkError(f"S3 refused {permission} on {where}: {code}: {message}")


class _MultipartWriter(ArtifactWriter):
    """Streams an artifact into a multipart upload; invisible until ``commit``."""

    def __init__(self, sink: S3Sink, key: str, object_key: str, args: dict[str, Any]) -> None:
        self.sink = sink
        self.key = key
        self.object_key = object_key
        self.args = args
        self.part_size = part_size_for(1, sink.part_size)  # of the part being filled
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[dict[str, Any]]] = []
        self._in_flight = 0  # parts being uploaded
        self._room = threading.Condition()  # notified when a part ends
        self._error: BaseException | None = None
        self._state = "open"
        self._sent = 0  # bytes handed to parts

    def write(self, data: bytes, /) -> int:
        if self._state != "open":
            raise SinkError(f"artifact {self.key} was already {self._state}")
        self._buf += data
        while len(self._buf) >= self.part_size:
            # hand the buffer itself to the upload (no copy); only the overshoot moves
            part, self._buf = self._buf, bytearray(self._buf[self.part_size :])
            del part[self.part_size :]
            self._send(part)
        return len(data)

    def _send(self, part: bytes | bytearray) -> None:
        self._check()
        if self._upload_id is None:
            self._start()
        number = len(self._futures) + 1
        if number > MAX_PARTS:
            raise SinkError(
                f"artifact {self.key} needs more than the {MAX_PARTS:,} parts an S3 multipart "
                f"upload allows; raise the sink's 'part_size' (now {self.sink.part_size:,} bytes)"
            )
        self.part_size = part_size_for(number + 1, self.sink.part_size)
        self._sent += len(part)
        with self._room:
            while self._in_flight >= self._max_in_flight(len(part)):
                self._room.wait()
            self._in_flight += 1
        assert self._pool is not None
        future = self._pool.submit(self._upload_part, number, part)
        future.add_done_callback(self._part_done)
        self._futures.append(future)

    def _start(self) -> None:
        try:
            response = self.sink.client.create_multipart_upload(
                Bucket=self.sink.bucket, Key=self.object_key, **self._checksum, **self.args
            )
        except _boto_errors() as exc:
            raise self.sink._error(exc, "s3:PutObject", self.key) from None
        self._upload_id = response["UploadId"]
        self._pool = ThreadPoolExecutor(self.sink.concurrency, thread_name_prefix="backupkit-s3")

    @property
    def _checksum(self) -> dict[str, str]:
        return {"ChecksumAlgorithm": "CRC32"} if self.sink.checksums else {}

    def _upload_part(self, number: int, data: bytes | bytearray) -> dict[str, Any]:
        response = self.sink.client.upload_part(
            Bucket=self.sink.bucket,
            Key=self.object_key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
            **self._checksum,
        )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in response:  # S3-compatible stores may not return checksums
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        return part

    def _max_in_flight(self, size: int) -> int:
        """How many parts of *size* bytes may upload at once: ``concurrency`` first parts'
        worth of bytes, at least one part. Memory is that plus the part being filled, so it
        grows far slower than the parts (see the module docstring)."""
        return max(1, self.sink.concurrency * self.sink.part_size // size)

    def _part_done(self, future: Future[dict[str, Any]]) -> None:
        with self._room:
            self._in_flight -= 1
            self._room.notify_all()
        if not future.cancelled() and future.exception() is not None and self._error is None:
            self._error = future.exception()

    def _check(self) -> None:
        """Raise the first error of a part upload (in this, the writing, thread)."""
        if self._error is None:
            return
        if isinstance(self._error, _boto_errors()):
            raise self.sink._error(self._error, "s3:PutObject", self.key) from None
        raise self._error

    def commit(self) -> None:
        if self._state != "open":
            raise SinkError(f"artifact {self.key} was already {self._state}")
        if self._upload_id is None:  # smaller than one part: a single PUT
            self.sink._put_object(self.key, bytes(self._buf), self.args)
        else:
            last, self._buf = self._buf, bytearray()
            if last:
                self._send(last)
            parts = []
            for future in self._futures:
                try:
                    parts.append(future.result())
                except _boto_errors() as exc:
                    raise self.sink._error(exc, "s3:PutObject", self.key) from None
            try:
                self.sink.client.complete_multipart_upload(
                    Bucket=self.sink.bucket,
                    Key=self.object_key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                )
            except _boto_errors() as exc:
                if not self._completed_before(exc, parts):
                    raise self.sink._error(exc, "s3:PutObject", self.key) from None
            self._shutdown()
        self._state = "committed"
        self._buf = bytearray()

    def _completed_before(self, exc: BaseException, parts: list[dict[str, Any]]) -> bool:
        """Whether a CompleteMultipartUpload that failed with *exc* had in fact succeeded.

        botocore resends it after a timeout or a reset even when the first attempt
        completed the upload; the retry then finds the key taken (412) or the upload gone
        (NoSuchUpload). The stored object is ours if its size, its number of parts and its
        composite CRC32 (the CRC32 of the parts' CRC32s) are those we sent.
        """
        if _status(exc) != 412 and _code(exc) != "NoSuchUpload":
            return False
        try:
            head = self.sink.client.head_object(
                Bucket=self.sink.bucket, Key=self.object_key, ChecksumMode="ENABLED"
            )
        except _boto_errors():
            return False
        if head.get("ContentLength") != self._sent:
            return False
        if not str(head.get("ETag", "")).strip('"').endswith(f"-{len(parts)}"):
            return False
        stored, expected = head.get("ChecksumCRC32"), _composite_crc32(parts)
        # S3 appends "-<parts>" to a composite checksum; some stores (moto) do not
        if stored and expected and stored not in (expected, f"{expected}-{len(parts)}"):
            return False
        log.info(
            "%s was stored by an earlier attempt of CompleteMultipartUpload (%s)",
            self.sink._url(self.key), _code(exc) or _status(exc),
        )
        return True

    def abort(self) -> None:
        """Stop uploading and abort the multipart upload; never raises.

        Queued parts are cancelled and AbortMultipartUpload is sent at once, before waiting
        for the parts in flight (a SIGKILL during that wait must not leave the upload
        billing); then it is sent again for parts that finished meanwhile, as S3 advises.
        """
        if self._state != "open":
            return
        self._state = "aborted"
        self._buf = bytearray()
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._abort_upload(quiet=True)
        finally:
            self._shutdown()
            self._abort_upload(quiet=False)

    def _abort_upload(self, *, quiet: bool) -> None:
        if self._upload_id is None:
            return
        try:
            self.sink.client.abort_multipart_upload(
                Bucket=self.sink.bucket, Key=self.object_key, UploadId=self._upload_id
            )
        except Exception as exc:  # must not hide the error that made us abort
            if quiet or _code(exc) == "NoSuchUpload":  # the first abort went through
                log.debug("abort of %s: %s", self.sink._url(self.key), _one_line(exc))
                return
            log.warning(
                "could not abort the multipart upload of %s (%s); the next run or a bucket "
                "lifecycle rule (AbortIncompleteMultipartUpload) removes it",
                self.sink._url(self.key), _one_line(exc),
            )

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _composite_crc32(parts: list[dict[str, Any]]) -> str | None:
    """S3's composite CRC32 of a multipart upload (without ``-<parts>``), or None if a part
    has no CRC32: base64 of the CRC32 of the parts' raw CRC32s, in order."""
    if not parts or not all("ChecksumCRC32" in part for part in parts):
        return None
    raw = b"".join(base64.b64decode(part["ChecksumCRC32"]) for part in parts)
    return base64.b64encode(zlib.crc32(raw).to_bytes(4, "big")).decode()


class _ObjectReader(io.RawIOBase):
    """A streaming GET that resumes with a Range request if the connection drops."""

    def __init__(self, sink: S3Sink, key: str) -> None:
        super().__init__()
        self.sink = sink
        self.key = key
        self._pos = 0
        self._etag: str | None = None
        self._size: int | None = None  # from the first GET: the end of the object
        self._body = self._get()

    def _get(self) -> Any:
        args: dict[str, Any] = {}
        if self._etag is not None:
            args = {"Range": f"bytes={self._pos}-", "IfMatch": self._etag}
        try:
            response = self.sink.client.get_object(
                Bucket=self.sink.bucket, Key=self.sink._object_key(self.key), **args
            )
        except _boto_errors() as exc:
            raise self.sink._error(exc, "s3:GetObject", self.key) from None
        if self._etag is None:
            self._size = response.get("ContentLength")
        self._etag = response["ETag"]
        return response["Body"]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        for attempt in range(_RESUME_ATTEMPTS + 1):
            try:
                data: bytes = self._body.read(None if size is None or size < 0 else size)
            except _boto_errors() + (OSError,) as exc:
                if self._pos == self._size:  # dropped after the last byte: nothing to resume
                    return b""
                if attempt == _RESUME_ATTEMPTS or isinstance(exc, BackupkitError):
                    raise self.sink._error(exc, "s3:GetObject", self.key) from None
                log.info("resuming %s at byte %d: %s", self.sink._url(self.key), self._pos, exc)
                self._body.close()
                self._body = self._get()
                continue
            self._pos += len(data)
            return data
        raise AssertionError("unreachable")

    def close(self) -> None:
        body = getattr(self, "_body", None)  # None if the GET itself failed
        if body is not None and not self.closed:
            body.close()
        super().close()


@hookimpl
def backupkit_register_sinks(register: Register) -> None:
    register.sink(S3Sink)


@hookimpl
def backupkit_sink_for_url(url: str) -> tuple[str, dict[str, object]] | None:
    """``s3://bucket/prefix`` belongs to the s3 sink (``s3:///prefix``: bucket from env)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "s3":
        return None
    bucket, _, prefix = rest.partition("/")
    params: dict[str, object] = {"prefix": prefix.strip("/")}
    if bucket:
        params["bucket"] = bucket
    return ("s3", params)
