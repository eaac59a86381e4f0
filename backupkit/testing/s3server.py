"""A real S3 HTTP endpoint on 127.0.0.1 for tests: moto's server mode.

``start_s3_server()`` starts moto's ``ThreadedMotoServer`` on a free port and waits
until it answers; :class:`S3Server` resets it and builds clients and environments
pointed at it. As pytest fixtures (import them into a test module or a conftest)::

    from backupkit.testing.s3server import s3, s3_server  # noqa: F401

    def test_upload(s3):            # a clean server, AWS_* variables pointed at it
        s3.create_bucket("backups")
        ...

Everything talks real HTTP through boto3 or s3fs; only the server is local.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import attrs

#: Credentials moto accepts; anything else in the environment is shadowed by them.
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
#: Variables that would point boto3 elsewhere; cleared for tests.
SHADOWED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_S3_BUCKET_NAME", "BACKUP_S3_BUCKET")


@attrs.define
class S3Server:
    """A running moto server and helpers to use it."""

    endpoint_url: str
    _server: Any = attrs.field(repr=False)

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3, s3fs and backupkit at this server."""
        return {**FAKE_ENV, "AWS_ENDPOINT_URL": self.endpoint_url}

    def reset(self) -> None:
        """Forget every bucket and object (``POST /moto-api/reset``)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server; *config* goes to ``botocore.config.Config``."""
        import boto3  # type: ignore[import-untyped]
        import botocore.config  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=FAKE_ENV["AWS_REGION"],
            aws_access_key_id=FAKE_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_ENV["AWS_SECRET_ACCESS_KEY"],
            config=botocore.config.Config(**config),
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def stop(self) -> None:
        self._server.stop()


def start_s3_server(host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0) -> S3Server:
    """Start moto's S3 server on *host* (a free port unless *port*); ready when returned."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    s3 = S3Server(f"http://{bound_host}:{bound_port}", server)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{s3.endpoint_url}/moto-api/", timeout=1) as response:
                response.read()
            return s3
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"moto server on {s3.endpoint_url} did not answer") from None
            time.sleep(0.05)


try:
    import pytest
except ImportError:  # pragma: no cover - the helpers above work without pytest
    pass
else:

    @pytest.fixture(scope="session")
    def s3_server() -> Iterator[S3Server]:
        """One moto S3 server for the whole test session."""
        server = start_s3_server()
        try:
            yield server
        finally:
            server.stop()

    @pytest.fixture
    def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
        """The session's S3 server, emptied, with ``AWS_*`` variables pointing at it."""
        s3_server.reset()
        for name in SHADOWED:
            monkeypatch.delenv(name, raising=False)
        for name, value in s3_server.env().items():
            monkeypatch.setenv(name, value)
        return s3_server
