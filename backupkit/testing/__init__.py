"""A kit for plugin authors: conformance suites and pytest fixtures.

``backupkit.testing.sink_suite.SinkConformance``
    the contract every sink keeps; subclass it with a ``sink`` fixture::

        from backupkit.testing.sink_suite import SinkConformance

        class TestMySink(SinkConformance):
            @pytest.fixture
            def sink(self, tmp_path):
                return MySink(root=tmp_path)

``backupkit.testing.s3server``
    a real S3 HTTP endpoint on 127.0.0.1 (moto's server mode) and the fixtures
    ``s3_server`` (one per session) and ``s3`` (reset, environment pointed at it).

Needs the ``test`` extra (pytest; moto for the S3 server).
"""

try:
    import pytest
except ImportError:  # the kit is usable piecemeal without pytest (e.g. benchmarks)
    pass
else:
    pytest.register_assert_rewrite("backupkit.testing.sink_suite")
