"""A kit for plugin authors: conformance suites, fakes and pytest fixtures.

``backupkit.testing.source_suite.SourceConformance``
    the contract every source keeps; subclass it with ``params`` and ``target``
    fixtures and ``expected``/``restored`` methods (see the module).

``backupkit.testing.transform_suite.TransformConformance``
    the contract every transform keeps; subclass it with a ``transform`` fixture.

``backupkit.testing.fakes``
    ``MemoryStore``/``MemorySink`` (a sink in memory), ``SteppingClock``,
    ``HookRecorder`` and ``engine_for`` (an engine over one set).

``backupkit.testing.sink_suite.SinkConformance``
    the contract every sink keeps; subclass it with a ``sink`` fixture::

        from backupkit.testing.sink_suite import SinkConformance

        class TestMySink(SinkConformance):
            @pytest.fixture
            def sink(self, tmp_path):
                return MySink(root=tmp_path)

``backupkit.testing.damage``
    ``flip`` and ``flip_in_file``: one byte of stored data changed on purpose.

``backupkit.testing.postgres``
    a throwaway PostgreSQL cluster per test session (``pg_cluster``) and a fresh
    database per test (``pg``); skipped where the server programs are missing.

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
    pytest.register_assert_rewrite(
        "backupkit.testing.sink_suite",
        "backupkit.testing.source_suite",
        "backupkit.testing.transform_suite",
    )
