"""The ``s3`` sink class: keys, layouts, primitives and presigned URLs on one bucket."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, cast

import attrs

from backupkit.errors import AlreadyExistsError, BackupkitError, ConfigError, SinkError
from backupkit.params import check_range, secret
from backupkit.plugin import ArtifactWriter, Sink
from backupkit.sinks.s3.boto import boto_errors, import_boto
from backupkit.sinks.s3.errors import one_line, status_of, translate_error
from backupkit.sinks.s3.reader import ObjectReader
from backupkit.sinks.s3.writer import MiB, MultipartWriter

if TYPE_CHECKING:
    from backupkit.plugin.run import RunInfo

log = logging.getLogger("backupkit.s3")

LAYOUTS = ("tiered", "flat")
SSE_CHOICES = ("AES256", "aws:kms", "none")
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's limit
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
STALE_UPLOAD_AGE = dt.timedelta(days=2)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")  # a reason is free text; keys get a safe form


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
                boto3, Config, exceptions = import_boto()
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
                        f"cannot use the S3 endpoint for {self.location} ({one_line(exc)}); set "
                        "endpoint_url or AWS_ENDPOINT_URL to a full URL, e.g. http://minio:9000"
                    ) from None
            return self._cache[name]

    def _object_key(self, key: str) -> str:
        self.check_key(key)
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
        except boto_errors() as exc:
            if status_of(exc) != 403:  # a write-only identity may not list: go on
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
            parts = rest.split(".")  # an artifact named like its format is not named twice:
            if len(parts) > 3 and parts[1] == parts[2]:  # ".json.json.gz" -> ".json.gz"
                rest = "." + ".".join(parts[2:])
            reason = _UNSAFE.sub("-", run.reason) or "manual"
            return f"backups/{stamp}-{reason}-backup-{stamp}{rest}"
        return f"{_host(run)}/{tier}/{filename}"

    def log_key(self, filename: str, *, run: RunInfo | None = None) -> str:
        if self.layout == "flat":
            return f"logs/{filename}"
        return f"logs/{_host(run)}/{filename}"  # under logs/: prune never takes logs for orphans

    # -- primitives -------------------------------------------------------------------
    def open_artifact(self, key: str, *, run_id: str) -> ArtifactWriter:
        return MultipartWriter(self, key, self._object_key(key), self._write_args(self.storage_class))

    def put_bytes(self, key: str, data: bytes, *, run_id: str) -> None:
        self._put_object(key, data, self._write_args(self.manifest_storage_class))

    def _put_object(self, key: str, data: bytes, args: dict[str, Any]) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._object_key(key), Body=data, IfNoneMatch="*", **args
            )
        except boto_errors() as exc:
            if status_of(exc) == 412:
                if self._holds(key, data):
                    return  # a retried PUT whose first attempt had succeeded
                raise AlreadyExistsError(f"{key} already exists in {self.location}; it is never replaced") from None
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
        return cast(BinaryIO, ObjectReader(self, key))

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root + prefix):
                for obj in page.get("Contents", ()):
                    yield obj["Key"][len(root):]
        except boto_errors() as exc:
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
        except boto_errors() as exc:
            raise self._error(exc, "s3:DeleteObject") from None
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            code, message = first.get("Code", "?"), one_line(first.get("Message", ""))
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
        except boto_errors() as exc:
            raise self._error(exc, "s3:GetObject", key) from None
        return url

    def _bucket_region(self) -> str | None:
        """The bucket's region, from HeadBucket (S3 names it even when it refuses the
        request); None if it cannot be learnt, e.g. from an S3-compatible store."""
        try:
            response = self.client.head_bucket(Bucket=self.bucket)
        except boto_errors() as exc:
            response = getattr(exc, "response", None) or {}
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        region = response.get("BucketRegion") or headers.get("x-amz-bucket-region")
        return str(region) if region else None

    def size_of(self, key: str) -> int | None:
        """The object's ContentLength (None if it cannot be read)."""
        try:
            return int(self.head(key)["ContentLength"])
        except (BackupkitError, KeyError):
            return None

    def list_open_uploads(self) -> list[tuple[str, dt.datetime, int]]:
        """The multipart uploads open under the prefix: their object key (with the
        prefix), start, and the bytes of their parts so far."""
        root = f"{self.prefix}/" if self.prefix else ""
        found = []
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=root):
                for upload in page.get("Uploads", ()):
                    size = 0
                    for parts in self.client.get_paginator("list_parts").paginate(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]):
                        size += sum(int(p.get("Size", 0)) for p in parts.get("Parts", ()))
                    found.append((str(upload["Key"]), upload["Initiated"], size))
        except boto_errors() as exc:
            raise self._error(exc, "s3:ListBucketMultipartUploads") from None
        return found

    def open_uploads(self) -> list[tuple[str, dt.datetime, int]]:
        """The multipart uploads open under the prefix, by sink key (none if they cannot
        be listed)."""
        root = f"{self.prefix}/" if self.prefix else ""
        try:
            return [(key.removeprefix(root), at, size) for key, at, size in self.list_open_uploads()]
        except BackupkitError as exc:
            log.debug("cannot list the open uploads of %s: %s", self.location, exc)
            return []

    def modified_at(self, key: str) -> dt.datetime:
        """The object's LastModified: S3's clock, the same for every replica."""
        return cast(dt.datetime, self.head(key)["LastModified"]).astimezone(dt.UTC)

    def head(self, key: str) -> dict[str, Any]:
        """HeadObject of *key*: size, storage class, encryption (for checks and tests)."""
        try:
            response: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket, Key=self._object_key(key)
            )
        except boto_errors() as exc:
            raise self._error(exc, "s3:GetObject", key) from None
        return response


def _host(run: RunInfo | None) -> str:
    return run.hostname if run is not None else socket.gethostname()
