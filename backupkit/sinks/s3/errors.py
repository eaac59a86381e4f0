"""botocore's errors, translated at the plugin boundary into one-line backupkit errors
that say what to do (in the manner of s3fs's ``translate_boto_error``).

The codes that need no more than a message are a table, :data:`BY_CODE`; the rest (a
missing bucket versus a missing key, KMS, access denied, conditional writes) are the
rules of :func:`translate_error`.
"""

from __future__ import annotations

from typing import Protocol

from backupkit.errors import BackupkitError, ConfigError, NotFoundError, SinkError


class Store(Protocol):
    """What an error message needs of the sink it is about."""

    @property
    def bucket(self) -> str: ...

    @property
    def prefix(self) -> str: ...

    @property
    def sse(self) -> str: ...

    @property
    def kms_key_id(self) -> str | None: ...

    @property
    def max_attempts(self) -> int: ...

    @property
    def location(self) -> str: ...

    def _url(self, key: str | None) -> str: ...


OVERLOADED = {
    "SlowDown", "ServiceUnavailable", "503", "InternalError", "500", "RequestTimeout",
    "RequestTimeTooSkewed", "Throttling", "ThrottlingException", "RequestLimitExceeded",
}
_BAD_CREDENTIALS = (
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "InvalidClientTokenId", "AuthorizationHeaderMalformed",
)

#: Error codes whose translation is one message: the error class and its template
#: (``{where}`` the object or sink concerned, ``{location}`` the sink, ``{code}``,
#: ``{message}`` S3's own words).
BY_CODE: dict[str, tuple[type[BackupkitError], str]] = {
    **dict.fromkeys(("NoSuchKey", "404", "NotFound"), (NotFoundError, "{where} does not exist")),
    **dict.fromkeys(_BAD_CREDENTIALS, (
        ConfigError,
        "AWS rejected the credentials for {location} ({code}); check AWS_ACCESS_KEY_ID / "
        "AWS_SECRET_ACCESS_KEY, refresh the session token, or fix the clock",
    )),
    "InvalidStorageClass": (
        ConfigError,
        "this S3 store does not support the storage class for {where} ({message}); set "
        "storage_class / manifest_storage_class to one it supports, e.g. STANDARD",
    ),
}


def one_line(text: object) -> str:
    """*text* on one line: runs of whitespace, newlines included, become one space."""
    return " ".join(str(text).split())


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def code_of(exc: BaseException) -> str:
    """The error code of a botocore ClientError (``NoSuchUpload``), else ``""``."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def translate_error(
    exc: BaseException, sink: Store, permission: str, key: str | None = None
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
            f"{one_line(exc)}; check the network, the region and endpoint_url / AWS_ENDPOINT_URL"
        )
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or "Error" not in response:
        return SinkError(f"S3 request for {where} failed: {name}: {one_line(exc)}")
    code = str(response["Error"].get("Code", ""))
    message = one_line(response["Error"].get("Message", ""))
    status = status_of(exc)
    if code == "NoSuchBucket" or (code == "404" and key is None):
        return ConfigError(
            f"S3 bucket {sink.bucket!r} does not exist; create it or fix the bucket name "
            "(bucket, AWS_S3_BUCKET_NAME or BACKUP_S3_BUCKET)"
        )
    if code in BY_CODE:
        cls, template = BY_CODE[code]
        return cls(template.format(where=where, location=sink.location, code=code, message=message))
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
    if code in OVERLOADED or status in (500, 502, 503, 504):
        return SinkError(
            f"S3 stayed overloaded or unavailable for {where} ({code}) after "
            f"{sink.max_attempts} attempts; try again later, or lower 'concurrency'"
        )
    return SinkError(f"S3 refused {permission} on {where}: {code}: {message}")
